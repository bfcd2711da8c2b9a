// MQTT sessions of a cluster in the `${cluster}_sessions` KV bucket. A session is held in memory by the node its
// client is connected to (the working Session objects the core mutates) and written behind into the bucket from the
// core's notes: coalesced per key, in batches every FLUSH_INTERVAL_MS, never blocking the caller; a failed batch is
// logged and tried again. Keys (./keys.ts): one record per session (s.<id>: expiry, disconnectedAt, Will, QoS 2 ids,
// counters, subscriptions) and one per queued or in-flight entry (e.<id>.<seq>), so a long queue is not rewritten on
// every message; an entry queued and acknowledged within one batch is never written.
// Written, as by the SQLite store: a session that outlives its connection (expiry over 0) with its subscriptions and
// entries, and a session with a Will (its record only), so that another node can publish the Will of a dead one.
// A node loads no session at start: get(), all() and size cover the sessions held here; resume() takes a session from
// the bucket (after the ownership hook), adopt() takes up a dead node's session, peek() only reads one.
// (Longer than most files: the notes, the batches that write them and the merge of a failed batch share the state of
// what may be in the bucket, and reading a session must settle this node's own pending writes first.)
import type { KvEntry } from '@nats-io/kv'
import type { Logger } from '../contracts/logger.ts'
import type { Queued, Session } from '../contracts/state.ts'
import { kept, noteCount, NotedSessionStore, restoreEntry, type SessionNotes } from '../state/noted-sessions.ts'
import { decodeEntry, decodeSessionRecord, encodeEntry, encodeSessionRecord, purgeKey, sessionOfRecord,
  type ClusterBuckets } from './buckets.ts'
import { entriesFilter, entryKey, sessionKey } from './keys.ts'

/** How long a change waits before it is written. */
export const FLUSH_INTERVAL_MS = 20
/** More pending notes than this are written at once, not after the interval. */
export const MAX_PENDING = 20_000

export interface JetStreamSessionOptions {
  /** this node: written into each session record (the node that held it last) */
  nodeId?: string
  /**
   * The ownership claim, awaited by resume() before it reads a session this node does not hold: it makes sure no
   * other node still holds it (that node forgets it, writing its last changes). Default: resolves at once.
   */
  beforeResume?: (clientId: string) => Promise<void>
  /**
   * Awaited before each batch is taken: after this node's NATS connection was lost, no write goes out until it has
   * checked which client ids another node took meanwhile (whose notes it then drops). Default: resolves at once.
   */
  beforeWrite?: () => Promise<void>
  logger?: Logger
  flushIntervalMs?: number
  /** after a failed batch, the next try (ms) */
  retryMs?: number
  /** forget() gives up (and keeps the session) when its changes could not be written within this (ms) */
  forgetTimeoutMs?: number
  /** KV requests in flight at once within a batch */
  maxInFlight?: number
}

export interface SessionWriteStats {
  /** batches that wrote something */
  batches: number
  /** values written (session records and entries) */
  puts: number
  /** keys purged (entries done, sessions over) */
  purges: number
  /** failed batches (tried again) */
  errors: number
  /** how long the last batch took, ms */
  lastMs: number
}

