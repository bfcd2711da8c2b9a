// The write side of the failure log: the buffer of rows, one write transaction per tick (bounded by maxBatch and
// maxSliceMs) with the fold counts, per-minute counters and a pruning pass, and the events emitted after commit.
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type Database from 'better-sqlite3'
import type { FailureLogStats, FailureRecord } from './schema.ts'
import type { FailureEvent } from '../contracts/failure.ts'
import type { Logger } from '../contracts/logger.ts'
import type { MinuteCounts } from './counts.ts'
import type { LatencyMinute, PendingLatency } from './latency.ts'
import type { Pruner } from './prune.ts'
import { INSERT_FOREIGN_ROW, INSERT_ROW, toRecord, toRow, type Row, type StoredRow } from './rows.ts'
import { iso } from './time.ts'
import type { Warn } from './warn.ts'

export interface FoldedUpdate {
  id: number
  foldedCount: number
  lastFoldedAt: string
}

/** A record written on another node of the cluster, by its id in PostgreSQL (src/control/failures.ts). */
export type ForeignRecord = Omit<StoredRow, 'id'> & { pgId: number }

export interface FailureLogEvents {
  /** a row was written (emitted after its transaction committed) */
  record: [FailureRecord]
  /** more failures were folded into an already written row */
  folded: [FoldedUpdate]
}

/** The log's counters since start (the stats without pending and rows). */
export type LogCounters = Omit<FailureLogStats, 'pending' | 'rows'>

export const newCounters = (): LogCounters => ({
  recorded: 0, written: 0, folded: 0, dropped: 0, pruned: 0, flushes: 0,
  lastFlushMs: 0, maxFlushMs: 0, latencySamples: 0,
})

export interface WriterOptions {
  /** this node's id, on every record whose event names none */
  node: string
  flushIntervalMs: number
  maxBatch: number
  maxSliceMs: number
  maxPending: number
  autoFlush: boolean
  now: () => number
  log: Logger | undefined
  warn: Warn
  counters: LogCounters
  pruner: Pruner
  /** the per-minute counters, taken and written with each transaction */
  latency: PendingLatency
  counts: MinuteCounts
  /** housekeeping after each timed write, given the time */
  onTick: (t: number) => void
}

export interface Writer {
  readonly events: EventEmitter<FailureLogEvents>
  readonly closed: boolean
  /** rows waiting in the buffer */
  readonly pending: number
  /** Buffers a row for the event; null when the buffer is full (the event is dropped and counted). */
  enqueue(e: FailureEvent, occurredAt: number): Row | null
  /** One more failure folded into `row` (buffered or written). */
  fold(row: Row, at: number): void
  /**
   * Writes records of other nodes in one transaction (one already held, by its pgId, is skipped), counts them per
   * minute and reason, and emits each as a 'record'. Returns how many were new.
   */
  adopt(records: readonly ForeignRecord[]): number
  flush(): void
  close(): void
}

