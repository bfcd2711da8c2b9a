// The failure log: composes the buffered writer, flood folding, pruning and the queries the REST routes make into
// the one store the app decorates, with its options and interface.
import { hostname } from 'node:os'
import type Database from 'better-sqlite3'
import type { FailureCounts, FailureLogStats, FailurePage, FailureRecord, LatencyHistogram, LatencyWhatIf } from './schema.ts'
import type { FailureEvent } from '../contracts/failure.ts'
import type { Logger } from '../contracts/logger.ts'
import { MinuteCounts } from './counts.ts'
import { FoldTable, sourceKey } from './fold.ts'
import { PendingLatency } from './latency.ts'
import { createPruner, type FailureLogLimits } from './prune.ts'
import { createQueries, type FailureQuery } from './queries.ts'
import { num, type Row } from './rows.ts'
import { rateLimitedWarn } from './warn.ts'
import { createWriter, newCounters, type FailureLogEvents, type ForeignRecord } from './writer.ts'

export { LATENCY_BUCKETS_MS, latencyBucketIndex } from './latency.ts'
export type { FailureLogLimits } from './prune.ts'
export type { FailureQuery } from './queries.ts'
export type { FailureLogEvents, FoldedUpdate, ForeignRecord } from './writer.ts'

export interface FailureLogOptions {
  /** Read on every pruning pass, so a settings change applies from the next tick. */
  limits: () => FailureLogLimits
  /** The limits used when limits() throws. */
  defaultLimits: FailureLogLimits
  /** this node's id (NODE_ID, or hostname:port): on every record it writes, and on older records without one (default: the host's name) */
  node?: string
  logger?: Logger
  /** ms between flushes (default 250) */
  flushIntervalMs?: number
  /** rows per transaction; more waiting are written on the next turn of the event loop (default 1000) */
  maxBatch?: number
  /** a transaction stops taking rows after this many ms, so one flush never holds the event loop long (default 15) */
  maxSliceMs?: number
  /** rows held in memory before new ones are dropped and counted (default 10000) */
  maxPending?: number
  /** records written per source (remote address + reason) per fold window before the rest are folded (default 10) */
  foldAfter?: number
  /** the fold window, ms (default 1000) */
  foldWindowMs?: number
  /** sources tracked for folding (default 5000) */
  maxSources?: number
  /** rows deleted per pruning pass (default 5000) */
  pruneBatch?: number
  /** ms between pruning passes when nothing is being written (default 5000) */
  pruneIdleMs?: number
  /** start the flush timer (default true; tests of batching may call flush() themselves) */
  autoFlush?: boolean
  now?: () => number
}

export interface FailureLog {
  /** Never throws, never blocks: the event is buffered (or folded, or dropped and counted). */
  record(e: FailureEvent): void
  /** One successful client's time from socket open to complete CONNECT. */
  recordConnectLatency(ms: number): void
  /** this node's id, on every record it writes */
  readonly node: string
  /**
   * Cluster mode: records of other nodes (pulled from PostgreSQL), written at once and emitted as 'record' like this
   * node's own; one already held (same pgId) is skipped. Returns how many were new.
   */
  adopt(records: readonly ForeignRecord[]): number
  /** Writes everything buffered now, then runs one pruning pass (tests, shutdown). */
  flush(): void
  /** Stops the timer and flushes; later records are dropped and counted. */
  close(): void
  stats(): FailureLogStats
  list(q?: FailureQuery): FailurePage
  get(id: number): FailureRecord | null
  /** Records with id > afterId, oldest first (SSE replay after Last-Event-ID). */
  after(afterId: number, limit: number): FailureRecord[]
  counts(q: { since: number; until: number; bucketMs: number }): FailureCounts
  /**
   * The connect-latency histogram of the window, and how many of its connections took longer than thresholdMs:
   * both from one read of the counters.
   */
  latency(q: { since: number; until: number }, thresholdMs: number): { latency: LatencyHistogram; whatIf: LatencyWhatIf }
  on<K extends keyof FailureLogEvents>(event: K, listener: (...args: FailureLogEvents[K]) => void): void
  off<K extends keyof FailureLogEvents>(event: K, listener: (...args: FailureLogEvents[K]) => void): void
  listenerCount(event: keyof FailureLogEvents): number
}

/**
 * Counts per minute and reason, and the connect latency of successful clients, are kept as counters per minute (not
 * read from the rows), so that stats cost the same whatever failureLogMaxRows is.
 *
 * Bounded by construction: the buffer (maxPending rows), the per-source fold table (maxSources keys), the rows and
 * the time per transaction (maxBatch, maxSliceMs), the rows in the table (failureLogMaxRows, failureLogMaxAgeDays)
 * and every stored string (rows.ts).
 */
export function createFailureLog(db: Database.Database, opts: FailureLogOptions): FailureLog {
  const now = opts.now ?? Date.now
  const node = opts.node ?? hostname()
  // records from before the node was kept were written here
  db.prepare('UPDATE failures SET node = ? WHERE node IS NULL').run(node)
  const warn = rateLimitedWarn(opts.logger, now)
  const counters = newCounters()
  /** the per-minute counters not yet written */
  const latency = new PendingLatency()
  const counts = new MinuteCounts()
  const sources = new FoldTable<Row>({
    foldAfter: opts.foldAfter ?? 10,
    windowMs: opts.foldWindowMs ?? 1000,
    maxSources: opts.maxSources ?? 5000,
  }, (summary) => summary.state !== 'dropped')
  const pruner = createPruner(db, {
    limits: opts.limits,
    defaultLimits: opts.defaultLimits,
    pruneBatch: opts.pruneBatch ?? 5000,
    pruneIdleMs: opts.pruneIdleMs ?? 5000,
    now,
    warn,
    counters,
  })
  const queries = createQueries(db, { latency, counts })
  const writer = createWriter(db, {
    node,
    flushIntervalMs: opts.flushIntervalMs ?? 250,
    maxBatch: opts.maxBatch ?? 1000,
    maxSliceMs: opts.maxSliceMs ?? 15,
    maxPending: opts.maxPending ?? 10_000,
    autoFlush: opts.autoFlush !== false,
    now,
    log: opts.logger,
    warn,
    counters,
    pruner,
    latency,
    counts,
    onTick: (t) => sources.sweep(t),
  })
  const { events } = writer

  function record(e: FailureEvent): void {
    try {
      counters.recorded++
      if (writer.closed) {
        counters.dropped++
        return
      }
      const t = now()
      const at = num(e.occurredAt) || t
      counts.at(at, e.reason).failures++
      const key = sourceKey(e.remoteAddress, e.reason)
      const decision = sources.decide(key, t)
      if (decision === 'write') writer.enqueue(e, at)
      else if (decision === 'summarise') sources.setSummary(key, writer.enqueue(e, at))
      else writer.fold(decision, at)
    } catch (err) {
      counters.dropped++
      warn('failure log could not take a record', { err })
    }
  }

  function recordConnectLatency(ms: number): void {
    try {
      if (writer.closed || typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return
      counters.latencySamples++
      latency.add(now(), ms)
    } catch (err) {
      warn('failure log could not take a latency sample', { err })
    }
  }

  return {
    record,
    recordConnectLatency,
    node,
    adopt: writer.adopt,
    flush: writer.flush,
    close: writer.close,
    stats: () => ({ ...counters, pending: writer.pending, rows: pruner.rows }),
    ...queries,
    on: (event, listener) => void events.on(event, listener as never),
    off: (event, listener) => void events.off(event, listener as never),
    listenerCount: (event) => events.listenerCount(event),
  }
}
