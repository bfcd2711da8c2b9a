// Topic names, topic filters and matching: validity rules, the `$` rule, `$share/group/filter`, and a trie that
// finds every filter matching a topic name in time proportional to the topic's depth.

/**
 * Whether a decoded string still fits an MQTT UTF-8 string (at most 65535 bytes, MQTT 1.5.4) when encoded again.
 * mqtt-packet decodes each ill-formed byte as U+FFFD (3 bytes), so up to 65535 bytes received can grow to 196605:
 * such a topic went out with its length field wrapped, and subscribers read a different topic and payload.
 * Free for strings of up to 21845 UTF-16 units (3 bytes each at most).
 */
export function fitsMqttString(s: string): boolean {
  return s.length <= 21845 || Buffer.byteLength(s) <= 65535
}

/** A topic name a client may publish to. */
/** A topic or filter of the broker's own `$SYS/` tree. */
export const isSysTopic = (topicOrFilter: string): boolean => topicOrFilter.startsWith('$SYS/') || topicOrFilter === '$SYS'

export function isValidTopicName(topic: string): boolean {
  // [MQTT-4.7.3-1] at least one character; [MQTT-3.3.2-2] no wildcards; [MQTT-1.5.4-2] no U+0000
  if (topic.length === 0 || !fitsMqttString(topic)) return false
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i)
    if (c === 0x2b /* + */ || c === 0x23 /* # */ || c === 0) return false
  }
  return true
}

/** A topic filter a client may subscribe to (without the `$share/group/` prefix). */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0) return false // [MQTT-4.7.3-1]
  for (let i = 0; i < filter.length; i++) {
    const c = filter.charCodeAt(i)
    if (c === 0) return false
    if (c === 0x23 /* # */) {
      // [MQTT-4.7.1-2] '#' alone on its level and last
      if (i !== filter.length - 1 || (i > 0 && filter.charCodeAt(i - 1) !== 0x2f)) return false
    } else if (c === 0x2b /* + */) {
      // [MQTT-4.7.1-3] '+' alone on its level
      if ((i > 0 && filter.charCodeAt(i - 1) !== 0x2f) || (i < filter.length - 1 && filter.charCodeAt(i + 1) !== 0x2f)) {
        return false
      }
    }
  }
  return true
}

export interface SharedFilter {
  group: string
  filter: string
}

/**
 * `$share/{group}/{filter}` split into its parts; null when `filter` is not shared;
 * undefined when it starts with `$share/` but is malformed.
 */
export function parseSharedFilter(filter: string): SharedFilter | null | undefined {
  if (!filter.startsWith('$share/')) return null
  const slash = filter.indexOf('/', 7)
  if (slash < 0) return undefined
  const group = filter.slice(7, slash)
  const rest = filter.slice(slash + 1)
  // [MQTT-4.8.2-1] group name: at least one character, no wildcards, no '/'
  if (group.length === 0 || group.includes('+') || group.includes('#')) return undefined
  if (!isValidTopicFilter(rest)) return undefined
  return { group, filter: rest }
}

/** Whether `filter` matches `topic`, one pair at a time (retained messages use it). */
export function topicMatches(filter: string, topic: string): boolean {
  // [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with '$'
  if (topic.charCodeAt(0) === 0x24 /* $ */ && (filter.charCodeAt(0) === 0x2b || filter.charCodeAt(0) === 0x23)) {
    return false
  }
  let fi = 0
  let ti = 0
  const fl = filter.length
  const tl = topic.length
  while (fi < fl) {
    const fc = filter.charCodeAt(fi)
    if (fc === 0x23 /* # */) return true // also matches the parent level ("a/#" matches "a")
    if (fc === 0x2b /* + */) {
      while (ti < tl && topic.charCodeAt(ti) !== 0x2f) ti++
      fi++
    } else {
      if (ti >= tl) {
        // "a/#" against "a": the filter's remaining "/#" matches the parent level
        return fc === 0x2f && fi + 2 === fl && filter.charCodeAt(fi + 1) === 0x23
      }
      if (fc !== topic.charCodeAt(ti)) return false
      fi++
      ti++
    }
  }
  return ti === tl
}

class TrieNode<V> {
  children: Map<string, TrieNode<V>> | null = null
  /** subscribers whose filter ends at this node, by key */
  values: Map<string, V> | null = null
  parent: TrieNode<V> | null
  level: string

