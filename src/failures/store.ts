// The failure log: failure events are buffered in memory and written in one transaction per tick; a flood from one
// source is folded into summary rows; pruning by rows and age runs in small batches on every tick; queries serve the
// REST routes. Counts per minute and reason, and the connect latency of successful clients, are kept as counters per
// minute (not read from the rows), so that stats cost the same whatever failureLogMaxRows is.
//
// Bounded by construction: the buffer (maxPending rows), the per-source fold table (maxSources keys), the rows and
// the time per transaction (maxBatch, maxSliceMs), the rows in the table (failureLogMaxRows, failureLogMaxAgeDays)
// and every stored string.
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type Database from 'better-sqlite3'
import type {
  FailureCounts, FailureLogStats, FailurePage, FailureRecord, LatencyHistogram, LatencyWhatIf,
} from './schema.ts'
import {
  FAILURE_REASONS, FIRST_BYTES_MAX, type FailureEvent, type FailurePhase, type FailureReason,
} from '../contracts/failure.ts'
import type { Logger } from '../contracts/logger.ts'
import { DEFAULT_SETTINGS } from '../settings/schema.ts'

const DAY_MS = 86_400_000
const MINUTE_MS = 60_000

/**
 * Upper bounds (ms, inclusive) of the connect-latency buckets: 18 per decade on round numbers, from 1 ms to 1000 s,
 * so that round thresholds (500, 1500, 2000, 5000 ms...) fall on an edge and a what-if at them is exact.
 * One more bucket past the last edge holds anything larger. Stored by index: changing this list needs a migration.
 */
export const LATENCY_BUCKETS_MS: readonly number[] = (() => {
  const mantissas = [1, 1.1, 1.2, 1.3, 1.5, 1.7, 2, 2.2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9]
  const edges: number[] = []
  for (let decade = 1; decade <= 100_000; decade *= 10) {
    for (const m of mantissas) edges.push(Math.round(m * decade * 10) / 10)
  }
  edges.push(1_000_000)
  return Object.freeze(edges)
})()
const OVERFLOW_BUCKET = LATENCY_BUCKETS_MS.length

/** Index of the bucket holding `ms`: the first edge >= ms, or the overflow bucket. */
export function latencyBucketIndex(ms: number): number {
  let lo = 0
  let hi = LATENCY_BUCKETS_MS.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (LATENCY_BUCKETS_MS[mid] < ms) lo = mid + 1
    else hi = mid
  }
  return lo
}

export interface FailureLogLimits {
  maxRows: number
  maxAgeDays: number
}