interface Batch {
  wipes: Set<string>
  /** (the filters of a note are not written apart: subscriptions are part of the record) */
  notes: Map<string, SessionNotes>
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export class JetStreamSessionStore extends NotedSessionStore {
  readonly stats: SessionWriteStats = { batches: 0, puts: 0, purges: 0, errors: 0, lastMs: 0 }
  readonly #b: ClusterBuckets
  readonly #bucket: string
  readonly #nodeId: string | null
  readonly #beforeResume: (clientId: string) => Promise<void>
  readonly #beforeWrite: () => Promise<void>
  readonly #logger: Logger | undefined
  readonly #interval: number
  readonly #retryMs: number
  readonly #forgetTimeoutMs: number
  readonly #maxInFlight: number
  /** when each session read from the bucket was last written there (lastWrittenAt) */
  readonly #writtenAt = new Map<string, number>()
  /** reads from the bucket under way, by client id */
  readonly #reading = new Map<string, Promise<Session | undefined>>()
  /** the batch being written */
  #batch: Batch | null = null
  /** batches run one after another */
  #chain: Promise<unknown> = Promise.resolve()
  #queued: Promise<boolean> | null = null
  #timer: NodeJS.Timeout | null = null
  #closed = false
  #lastErrorLog = 0

  constructor(buckets: ClusterBuckets, opts: JetStreamSessionOptions = {}) {
    super()
    this.#b = buckets
    this.#bucket = buckets.names.sessions
    this.#nodeId = opts.nodeId ?? null
    this.#beforeResume = opts.beforeResume ?? (() => Promise.resolve())
    this.#beforeWrite = opts.beforeWrite ?? (() => Promise.resolve())
    this.#logger = opts.logger
    this.#interval = opts.flushIntervalMs ?? FLUSH_INTERVAL_MS
    this.#retryMs = opts.retryMs ?? 1000
    this.#forgetTimeoutMs = opts.forgetTimeoutMs ?? 10_000
    this.#maxInFlight = opts.maxInFlight ?? 256
  }

  /** The session held here, or else (after beforeResume) the one in the bucket, now held here. */
  resume(clientId: string): Session | undefined | Promise<Session | undefined> {
    const held = this.sessions.get(clientId)
    if (held !== undefined) return held
    return this.#take(clientId, async () => {
      await this.#beforeResume(clientId)
      return Date.now()
    })
  }

  /**
   * Take up a session found in the bucket (a dead node's), without the ownership hook: read and hold it. A session
   * whose connection was open when it was last written is dated from `crashedAt` (its expiry and Will delay count from
   * then). The session held here already, if there is one.
   */
  adopt(clientId: string, crashedAt = Date.now()): Promise<Session | undefined> {
    const held = this.sessions.get(clientId)
    if (held !== undefined) return Promise.resolve(held)
    return this.#take(clientId, () => Promise.resolve(crashedAt))
  }

  /**
   * When the session's record was last written (epoch ms, by the node that held it), as read when this node took it
   * up; undefined when it was not read from the bucket here. What it got after that may not have been written.
   */
  lastWrittenAt(clientId: string): number | undefined {
    return this.#writtenAt.get(clientId)
  }

  /** Read a session from the bucket, as stored (disconnectedAt null: a connection held it), without holding it. */
  async peek(clientId: string): Promise<Session | undefined> {
    await this.#settle(clientId)
    return (await this.#read(clientId))?.session
  }

  /** The session is over: dropped here, and its keys removed from the bucket (whether it was held here or not). */
  delete(clientId: string): void {
    this.sessions.delete(clientId)
    this.#writtenAt.delete(clientId)
    this.dropNotes(clientId)
    this.wipes.add(clientId)
    this.touched()
  }

  /** Resolves once everything noted so far is written, or the write failed (it is tried again). */
  async flush(): Promise<void> {
    await this.#kick()
  }

  /**
   * Another node holds this session now: its changes noted so far are written, then it is dropped from this node's
   * memory (its keys stay). Rejects, keeping the session, when they could not be written within forgetTimeoutMs.
   */
  async forget(clientId: string): Promise<void> {
    const deadline = Date.now() + this.#forgetTimeoutMs
    while (this.#pendingFor(clientId)) {
      if (this.#closed || Date.now() > deadline) {
        throw new Error(`the session of client "${clientId}" could not be written to JetStream: it is still held here`)
      }
      if (!(await this.#kick())) await delay(Math.min(this.#retryMs, Math.max(0, deadline - Date.now())))
    }
    this.discard(clientId)
  }

  /**
   * Drop a session from this node's memory with its notes, writing nothing (another node owns it now and must be
   * its only writer).
   */
  discard(clientId: string): void {
    this.sessions.delete(clientId)
    this.dropNotes(clientId)
    this.wipes.delete(clientId)
    this.stored.delete(clientId)
    this.writtenSeqs.delete(clientId)
    this.#writtenAt.delete(clientId)
  }

  /** Write what is pending (trying for at most `timeoutMs`) and stop. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.#closed) return
    const deadline = Date.now() + timeoutMs
    while (this.pending > 0 && Date.now() < deadline) {
      if (!(await this.#kick())) await delay(Math.min(this.#retryMs, Math.max(0, deadline - Date.now())))
    }
    this.#closed = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  // ---- reading --------------------------------------------------------------------------------------------------------

  /** Read a session from the bucket and hold it (one read at a time per client). */
  #take(clientId: string, before: () => Promise<number>): Promise<Session | undefined> {
    const reading = this.#reading.get(clientId)
    if (reading !== undefined) return reading
    const p = (async () => {
      const datedFrom = await before()
      await this.#settle(clientId)
      const held = this.sessions.get(clientId)
      if (held !== undefined) return held // set here meanwhile
      const found = await this.#read(clientId)
      if (found === undefined) return undefined
      const again = this.sessions.get(clientId)
      if (again !== undefined) return again
      const { session, seqs, expired, writtenAt } = found
      this.#writtenAt.set(clientId, writtenAt)
      session.disconnectedAt ??= datedFrom
      this.sessions.set(clientId, session)
      this.stored.add(clientId)
      this.writtenSeqs.set(clientId, seqs)
      // queued messages that expired in the bucket leave it with the next batch
      for (const seq of expired) this.droppedEntry(session, { seq } as Queued)
      return session
    })()
    this.#reading.set(clientId, p)
    const done = () => this.#reading.delete(clientId)
    p.then(done, done)
    return p
  }

  /** This node's own pending writes of a client land before the bucket is read. */
  async #settle(clientId: string): Promise<void> {
    const deadline = Date.now() + this.#forgetTimeoutMs
    while (this.#pendingFor(clientId) && Date.now() < deadline && !this.#closed) {
      if (!(await this.#kick())) await delay(Math.min(this.#retryMs, Math.max(0, deadline - Date.now())))
    }
  }

  async #read(clientId: string): Promise<{ session: Session; seqs: Set<number>; expired: number[]; writtenAt: number } | undefined> {
    const kv = this.#b.sessions
    const rec = await kv.get(sessionKey(clientId))
    if (rec === null || rec.operation !== 'PUT') return undefined
    const record = decodeSessionRecord(rec.value)
    const s = sessionOfRecord(record)
    const found: KvEntry[] = []
    const it = await kv.history({ key: entriesFilter(clientId) })
    for await (const e of it) if (e.operation === 'PUT') found.push(e)
    const seqs = new Set<number>()
    const expired: number[] = []
    const now = Date.now()
    for (const e of found.map((x) => decodeEntry(x.value)).sort((a, b) => a.seq - b.seq)) {
      seqs.add(e.seq)
      if (!restoreEntry(s, e, now)) expired.push(e.seq)
    }
    return { session: s, seqs, expired, writtenAt: record.writtenAt }
  }

  // ---- noting ---------------------------------------------------------------------------------------------------------

  protected touched(): void {
    if (this.#closed) return
    if (this.pendingNotes > MAX_PENDING && this.#queued === null) {
      void this.#kick()
      return
    }
    if (this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null
        void this.#kick()
      }, this.#interval)
      this.#timer.unref()
    }
  }

  /** Is this entry in the bucket, or on its way there (in the batch being written)? */
  protected override mayBeStored(clientId: string, seq: number): boolean {
    if (this.writtenSeqs.get(clientId)?.has(seq) === true) return true
    const e = this.#batch?.notes.get(clientId)?.entries?.get(seq)
    return e !== undefined && e !== null
  }

  #pendingFor(clientId: string): boolean {
    return this.notes.has(clientId) || this.wipes.has(clientId) ||
      (this.#batch !== null && (this.#batch.notes.has(clientId) || this.#batch.wipes.has(clientId)))
  }

  // ---- writing --------------------------------------------------------------------------------------------------------

  /** Run one batch after the one under way (one queued at most): whether it was written. */
  #kick(): Promise<boolean> {
    if (this.#queued !== null) return this.#queued
    const run = this.#chain.then(() => {
      this.#queued = null
      return this.#runBatch()
    })
    this.#queued = run
    this.#chain = run.catch(() => false)
    return run
  }

  async #runBatch(): Promise<boolean> {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    if (this.wipes.size === 0 && this.notes.size === 0) return true
    await this.#beforeWrite()
    if (this.wipes.size === 0 && this.notes.size === 0) return true
    const batch: Batch = { wipes: this.wipes, notes: this.notes }
    this.wipes = new Set()
    this.notes = new Map()
    this.pendingNotes = 0
    this.#batch = batch
    const started = performance.now()
    try {
      await this.#write(batch)
    } catch (err) {
      this.#batch = null
      this.#failed(batch, err)
      return false
    }
    this.#batch = null
    this.stats.batches++
    this.stats.lastMs = performance.now() - started
    return true
  }

  /** Removals first (a session deleted and begun again in one batch), then the values. */
  async #write(batch: Batch): Promise<void> {
    const removals: Array<() => Promise<void>> = []
    const purge = (key: string) => async () => {
      await purgeKey(this.#b, this.#bucket, key)
      this.stats.purges++
    }
    const wiped: string[] = []
    const wipe = (clientId: string) => {
      removals.push(purge(sessionKey(clientId)), purge(entriesFilter(clientId)))
      wiped.push(clientId)
    }
    for (const clientId of batch.wipes) wipe(clientId)
    const writes: Array<() => Promise<void>> = []
    const now = Date.now()
    for (const [clientId, notes] of batch.notes) {
      const s = notes.session
      if (this.sessions.get(clientId) !== s) continue // replaced or dropped since
      if (!kept(s)) {
        if (!batch.wipes.has(clientId)) wipe(clientId)
        continue
      }
      // a session this node has not written nor read: nothing stale stays under its entry keys
      if (!this.stored.has(clientId) && !batch.wipes.has(clientId)) removals.push(purge(entriesFilter(clientId)))
      const record = encodeSessionRecord(s, this.#nodeId, now)
      writes.push(async () => {
        await this.#b.sessions.put(sessionKey(clientId), record)
        this.stats.puts++
      })
      if (notes.entries === null || s.expiryIntervalSec === 0) continue
      for (const [seq, e] of notes.entries) {
        if (e === null) {
          writes.push(async () => {
            await purgeKey(this.#b, this.#bucket, entryKey(clientId, seq))
            this.stats.purges++
            this.writtenSeqs.get(clientId)?.delete(seq)
          })
        } else {
          const value = encodeEntry(e)
          writes.push(async () => {
            await this.#b.sessions.put(entryKey(clientId, seq), value)
            this.stats.puts++
          })
        }
      }
    }
    await runAll(removals, this.#maxInFlight)
    for (const clientId of wiped) {
      this.stored.delete(clientId)
      this.writtenSeqs.delete(clientId)
    }
    // what follows may land: the keys count as stored from here
    for (const [clientId, notes] of batch.notes) {
      const s = notes.session
      if (this.sessions.get(clientId) !== s || !kept(s)) continue
      this.stored.add(clientId)
      if (notes.entries === null || s.expiryIntervalSec === 0) continue
      let seqs = this.writtenSeqs.get(clientId)
      for (const [seq, e] of notes.entries) {
        if (e === null) continue
        if (seqs === undefined) this.writtenSeqs.set(clientId, (seqs = new Set()))
        seqs.add(seq)
      }
    }
    await runAll(writes, this.#maxInFlight)
  }

  /** A batch failed (parts of it may have landed): its notes are merged under the newer ones and tried again. */
  #failed(batch: Batch, err: unknown): void {
    this.stats.errors++
    for (const clientId of batch.wipes) {
      if (!this.wipes.has(clientId)) {
        this.wipes.add(clientId)
      }
    }
    for (const [clientId, old] of batch.notes) {
      if (this.sessions.get(clientId) !== old.session) continue
      const current = this.notes.get(clientId)
      if (current === undefined) {
        this.notes.set(clientId, old)
        this.pendingNotes += noteCount(old)
        continue
      }
      if (current.session !== old.session || old.entries === null) continue
      const entries = (current.entries ??= new Map())
      for (const [seq, e] of old.entries) {
        if (entries.has(seq)) continue
        entries.set(seq, e)
        this.pendingNotes++
      }
    }
    const now = Date.now()
    if (now - this.#lastErrorLog > 1000) {
      this.#lastErrorLog = now
      this.#logger?.error({ err, pending: this.pending }, 'writing MQTT sessions to JetStream failed: kept in memory, retrying')
    }
    if (!this.#closed) {
      if (this.#timer !== null) clearTimeout(this.#timer)
      this.#timer = setTimeout(() => {
        this.#timer = null
        void this.#kick()
      }, this.#retryMs)
      this.#timer.unref()
    }
  }
}

/** Run the tasks, `limit` at a time; rejects with the first error once all have settled. */
async function runAll(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0
  let failure: { err: unknown } | null = null
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++]
      try {
        await task()
      } catch (err) {
        failure ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker))
  if (failure !== null) throw (failure as { err: unknown }).err
}
