// Retained messages shared by every node of a cluster through the `${cluster}_retained` KV bucket. An injected
// in-memory RetainedStore answers every read (match, get, list stay local and synchronous); set, delete and
// deletePrefix change it and write the bucket behind (one write in flight per topic, so a topic's writes land in the
// order they were made, and a topic changed again meanwhile is written once with its newest value); a watch on the
// bucket applies the other nodes' changes. open() loads the whole bucket before it returns, so a node that starts
// later sees what exists.
//
// Convergence: the stream orders every write; each node ends with the value that came last in it. A remote change of
// a topic this node is still writing is held back (the write lands after it, and wins); once the write is
// acknowledged at revision r, the held change is applied only if its revision is above r. A change below the
// revision of this node's own last write is old news (the watch lags behind the acknowledgement) and is skipped.
//
// The limits (maxMessages, maxBytes) are judged on this node's copy: a node refuses a new topic when its copy is
// full; a change from another node is always taken (the copies hold the same set, so they agree within a moment).
import { headers } from '@nats-io/transport-node'
import type { KvEntry } from '@nats-io/kv'
import type { Logger } from '../contracts/logger.ts'
import type { Message, RetainedLimits, RetainedStore } from '../contracts/state.ts'
import { decodeRetained, encodeRetained, subjectOf, type ClusterBuckets } from './buckets.ts'
import { retainedKey, topicOfRetainedKey } from './keys.ts'
import { NotedRetainedStore } from '../state/noted-retained.ts'

export interface JetStreamRetainedOptions {
  /** written into each value: which node set it */
  nodeId?: string
  logger?: Logger
  /** writes in flight at once (different topics) */
  maxInFlight?: number
  /** after a failed write, the next try (ms) */
  retryMs?: number
}

export interface RetainedWriteStats {
  /** messages written */
  puts: number
  /** clears written (delete markers) */
  deletes: number
  /** failed writes (kept and tried again) */
  errors: number
  /** changes of other nodes applied to the local copy */
  applied: number
}

/** What to write for a key: the message, or null to clear it. */
interface Note {
  topic: string
  message: Message | null
}

const UNLIMITED: RetainedLimits = { maxMessages: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER }
const EMPTY = new Uint8Array(0)

export class JetStreamRetainedStore extends NotedRetainedStore {
  readonly stats: RetainedWriteStats = { puts: 0, deletes: 0, errors: 0, applied: 0 }
  readonly #b: ClusterBuckets
  readonly #bucket: string
  readonly #nodeId: string | null
  readonly #logger: Logger | undefined
  readonly #maxInFlight: number
  readonly #retryMs: number
  /** notes of keys not being written, ready to go */
  readonly #ready = new Map<string, Note>()
  /** the newest note of a key being written: it goes once that write is done */
  readonly #after = new Map<string, Note>()
  readonly #inflight = new Set<string>()
  /** revision of this node's last acknowledged write of a key, until the watch has passed it */
  readonly #ownRev = new Map<string, number>()
  /** the newest change of another node to a key this node is writing */
  readonly #deferred = new Map<string, KvEntry>()
  /** topics whose key is a hash (too long to encode): their clears carry no topic */
  readonly #hashed = new Map<string, string>()
  /** the last revision the watch delivered */
  #watchRev = 0
  #watch: { stop(): void } | null = null
  #retry: NodeJS.Timeout | null = null
  #idle: Array<() => void> = []
  #closed = false
  #lastErrorLog = 0

  /** A store on the cluster's buckets, its copy of the bucket loaded into `index` (an empty in-memory store). */
  static async open(buckets: ClusterBuckets, index: RetainedStore, opts: JetStreamRetainedOptions = {}): Promise<JetStreamRetainedStore> {
    const store = new JetStreamRetainedStore(buckets, index, opts)
    await store.#start()
    return store
  }

  private constructor(buckets: ClusterBuckets, index: RetainedStore, opts: JetStreamRetainedOptions) {
    super(index)
    this.#b = buckets
    this.#bucket = buckets.names.retained
    this.#nodeId = opts.nodeId ?? null
    this.#logger = opts.logger
    this.#maxInFlight = opts.maxInFlight ?? 256
    this.#retryMs = opts.retryMs ?? 1000
  }


  /** Topics with a write waiting or in flight. */
  get pending(): number {
    return this.#ready.size + this.#after.size + this.#inflight.size
  }