export interface FailureLogOptions {
  /** Read on every pruning pass, so a settings change applies from the next tick. */
  limits: () => FailureLogLimits
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

export interface FailureQuery {
  reason?: FailureReason
  /** prefix */
  clientId?: string
  remoteAddress?: string
  /** epoch ms, inclusive */
  since?: number
  /** epoch ms, inclusive */
  until?: number
  /** id cursor: only records older (smaller id) than this */
  before?: number
  /** 1..1000, default 100 */
  limit?: number
}

export interface FoldedUpdate {
  id: number
  foldedCount: number
  lastFoldedAt: string
}

export interface FailureLogEvents {
  /** a row was written (emitted after its transaction committed) */
  record: [FailureRecord]
  /** more failures were folded into an already written row */
  folded: [FoldedUpdate]
}

export interface FailureLog {
  /** Never throws, never blocks: the event is buffered (or folded, or dropped and counted). */
  record(e: FailureEvent): void
  /** One successful client's time from socket open to complete CONNECT. */
  recordConnectLatency(ms: number): void
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

/** A stored record as SQLite holds it: times in epoch ms. */
type StoredRow = Omit<FailureRecord, 'occurredAt' | 'lastFoldedAt' | 'reason' | 'phase'> & {
  occurredAt: number
  lastFoldedAt: number | null
  reason: FailureReason
  phase: FailurePhase
}

/** A record waiting in the buffer, or a written summary that further failures may still fold into. */
type Row = Omit<StoredRow, 'id'> & {
  id: number | null
  state: 'pending' | 'written' | 'dropped'
}

/** Fold state of one source (remote address + reason). */
interface Source {
  windowStart: number
  /** events in the current window */
  n: number
  /** the previous window was over the limit: this one folds from its first event */
  flooding: boolean
  /** the row this window's extra events fold into */
  summary: Row | null
}

interface MinuteCount {
  minute: number
  reason: string
  /** failures that happened (written, folded or dropped alike) */
  failures: number
  /** rows written */
  records: number
}

/** Each stored field's column (migrations/002-failures.sql): the one list the INSERT and the SELECTs are built from. */
const COLUMN_OF = {
  occurredAt: 'occurred_at', reason: 'reason', phase: 'phase', clientId: 'client_id', username: 'username',
  protocolVersion: 'protocol_version', keepaliveSec: 'keepalive_sec', remoteAddress: 'remote_address',
  remotePort: 'remote_port', userAgent: 'user_agent', origin: 'origin', subprotocol: 'subprotocol',
  durationMs: 'duration_ms', bytesReceived: 'bytes_received', packetsReceived: 'packets_received',
  firstBytesHex: 'first_bytes_hex', detail: 'detail', hint: 'hint', settingsVersion: 'settings_version',
  foldedCount: 'folded_count', lastFoldedAt: 'last_folded_at',
} as const satisfies Record<Exclude<keyof StoredRow, 'id'>, string>
const FIELDS = Object.keys(COLUMN_OF) as (keyof typeof COLUMN_OF)[]
/** SELECT list giving a StoredRow. */
const COLUMNS = ['id', ...FIELDS.map((f) => (COLUMN_OF[f] === f ? f : `${COLUMN_OF[f]} AS ${f}`))].join(', ')

// Client-controlled and free text is cut to a bound before it is held in memory or stored.
const MAX_ID_CHARS = 256
const MAX_HEADER_CHARS = 512
const MAX_TEXT_CHARS = 2000

const text = (v: unknown, max: number): string | null =>
  typeof v === 'string' ? (v.length > max ? v.slice(0, max) : v) : v == null ? null : text(String(v), max)
const int = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : null)
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)

const toRecord = (r: StoredRow | Row, id: number): FailureRecord => ({
  id,
  occurredAt: new Date(r.occurredAt).toISOString(),
  reason: r.reason,
  phase: r.phase,
  clientId: r.clientId,
  username: r.username,
  protocolVersion: r.protocolVersion,
  keepaliveSec: r.keepaliveSec,
  remoteAddress: r.remoteAddress,
  remotePort: r.remotePort,
  userAgent: r.userAgent,
  origin: r.origin,
  subprotocol: r.subprotocol,
  durationMs: r.durationMs,
  bytesReceived: r.bytesReceived,
  packetsReceived: r.packetsReceived,
  firstBytesHex: r.firstBytesHex,
  detail: r.detail,
  hint: r.hint,
  settingsVersion: r.settingsVersion,
  foldedCount: r.foldedCount,
  lastFoldedAt: r.lastFoldedAt === null ? null : new Date(r.lastFoldedAt).toISOString(),
})

const iso = (ms: number) => new Date(ms).toISOString()

