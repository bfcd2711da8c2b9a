// A RetainedStore that answers from an in-memory one (the index the core matches filters with: matching never waits
// for a disk or a network) and tells its subclass of each change to keep somewhere: the SQLite store (./retained.ts)
// writes it behind, the JetStream one (src/cluster/retained.ts) to the cluster's bucket. An expired message the
// index drops on the way stays where it was kept until a later start skips it.
import type { Message, RetainedLimits, RetainedPage, RetainedStore } from '../contracts/state.ts'

export abstract class NotedRetainedStore implements RetainedStore {
  protected readonly index: RetainedStore

  constructor(index: RetainedStore) {
    this.index = index
  }

  /** The retained message of `topic` changed: its new message, or null when it was cleared. */
  protected abstract noted(topic: string, message: Message | null): void

  get size(): number {
    return this.index.size
  }

  get bytes(): number {
    return this.index.bytes
  }

  set(message: Message, limits: RetainedLimits): boolean {
    if (!this.index.set(message, limits)) return false
    this.noted(message.topic, message.payload.length === 0 ? null : message)
    return true
  }

  match(filter: string, now: number): Message[] | Promise<Message[]> {
    return this.index.match(filter, now)
  }

  get(topic: string): Message | undefined {
    return this.index.get(topic)
  }

  list(prefix: string, after: string | null, limit: number): RetainedPage {
    return this.index.list(prefix, after, limit)
  }

  delete(topic: string): boolean {
    if (!this.index.delete(topic)) return false
    this.noted(topic, null)
    return true
  }

  deletePrefix(prefix: string): number {
    // one listing (the index gathers and sorts the matches once), then each topic deleted and noted
    let n = 0
    for (const m of this.index.list(prefix, null, Number.MAX_SAFE_INTEGER).items) if (this.delete(m.topic)) n++
    return n
  }
}
