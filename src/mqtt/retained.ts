// Retained messages: the last retained message per topic, delivered to new matching subscriptions. Kept in a tree
// of topic levels, so that matching a filter walks only the branches it can match (a filter `a/+/c` never looks at
// topics under `b/`), never a scan of every retained message. Bounded by maxRetainedMessages and maxRetainedBytes:
// at the limit a new topic is refused, while a replacement or a clear always works.
// The in-memory RetainedStore; a durable store (src/state/) keeps one as its index and writes its changes behind.
import { retainedBytes, type Message, type RetainedLimits, type RetainedPage, type RetainedStore } from '../contracts/state.ts'

export { retainedBytes } from '../contracts/state.ts'
export type { RetainedLimits, RetainedPage, RetainedStore } from '../contracts/state.ts'

interface Node {
  children: Map<string, Node> | null
  message: Message | null
}

const newNode = (): Node => ({ children: null, message: null })

export class MemoryRetainedStore implements RetainedStore {
  readonly #root: Node = newNode()
  #size = 0
  #bytes = 0

  get size(): number {
    return this.#size
  }

  get bytes(): number {
    return this.#bytes
  }

  set(message: Message, limits: RetainedLimits): boolean {
    const levels = message.topic.split('/')
    if (message.payload.length === 0) {
      this.#delete(levels)
      return true
    }
    const cost = retainedBytes(message)
    const existing = this.#find(levels)
    if (existing?.message) {
      this.#bytes += cost - retainedBytes(existing.message)
      existing.message = message
      return true
    }
    if (this.#size >= limits.maxMessages || this.#bytes + cost > limits.maxBytes) return false
    let node = this.#root
    for (const level of levels) {
      const children = (node.children ??= new Map())
      let child = children.get(level)
      if (child === undefined) {
        child = newNode()
        children.set(level, child)
      }
      node = child
    }
    node.message = message
    this.#size++
    this.#bytes += cost
    return true
  }

  match(filter: string, now: number): Message[] | Promise<Message[]> {
    const out: Message[] = []
    const expired: Message[] = []
    const keep = (m: Message) => {
      if (m.expiresAt !== 0 && m.expiresAt <= now) expired.push(m)
      else out.push(m)
    }
    visit(this.#root, filter.split('/'), 0, keep)
    for (const m of expired) this.#delete(m.topic.split('/'))
    return out
  }

  get(topic: string): Message | undefined {
    return this.#find(topic.split('/'))?.message ?? undefined
  }

  list(prefix: string, after: string | null, limit: number): RetainedPage {
    const all: Message[] = []
    this.#eachWithPrefix(prefix, (m) => {
      if (after === null || m.topic > after) all.push(m)
    })
    all.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0))
    const items = all.slice(0, limit)
    return { items, next: all.length > limit ? items[items.length - 1].topic : null }
  }

  delete(topic: string): boolean {
    return this.#delete(topic.split('/'))
  }

  deletePrefix(prefix: string): number {
    const topics: string[] = []
    this.#eachWithPrefix(prefix, (m) => topics.push(m.topic))
    for (const t of topics) this.#delete(t.split('/'))
    return topics.length
  }

  /** Every message whose topic starts with `prefix`: the whole levels of the prefix walk the tree, the rest filters. */
  #eachWithPrefix(prefix: string, found: (m: Message) => void): void {
    const levels = prefix.split('/')
    const partial = levels.pop()!
    const node = this.#find(levels)
    if (node === undefined) return
    if (partial === '' && levels.length > 0) {
      eachBelow(node, false, found) // "a/b/": everything under a/b, not a/b itself
      return
    }
    if (node.children === null) return
    for (const [name, child] of node.children) {
      if (!name.startsWith(partial)) continue
      if (child.message !== null) found(child.message)
      eachBelow(child, false, found)
    }
  }

  #find(levels: string[]): Node | undefined {
    let node: Node | undefined = this.#root
    for (const level of levels) {
      node = node.children?.get(level)
      if (node === undefined) return undefined
    }
    return node
  }

  /** Remove the message of a topic and the branches it leaves empty; whether there was one. */
  #delete(levels: string[]): boolean {
    const path: Node[] = [this.#root]
    for (const level of levels) {
      const next = path[path.length - 1].children?.get(level)
      if (next === undefined) return false
      path.push(next)
    }
    const node = path[path.length - 1]
    if (node.message === null) return false
    this.#size--
    this.#bytes -= retainedBytes(node.message)
    node.message = null
    for (let i = path.length - 1; i > 0; i--) {
      const n = path[i]
      if (n.message !== null || (n.children !== null && n.children.size > 0)) break
      path[i - 1].children!.delete(levels[i - 1])
    }
    return true
  }
}

/**
 * Call `found` for each message under `node` matching filter levels f[i..]. [MQTT-4.7.2-1] a filter starting with a
 * wildcard does not match topics starting with `$`.
 */
function visit(node: Node, f: string[], i: number, found: (m: Message) => void): void {
  if (i === f.length) {
    if (node.message !== null) found(node.message)
    return
  }
  const level = f[i]
  if (level === '#') {
    // [MQTT-4.7.1-2] `#` also matches the parent level: `a/#` matches `a`
    if (node.message !== null && i > 0) found(node.message)
    eachBelow(node, i === 0, found)
    return
  }
  if (node.children === null) return
  if (level === '+') {
    for (const [name, child] of node.children) {
      if (i === 0 && name.startsWith('$')) continue
      visit(child, f, i + 1, found)
    }
    return
  }
  const child = node.children.get(level)
  if (child !== undefined) visit(child, f, i + 1, found)
}

/** Every message in the branches under `node` (skipping `$` topics when at the root). */
function eachBelow(node: Node, atRoot: boolean, found: (m: Message) => void): void {
  if (node.children === null) return
  for (const [name, child] of node.children) {
    if (atRoot && name.startsWith('$')) continue
    if (child.message !== null) found(child.message)
    eachBelow(child, false, found)
  }
}