export function createWriter(db: Database.Database, opts: WriterOptions): Writer {
  const { maxBatch, maxSliceMs, maxPending, now, log, warn, counters, pruner } = opts
  const insertRow = db.prepare<[Row]>(INSERT_ROW)
  const addFolded = db.prepare(
    'UPDATE failures SET folded_count = folded_count + @delta, last_folded_at = @last WHERE id = @id',
  )
  const insertForeign = db.prepare<[ForeignRecord]>(INSERT_FOREIGN_ROW)
  const upsertLatency = db.prepare(`INSERT INTO connect_latency (minute, bucket, count, sum_ms, max_ms)
    VALUES (@minute, @bucket, @count, @sumMs, @maxMs)
    ON CONFLICT (minute, bucket) DO UPDATE SET count = count + excluded.count, sum_ms = sum_ms + excluded.sum_ms,
      max_ms = max(max_ms, excluded.max_ms)`)
  const upsertCounts = db.prepare(`INSERT INTO failure_counts (minute, reason, failures, records)
    VALUES (@minute, @reason, @failures, @records)
    ON CONFLICT (minute, reason) DO UPDATE SET failures = failures + excluded.failures, records = records + excluded.records`)

  const events = new EventEmitter<FailureLogEvents>()
  events.setMaxListeners(0)
  let buffer: Row[] = []
  /** written summaries that took more folds since the last flush */
  let foldUpdates = new Map<Row, number>()
  let closed = false
  let drainScheduled = false

  /**
   * One write transaction: new rows (as many as fit in maxSliceMs), fold counts of written summaries, the per-minute
   * counters, one pruning pass. Returns how many of `rows` were written.
   */
  const writeTx = db.transaction(
    (rows: Row[], folds: Map<Row, number>, latency: Iterable<LatencyMinute>, counts: MinuteCounts,
      prune: boolean, t0: number): number => {
      let written = 0
      for (const row of rows) {
        if ((written & 63) === 63 && performance.now() - t0 > maxSliceMs) break
        row.id = Number(insertRow.run(row).lastInsertRowid)
        counts.at(row.occurredAt, row.reason).records++
        written++
      }
      for (const [row, delta] of folds) {
        if (row.id !== null) addFolded.run({ id: row.id, delta, last: row.lastFoldedAt })
      }
      for (const l of latency) upsertLatency.run(l)
      for (const c of counts.values()) upsertCounts.run(c)
      pruner.added(written)
      if (prune) pruner.step(written)
      return written
    },
  )

  /** Writes up to maxBatch buffered rows (and all counters) in one transaction. Returns rows left. */
  function flushBatch(forcePrune: boolean): number {
    let rows = buffer.length > maxBatch ? buffer.splice(0, maxBatch) : buffer
    if (rows === buffer) buffer = []
    const folds = foldUpdates
    foldUpdates = new Map()
    const latency = opts.latency.take()
    const counts = opts.counts.take()
    const prune = forcePrune || rows.length > 0 || pruner.due()
    if (rows.length === 0 && folds.size === 0 && latency.size === 0 && counts.size === 0 && !prune) return buffer.length

    const t0 = performance.now()
    try {
      const written = writeTx(rows, folds, latency.values(), counts, prune, t0)
      if (written < rows.length) {
        // out of time: the rest go back to the front of the buffer, for the next turn of the event loop
        buffer = rows.slice(written).concat(buffer)
        rows = rows.slice(0, written)
      }
    } catch (err) {
      // Lost, never retried: retrying would let a broken disk grow memory without bound.
      let lost = rows.length
      for (const row of rows) {
        row.state = 'dropped'
        lost += row.foldedCount
        counters.folded -= row.foldedCount
      }
      for (const delta of folds.values()) {
        lost += delta
        counters.folded -= delta
      }
      counters.dropped += lost
      pruner.recount()
      log?.error({ err, lost }, 'failure log write failed; records dropped')
      return buffer.length
    }
    const ms = performance.now() - t0
    counters.flushes++
    counters.lastFlushMs = ms
    if (ms > counters.maxFlushMs) counters.maxFlushMs = ms
    counters.written += rows.length
    for (const row of rows) row.state = 'written'

    if (events.listenerCount('record') > 0) {
      for (const row of rows) safely(() => events.emit('record', toRecord(row, row.id as number)))
    }
    if (events.listenerCount('folded') > 0) {
      for (const row of folds.keys()) {
        if (row.id !== null && row.lastFoldedAt !== null) {
          const update = { id: row.id, foldedCount: row.foldedCount, lastFoldedAt: iso(row.lastFoldedAt) }
          safely(() => events.emit('folded', update))
        }
      }
    }
    return buffer.length
  }

  const adoptTx = db.transaction((records: readonly ForeignRecord[]): Row[] => {
    const added: Row[] = []
    for (const r of records) {
      const result = insertForeign.run(r)
      if (result.changes === 0) continue
      added.push({ ...r, id: Number(result.lastInsertRowid), state: 'written' })
    }
    pruner.added(added.length)
    return added
  })

  /** A listener that throws is logged; the log goes on. */
  const safely = (emit: () => void) => {
    try {
      emit()
    } catch (err) {
      warn('a failure log listener threw', { err })
    }
  }

  function tick() {
    drainScheduled = false
    if (closed) return
    try {
      const left = flushBatch(false)
      opts.onTick(now())
      if (left > 0) scheduleDrain()
    } catch (err) {
      warn('failure log flush failed', { err })
    }
  }

  /** More than a batch is waiting: write the next one after other callbacks have run. */
  function scheduleDrain() {
    if (drainScheduled || closed) return
    drainScheduled = true
    setImmediate(tick)
  }

  const timer = opts.autoFlush ? setInterval(tick, opts.flushIntervalMs) : null
  timer?.unref()

  function flush() {
    try {
      while (flushBatch(true) > 0) { /* all of it, a slice per transaction */ }
    } catch (err) {
      warn('failure log flush failed', { err })
    }
  }

  return {
    events,
    get closed() {
      return closed
    },
    get pending() {
      return buffer.length
    },
    enqueue(e, occurredAt) {
      if (buffer.length >= maxPending) {
        counters.dropped++
        warn('failure log buffer full: records dropped', { maxPending })
        return null
      }
      const row = toRow(e, occurredAt, opts.node)
      buffer.push(row)
      if (buffer.length >= maxBatch) scheduleDrain()
      return row
    },
    fold(row, at) {
      row.foldedCount++
      row.lastFoldedAt = at
      counters.folded++
      if (row.state === 'written') foldUpdates.set(row, (foldUpdates.get(row) ?? 0) + 1)
    },
    adopt(records) {
      if (closed || records.length === 0) return 0
      const added = adoptTx(records)
      for (const row of added) {
        // counted as they happened there: the failures a summary stands for, and one record
        const c = opts.counts.at(row.occurredAt, row.reason)
        c.failures += 1 + row.foldedCount
        c.records++
      }
      counters.written += added.length
      if (events.listenerCount('record') > 0) {
        for (const row of added) safely(() => events.emit('record', toRecord(row, row.id as number)))
      }
      return added.length
    },
    flush,
    close() {
      if (closed) return
      if (timer) clearInterval(timer)
      flush()
      closed = true
      events.removeAllListeners()
    },
  }
}