export function createFailureLog(db: Database.Database, opts: FailureLogOptions): FailureLog {
  const flushIntervalMs = opts.flushIntervalMs ?? 250
  const maxBatch = opts.maxBatch ?? 1000
  const maxSliceMs = opts.maxSliceMs ?? 15
  const maxPending = opts.maxPending ?? 10_000
  const foldAfter = opts.foldAfter ?? 10
  const foldWindowMs = opts.foldWindowMs ?? 1000
  const maxSources = opts.maxSources ?? 5000
  const pruneBatch = opts.pruneBatch ?? 5000
  const pruneIdleMs = opts.pruneIdleMs ?? 5000
  const now = opts.now ?? Date.now
  const log = opts.logger

  // ---- statements, prepared once ----
  // takes a Row as it is: named parameters bind by name, and its other keys (id, state) are ignored
  const insertRow = db.prepare<[Row]>(`INSERT INTO failures (${FIELDS.map((f) => COLUMN_OF[f]).join(', ')})
    VALUES (${FIELDS.map((f) => `@${f}`).join(', ')})`)
  const addFolded = db.prepare(
    'UPDATE failures SET folded_count = folded_count + @delta, last_folded_at = @last WHERE id = @id',
  )
  const upsertLatency = db.prepare(`INSERT INTO connect_latency (minute, bucket, count, sum_ms, max_ms)
    VALUES (@minute, @bucket, @count, @sumMs, @maxMs)
    ON CONFLICT (minute, bucket) DO UPDATE SET count = count + excluded.count, sum_ms = sum_ms + excluded.sum_ms,
      max_ms = max(max_ms, excluded.max_ms)`)
  const pruneOldest = db.prepare(
    'DELETE FROM failures WHERE id IN (SELECT id FROM failures ORDER BY id LIMIT ?)',
  )
  const pruneOlderThan = db.prepare(
    'DELETE FROM failures WHERE id IN (SELECT id FROM failures WHERE occurred_at < ? LIMIT ?)',
  )
  // at most one hour of minutes per pass
  const pruneLatency = db.prepare(`DELETE FROM connect_latency
    WHERE minute < min(@cutoff, (SELECT min(minute) FROM connect_latency) + 3600000)`)
  const upsertCounts = db.prepare(`INSERT INTO failure_counts (minute, reason, failures, records)
    VALUES (@minute, @reason, @failures, @records)
    ON CONFLICT (minute, reason) DO UPDATE SET failures = failures + excluded.failures, records = records + excluded.records`)
  const pruneCounts = db.prepare(`DELETE FROM failure_counts
    WHERE minute < min(@cutoff, (SELECT min(minute) FROM failure_counts) + 3600000)`)
  const countRows = db.prepare('SELECT count(*) AS n FROM failures').pluck()
  const getById = db.prepare<[number], StoredRow>(`SELECT ${COLUMNS} FROM failures WHERE id = ?`)
  const afterId = db.prepare<[number, number], StoredRow>(
    `SELECT ${COLUMNS} FROM failures WHERE id > ? ORDER BY id LIMIT ?`,
  )
  const countsQuery = db.prepare<
    { since: number; until: number; bucketMs: number },
    { idx: number; reason: FailureReason; records: number; failures: number }
  >(`SELECT CAST((minute - @since) / @bucketMs AS INTEGER) AS idx, reason,
      sum(records) AS records, sum(failures) AS failures
    FROM failure_counts WHERE minute >= @since AND minute < @until
    GROUP BY idx, reason`)
  const latencyQuery = db.prepare<
    { since: number; until: number },
    { bucket: number; count: number; sumMs: number; maxMs: number }
  >(`SELECT bucket, sum(count) AS count, sum(sum_ms) AS sumMs, max(max_ms) AS maxMs FROM connect_latency
    WHERE minute >= @since AND minute <= @until GROUP BY bucket`)

  /** List statements, one per combination of filters, each prepared the first time it is needed. */
  const listStatements = new Map<string, Database.Statement<[Record<string, unknown>], StoredRow>>()
  const listStatement = (q: FailureQuery) => {
    const where: string[] = []
    if (q.reason !== undefined) where.push('reason = @reason')
    // [prefix, prefix + U+10FFFF): every string starting with the prefix, using the index (BINARY collation)
    if (q.clientId !== undefined) where.push('client_id >= @clientId AND client_id < @clientIdEnd')
    if (q.remoteAddress !== undefined) where.push('remote_address = @remoteAddress')
    if (q.since !== undefined) where.push('occurred_at >= @since')
    if (q.until !== undefined) where.push('occurred_at <= @until')
    if (q.before !== undefined) where.push('id < @before')
    const key = where.join(' AND ')
    let stmt = listStatements.get(key)
    if (!stmt) {
      stmt = db.prepare<[Record<string, unknown>], StoredRow>(
        `SELECT ${COLUMNS} FROM failures ${key ? `WHERE ${key}` : ''} ORDER BY id DESC LIMIT @limit`,
      )
      listStatements.set(key, stmt)
    }
    return stmt
  }

  // ---- state ----
  const events = new EventEmitter<FailureLogEvents>()
  events.setMaxListeners(0)
  let buffer: Row[] = []
  /** written summaries that took more folds since the last flush */
  let foldUpdates = new Map<Row, number>()
  /** latency counters not yet flushed, by `${minute}:${bucket}` */
  let latencyPending = new Map<string, { minute: number; bucket: number; count: number; sumMs: number; maxMs: number }>()
  /** failures per minute and reason not yet flushed, by `${minute}:${reason}` */
  let countsPending = new Map<string, MinuteCount>()
  const sources = new Map<string, Source>()
  const counters = {
    recorded: 0, written: 0, folded: 0, dropped: 0, pruned: 0, flushes: 0,
    lastFlushMs: 0, maxFlushMs: 0, latencySamples: 0,
  }
  let rowCount = Number(countRows.get() ?? 0)
  let closed = false
  let lastPruneAt = 0
  let pruneBacklog = true
  let lastSweepAt = 0
  let drainScheduled = false

  // Problems are logged at most once per 10 s each, with how many happened meanwhile.
  const lastWarned = new Map<string, { at: number; suppressed: number }>()
  const warn = (what: string, obj: object) => {
    const t = now()
    const w = lastWarned.get(what)
    if (w && t - w.at < 10_000) {
      w.suppressed++
      return
    }
    lastWarned.set(what, { at: t, suppressed: 0 })
    log?.warn({ ...obj, suppressedSinceLast: w?.suppressed ?? 0 }, what)
  }

  const readLimits = (): FailureLogLimits => {
    try {
      return opts.limits()
    } catch (err) {
      warn('failure log could not read its limits; using defaults', { err })
      return { maxRows: DEFAULT_SETTINGS.failureLogMaxRows, maxAgeDays: DEFAULT_SETTINGS.failureLogMaxAgeDays }
    }
  }

  const toRow = (e: FailureEvent, occurredAt: number): Row => ({
    occurredAt,
    reason: e.reason,
    phase: e.phase,
    clientId: text(e.clientId, MAX_ID_CHARS),
    username: text(e.username, MAX_ID_CHARS),
    protocolVersion: int(e.protocolVersion),
    keepaliveSec: int(e.keepaliveSec),
    remoteAddress: text(e.remoteAddress, 64),
    remotePort: int(e.remotePort),
    userAgent: text(e.userAgent, MAX_HEADER_CHARS),
    origin: text(e.origin, MAX_HEADER_CHARS),
    subprotocol: text(e.subprotocol, 128),
    durationMs: num(e.durationMs),
    bytesReceived: int(e.bytesReceived) ?? 0,
    packetsReceived: int(e.packetsReceived) ?? 0,
    firstBytesHex: text(e.firstBytesHex, FIRST_BYTES_MAX * 2) ?? '',
    detail: text(e.detail, MAX_TEXT_CHARS) ?? '',
    hint: text(e.hint, MAX_TEXT_CHARS) ?? '',
    settingsVersion: int(e.settingsVersion) ?? 0,
    foldedCount: 0,
    lastFoldedAt: null,
    id: null,
    state: 'pending',
  })

  const enqueue = (e: FailureEvent, occurredAt: number): Row | null => {
    if (buffer.length >= maxPending) {
      counters.dropped++
      warn('failure log buffer full: records dropped', { maxPending })
      return null
    }
    const row = toRow(e, occurredAt)
    buffer.push(row)
    if (buffer.length >= maxBatch) scheduleDrain()
    return row
  }

  const fold = (row: Row, at: number) => {
    row.foldedCount++
    row.lastFoldedAt = at
    counters.folded++
    if (row.state === 'written') foldUpdates.set(row, (foldUpdates.get(row) ?? 0) + 1)
  }

  const minuteCount = (map: Map<string, MinuteCount>, at: number, reason: string): MinuteCount => {
    const minute = Math.floor(at / MINUTE_MS) * MINUTE_MS
    const key = `${minute}:${reason}`
    let c = map.get(key)
    if (!c) {
      c = { minute, reason, failures: 0, records: 0 }
      map.set(key, c)
    }
    return c
  }

  const sweepSources = (t: number) => {
    lastSweepAt = t
    for (const [key, s] of sources) {
      if (t - s.windowStart >= 2 * foldWindowMs) sources.delete(key)
    }
  }

  function record(e: FailureEvent): void {
    try {
      counters.recorded++
      if (closed) {
        counters.dropped++
        return
      }
      const t = now()
      const at = num(e.occurredAt) || t
      minuteCount(countsPending, at, e.reason).failures++
      const key = `${e.remoteAddress ?? ''}\n${e.reason}`
      let s = sources.get(key)
      if (!s) {
        // a full table is swept at most once per window: a storm of new sources must not sweep per record
        if (sources.size >= maxSources && t - lastSweepAt >= foldWindowMs) sweepSources(t)
        if (sources.size < maxSources) {
          s = { windowStart: t, n: 0, flooding: false, summary: null }
          sources.set(key, s)
        }
      }
      if (s) {
        if (t - s.windowStart >= foldWindowMs) {
          // a flood that went on without a gap keeps folding from the first event of the next window
          s.flooding = s.n > foldAfter && t - s.windowStart < 2 * foldWindowMs
          s.windowStart = t
          s.n = 0
          s.summary = null
        }
        s.n++
        if (s.flooding || s.n > foldAfter) {
          if (s.summary && s.summary.state !== 'dropped') {
            fold(s.summary, at)
          } else {
            s.summary = enqueue(e, at)
          }
          return
        }
      }
      enqueue(e, at)
    } catch (err) {
      counters.dropped++
      warn('failure log could not take a record', { err })
    }
  }

  function recordConnectLatency(ms: number): void {
    try {
      if (closed || typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return
      counters.latencySamples++
      const minute = Math.floor(now() / MINUTE_MS) * MINUTE_MS
      const bucket = latencyBucketIndex(ms)
      const key = `${minute}:${bucket}`
      const c = latencyPending.get(key)
      if (c) {
        c.count++
        c.sumMs += ms
        if (ms > c.maxMs) c.maxMs = ms
      } else {
        latencyPending.set(key, { minute, bucket, count: 1, sumMs: ms, maxMs: ms })
      }
    } catch (err) {
      warn('failure log could not take a latency sample', { err })
    }
  }

  /**
   * One write transaction: new rows (as many as fit in maxSliceMs), fold counts of written summaries, the per-minute
   * counters, one pruning pass. Returns how many of `rows` were written.
   */
  const writeTx = db.transaction(
    (rows: Row[], folds: Map<Row, number>, latency: Iterable<Record<string, number>>,
      counts: Map<string, MinuteCount>, prune: boolean, t0: number): number => {
      let written = 0
      for (const row of rows) {
        if ((written & 63) === 63 && performance.now() - t0 > maxSliceMs) break
        row.id = Number(insertRow.run(row).lastInsertRowid)
        minuteCount(counts, row.occurredAt, row.reason).records++
        written++
      }
      for (const [row, delta] of folds) {
        if (row.id !== null) addFolded.run({ id: row.id, delta, last: row.lastFoldedAt })
      }
      for (const l of latency) upsertLatency.run(l)
      for (const c of counts.values()) upsertCounts.run(c)
      rowCount += written
      if (prune) pruneStep(written)
      return written
    },
  )

  /** Deletes beyond failureLogMaxRows (all the rows just added plus a batch) and older than failureLogMaxAgeDays. */
  function pruneStep(justAdded: number): number {
    const { maxRows, maxAgeDays } = readLimits()
    let deleted = 0
    let full = false
    if (rowCount > maxRows) {
      const want = Math.min(rowCount - maxRows, justAdded + pruneBatch)
      const n = pruneOldest.run(want).changes
      deleted += n
      rowCount -= n
      full ||= rowCount > maxRows
    }
    const cutoff = now() - maxAgeDays * DAY_MS
    const n = pruneOlderThan.run(cutoff, pruneBatch).changes
    deleted += n
    rowCount -= n
    full ||= n === pruneBatch
    pruneLatency.run({ cutoff })
    pruneCounts.run({ cutoff })
    counters.pruned += deleted
    lastPruneAt = now()
    pruneBacklog = full
    return deleted
  }

  /** Writes up to maxBatch buffered rows (and all counters) in one transaction. Returns rows left. */
  function flushBatch(forcePrune: boolean): number {
    let rows = buffer.length > maxBatch ? buffer.splice(0, maxBatch) : buffer
    if (rows === buffer) buffer = []
    const folds = foldUpdates
    foldUpdates = new Map()
    const latency = latencyPending
    latencyPending = new Map()
    const counts = countsPending
    countsPending = new Map()
    const prune = forcePrune || rows.length > 0 || pruneBacklog || now() - lastPruneAt >= pruneIdleMs
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
      try {
        rowCount = Number(countRows.get() ?? rowCount)
      } catch {
        // the table itself is unreadable; the count is corrected by the next successful recount
      }
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
      const t = now()
      if (t - lastSweepAt >= foldWindowMs) sweepSources(t)
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

  const timer = opts.autoFlush === false ? null : setInterval(tick, flushIntervalMs)
  timer?.unref()

  function flush() {
    try {
      while (flushBatch(true) > 0) { /* all of it, a slice per transaction */ }
    } catch (err) {
      warn('failure log flush failed', { err })
    }
  }

  function close() {
    if (closed) return
    if (timer) clearInterval(timer)
    flush()
    closed = true
    events.removeAllListeners()
  }

  function stats(): FailureLogStats {
    return { ...counters, pending: buffer.length, rows: rowCount }
  }

  function list(q: FailureQuery = {}): FailurePage {
    const limit = Math.max(1, Math.min(1000, Math.trunc(q.limit ?? 100)))
    const params: Record<string, unknown> = { limit: limit + 1 }
    if (q.reason !== undefined) params.reason = q.reason
    if (q.clientId !== undefined) {
      params.clientId = q.clientId
      params.clientIdEnd = `${q.clientId}\u{10FFFF}`
    }
    if (q.remoteAddress !== undefined) params.remoteAddress = q.remoteAddress
    if (q.since !== undefined) params.since = q.since
    if (q.until !== undefined) params.until = q.until
    if (q.before !== undefined) params.before = q.before
    const rows = listStatement(q).all(params)
    const more = rows.length > limit
    const items = (more ? rows.slice(0, limit) : rows).map((r) => toRecord(r, r.id))
    return { items, nextCursor: more ? items[items.length - 1].id : null }
  }

  function get(id: number): FailureRecord | null {
    const r = getById.get(id)
    return r ? toRecord(r, r.id) : null
  }

  function after(id: number, limit: number): FailureRecord[] {
    return afterId.all(id, Math.max(1, Math.min(1000, limit))).map((r) => toRecord(r, r.id))
  }

  function counts(q: { since: number; until: number; bucketMs: number }): FailureCounts {
    // counters are per minute: buckets are whole minutes, aligned to their size
    const bucketMs = Math.max(MINUTE_MS, Math.ceil(q.bucketMs / MINUTE_MS) * MINUTE_MS)
    const since = Math.floor(q.since / bucketMs) * bucketMs
    const n = Math.max(1, Math.ceil((q.until - since) / bucketMs))
    const buckets: FailureCounts['buckets'] = Array.from({ length: n }, (_, i) => ({
      start: iso(since + i * bucketMs),
      total: 0,
      counts: {},
    }))
    const totals = Object.fromEntries(FAILURE_REASONS.map((r) => [r, 0])) as Record<FailureReason, number>
    let total = 0
    let records = 0
    const add = (idx: number, reason: FailureReason, failures: number, rows: number) => {
      const b = buckets[idx]
      if (!b || !(reason in totals)) return
      b.counts[reason] = (b.counts[reason] ?? 0) + failures
      b.total += failures
      totals[reason] += failures
      total += failures
      records += rows
    }
    for (const r of countsQuery.all({ since, until: q.until, bucketMs })) add(r.idx, r.reason, r.failures, r.records)
    for (const c of countsPending.values()) {
      if (c.minute >= since && c.minute < q.until) {
        add(Math.floor((c.minute - since) / bucketMs), c.reason as FailureReason, c.failures, c.records)
      }
    }
    return { since: iso(since), until: iso(q.until), bucketSec: bucketMs / 1000, buckets, totals, total, records }
  }

  /** Per-bucket counters for the window: stored minutes plus those not yet flushed. */
  function latencyCounters(q: { since: number; until: number }) {
    const since = Math.floor(q.since / MINUTE_MS) * MINUTE_MS
    const c = Array.from({ length: OVERFLOW_BUCKET + 1 }, () => ({ count: 0, sumMs: 0, maxMs: 0 }))
    const add = (bucket: number, count: number, sumMs: number, maxMs: number) => {
      const b = c[bucket]
      if (!b) return
      b.count += count
      b.sumMs += sumMs
      if (maxMs > b.maxMs) b.maxMs = maxMs
    }
    for (const r of latencyQuery.all({ since, until: q.until })) add(r.bucket, r.count, r.sumMs, r.maxMs)
    for (const p of latencyPending.values()) {
      if (p.minute >= since && p.minute <= q.until) add(p.bucket, p.count, p.sumMs, p.maxMs)
    }
    return { since, until: q.until, c }
  }
  type LatencyCounters = ReturnType<typeof latencyCounters>

  function latency(q: { since: number; until: number }, thresholdMs: number) {
    const window = latencyCounters(q)
    return { latency: histogram(window), whatIf: whatIf(thresholdMs, window) }
  }

  function histogram({ since, until, c }: LatencyCounters): LatencyHistogram {
    let count = 0
    let sumMs = 0
    let maxMs = 0
    for (const b of c) {
      count += b.count
      sumMs += b.sumMs
      if (b.maxMs > maxMs) maxMs = b.maxMs
    }
    const percentile = (p: number): number | null => {
      if (count === 0) return null
      const rank = Math.ceil(p * count)
      let seen = 0
      for (let i = 0; i < c.length; i++) {
        seen += c[i].count
        if (seen >= rank) return i === OVERFLOW_BUCKET ? maxMs : Math.min(LATENCY_BUCKETS_MS[i], maxMs)
      }
      return maxMs
    }
    return {
      since: iso(since),
      until: iso(until),
      count,
      sumMs,
      meanMs: count ? sumMs / count : null,
      maxMs: count ? maxMs : null,
      p50Ms: percentile(0.5),
      p90Ms: percentile(0.9),
      p99Ms: percentile(0.99),
      buckets: c.map((b, i) => ({ leMs: i === OVERFLOW_BUCKET ? null : LATENCY_BUCKETS_MS[i], count: b.count })),
    }
  }

  function whatIf(thresholdMs: number, { since, until, c }: LatencyCounters): LatencyWhatIf {
    // bucket j holds (edge[j-1], edge[j]]: buckets after j are all slower; j itself only if thresholdMs < edge[j]
    const j = latencyBucketIndex(thresholdMs)
    let total = 0
    let slower = 0
    for (let i = 0; i < c.length; i++) {
      total += c[i].count
      if (i > j) slower += c[i].count
    }
    const straddling = c[j] && (j === OVERFLOW_BUCKET || LATENCY_BUCKETS_MS[j] !== thresholdMs) && c[j].maxMs > thresholdMs
    const slowerMax = slower + (straddling ? c[j].count : 0)
    return { thresholdMs, since: iso(since), until: iso(until), total, slower, slowerMax }
  }

  return {
    record,
    recordConnectLatency,
    flush,
    close,
    stats,
    list,
    get,
    after,
    counts,
    latency,
    on: (event, listener) => void events.on(event, listener as never),
    off: (event, listener) => void events.off(event, listener as never),
    listenerCount: (event) => events.listenerCount(event),
  }
}