  /** Resolves once every change made so far is written, or a write failed (it is tried again). */
  flush(): Promise<void> {
    if (this.pending === 0 || this.#closed) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  /** Write what is pending (waiting at most `timeoutMs`), stop watching. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.#closed) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.flush(), new Promise((r) => (timer = setTimeout(r, timeoutMs)))])
    clearTimeout(timer)
    this.#closed = true
    if (this.#retry !== null) clearTimeout(this.#retry)
    this.#watch?.stop()
    this.#resolveIdle()
  }

  // ---- the watch: load, then the other nodes' changes ---------------------------------------------------------------

  async #start(): Promise<void> {
    const kv = this.#b.retained
    const status = await kv.status()
    const empty = status.streamInfo.state.messages === 0
    const lastSeq = status.streamInfo.state.last_seq
    const watch = await kv.watch()
    this.#watch = watch
    let loaded!: () => void
    const done = new Promise<void>((resolve) => (loaded = resolve))
    let loading = !empty
    if (!loading) loaded()
    void (async () => {
      try {
        for await (const e of watch) {
          if (loading) {
            this.#load(e)
            // caught up with what the bucket held when the watch began
            if (e.delta === 0 || e.revision >= lastSeq) {
              loading = false
              loaded()
            }
          } else this.#onChange(e)
        }
        if (!this.#closed) this.#logger?.warn({}, 'the watch of the retained messages bucket ended: other nodes\' changes no longer arrive')
      } catch (err) {
        if (!this.#closed) this.#logger?.error({ err }, 'the watch of the retained messages bucket failed: other nodes\' changes no longer arrive')
      } finally {
        loaded()
      }
    })()
    await done
  }

  /** A value the bucket held at start (or a change made while it loads: no write of ours is in flight yet). */
  #load(e: KvEntry): void {
    this.#watchRev = e.revision
    if (e.operation !== 'PUT') {
      this.#apply(e)
      return
    }
    const m = this.#decode(e)
    if (m === null) return
    if (m.expiresAt !== 0 && m.expiresAt <= Date.now()) {
      this.index.delete(m.topic)
      // unless someone changed it since: it goes from the bucket
      const h = headers()
      h.set('KV-Operation', 'DEL')
      this.#b.js.publish(subjectOf(this.#bucket, e.key), EMPTY, { headers: h, expect: { lastSubjectSequence: e.revision } })
        .catch(() => {})
      return
    }
    this.index.set(m, UNLIMITED)
  }

  /** A change in the bucket: another node's, or the echo of one of ours. */
  #onChange(e: KvEntry): void {
    this.#watchRev = e.revision
    const own = this.#ownRev.get(e.key)
    if (own !== undefined) {
      if (e.revision >= own) this.#ownRev.delete(e.key)
      if (e.revision <= own) return // our own write, or older than it
    }
    if (this.#dirty(e.key)) {
      const d = this.#deferred.get(e.key)
      if (d === undefined || d.revision < e.revision) this.#deferred.set(e.key, e)
      return
    }
    this.stats.applied++
    this.#apply(e)
  }

  #apply(e: KvEntry): void {
    if (e.operation === 'PUT') {
      const m = this.#decode(e)
      if (m !== null) this.index.set(m, UNLIMITED)
      return
    }
    const topic = topicOfRetainedKey(e.key) ?? this.#hashed.get(e.key)
    if (topic !== undefined) this.index.delete(topic)
    this.#hashed.delete(e.key)
  }

  #decode(e: KvEntry): Message | null {
    try {
      const m = decodeRetained(e.value)
      if (topicOfRetainedKey(e.key) === undefined) this.#hashed.set(e.key, m.topic)
      return m
    } catch (err) {
      this.#logger?.warn({ err, key: e.key }, 'a retained message in the bucket could not be read: skipped')
      return null
    }
  }

  // ---- writing ------------------------------------------------------------------------------------------------------

  #dirty(key: string): boolean {
    return this.#inflight.has(key) || this.#ready.has(key) || this.#after.has(key)
  }

  protected noted(topic: string, message: Message | null): void {
    if (this.#closed) return
    const key = retainedKey(topic)
    if (topicOfRetainedKey(key) === undefined) this.#hashed.set(key, topic)
    const note = { topic, message }
    if (this.#inflight.has(key)) this.#after.set(key, note)
    else this.#ready.set(key, note)
    this.#pump()
  }

  #pump(): void {
    if (this.#retry !== null || this.#closed) return
    for (const [key, note] of this.#ready) {
      if (this.#inflight.size >= this.#maxInFlight) break
      this.#ready.delete(key)
      this.#inflight.add(key)
      void this.#write(key, note)
    }
  }

  async #write(key: string, note: Note): Promise<void> {
    let rev: number
    try {
      rev = await this.#send(key, note)
    } catch (err) {
      this.#failed(key, note, err)
      return
    }
    this.#inflight.delete(key)
    if (rev > this.#watchRev) this.#ownRev.set(key, Math.max(this.#ownRev.get(key) ?? 0, rev))
    const next = this.#after.get(key)
    if (next !== undefined) {
      this.#after.delete(key)
      this.#ready.set(key, next)
    } else if (!this.#dirty(key)) {
      const d = this.#deferred.get(key)
      this.#deferred.delete(key)
      if (d !== undefined && d.revision > rev) {
        this.stats.applied++
        this.#apply(d)
      }
    }
    this.#pump()
    if (this.pending === 0) this.#resolveIdle()
  }

  async #send(key: string, note: Note): Promise<number> {
    const m = note.message
    if (m === null) {
      const h = headers()
      h.set('KV-Operation', 'DEL')
      const ack = await this.#b.js.publish(subjectOf(this.#bucket, key), EMPTY, { headers: h })
      this.stats.deletes++
      return ack.seq
    }
    const rev = await this.#b.retained.put(key, encodeRetained(m, this.#nodeId))
    this.stats.puts++
    return rev
  }

  /** A write failed (it may or may not have landed): its note waits for the next try unless a newer one does. */
  #failed(key: string, note: Note, err: unknown): void {
    this.#inflight.delete(key)
    this.stats.errors++
    const next = this.#after.get(key)
    this.#after.delete(key)
    this.#ready.set(key, next ?? note)
    const now = Date.now()
    if (now - this.#lastErrorLog > 1000) {
      this.#lastErrorLog = now
      this.#logger?.error({ err, pending: this.pending }, 'writing a retained message to JetStream failed: kept in memory, retrying')
    }
    if (this.#retry === null && !this.#closed) {
      this.#retry = setTimeout(() => {
        this.#retry = null
        this.#pump()
      }, this.#retryMs)
      this.#retry.unref()
    }
    this.#resolveIdle()
  }

  #resolveIdle(): void {
    const waiting = this.#idle
    this.#idle = []
    for (const resolve of waiting) resolve()
  }
}