  constructor(parent: TrieNode<V> | null, level: string) {
    this.parent = parent
    this.level = level
  }

  get empty(): boolean {
    return (this.children === null || this.children.size === 0) && (this.values === null || this.values.size === 0)
  }
}

/** Topic filters (split on '/') with values keyed per filter; `match(topic)` visits every matching value. */
export class TopicTrie<V> {
  readonly #root = new TrieNode<V>(null, '')
  #size = 0

  get size(): number {
    return this.#size
  }

  /** Set the value stored under `key` for `filter`; returns whether it is new. */
  set(filter: string, key: string, value: V): boolean {
    let node = this.#root
    for (const level of filter.split('/')) {
      node.children ??= new Map()
      let next = node.children.get(level)
      if (next === undefined) {
        next = new TrieNode<V>(node, level)
        node.children.set(level, next)
      }
      node = next
    }
    node.values ??= new Map()
    const isNew = !node.values.has(key)
    node.values.set(key, value)
    if (isNew) this.#size++
    return isNew
  }

  get(filter: string, key: string): V | undefined {
    let node: TrieNode<V> | undefined = this.#root
    for (const level of filter.split('/')) {
      node = node.children?.get(level)
      if (node === undefined) return undefined
    }
    return node.values?.get(key)
  }

  /** Remove the value under `key` for `filter`; prunes empty nodes. */
  delete(filter: string, key: string): boolean {
    let node: TrieNode<V> | undefined = this.#root
    for (const level of filter.split('/')) {
      node = node.children?.get(level)
      if (node === undefined) return false
    }
    if (node.values === null || !node.values.delete(key)) return false
    this.#size--
    while (node.parent !== null && node.empty) {
      node.parent.children!.delete(node.level)
      node = node.parent
    }
    return true
  }

  /** Call `visit` for every value whose filter matches `topic`. */
  match(topic: string, visit: (value: V) => void): void {
    const levels = topic.split('/')
    this.#matchNode(this.#root, levels, 0, topic.charCodeAt(0) === 0x24 /* $ */, visit)
  }

  #matchNode(node: TrieNode<V>, levels: string[], i: number, dollar: boolean, visit: (value: V) => void): void {
    const children = node.children
    if (children === null) return
    // [MQTT-4.7.2-1] a topic starting with '$' is not matched by a wildcard at the first level
    const wildOk = !(dollar && i === 0)
    if (wildOk) {
      const hash = children.get('#')
      if (hash !== undefined && hash.values !== null) for (const v of hash.values.values()) visit(v)
    }
    if (i === levels.length) return
    const exact = children.get(levels[i])
    if (exact !== undefined) {
      if (i + 1 === levels.length) this.#visitEnd(exact, visit)
      else this.#matchNode(exact, levels, i + 1, dollar, visit)
    }
    if (wildOk) {
      const plus = children.get('+')
      if (plus !== undefined) {
        if (i + 1 === levels.length) this.#visitEnd(plus, visit)
        else this.#matchNode(plus, levels, i + 1, dollar, visit)
      }
    }
  }

  /** The topic's last level reached `node`: its own values, and "x/#" children (matching the parent level). */
  #visitEnd(node: TrieNode<V>, visit: (value: V) => void): void {
    if (node.values !== null) for (const v of node.values.values()) visit(v)
    const hash = node.children?.get('#')
    if (hash !== undefined && hash.values !== null) for (const v of hash.values.values()) visit(v)
  }
}

/**
 * Why a topic name or filter is over maxTopicLength (UTF-8 bytes) or maxTopicLevels, in words; null when within.
 * No allocation: levels are counted, not split.
 */
export function topicOverLimits(topic: string, limits: { maxTopicLength: number; maxTopicLevels: number }): string | null {
  // a UTF-16 unit is 1 to 3 UTF-8 bytes: a short string needs no byte count
  const bytes = topic.length * 3 <= limits.maxTopicLength ? topic.length : Buffer.byteLength(topic)
  if (bytes > limits.maxTopicLength) return `${bytes} bytes, over maxTopicLength ${limits.maxTopicLength}`
  let levels = 1
  for (let i = topic.indexOf('/'); i !== -1; i = topic.indexOf('/', i + 1)) {
    if (++levels > limits.maxTopicLevels) return `more than maxTopicLevels ${limits.maxTopicLevels} levels`
  }
  return null
}
