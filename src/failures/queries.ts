// The reads the REST routes make: list (one prepared statement per combination of filters), get, after, counts per
// bucket and the latency window, the last two with the per-minute counters not yet written.
import type { TransportKind } from '../contracts/connection.ts'
import type Database from 'better-sqlite3'
import type { FailureCounts, FailurePage, FailureRecord, LatencyHistogram, LatencyWhatIf } from './schema.ts'
import type { FailureReason } from '../contracts/failure.ts'
import { countBuckets, countsWindow, type MinuteCounts, type StoredCount } from './counts.ts'
import {
  addToBucket, histogram, latencyCounters, whatIf, type LatencyMinute, type PendingLatency,
} from './latency.ts'
import { COLUMNS, toRecord, type StoredRow } from './rows.ts'
import { minuteOf } from './time.ts'

export interface FailureQuery {
  reason?: FailureReason
  /** prefix */
  clientId?: string
  remoteAddress?: string
  transport?: TransportKind
  /** the timeout profile; null = connections under the global values */
  profile?: string | null
  /** the node it happened on */
  node?: string
  /** epoch ms, inclusive */
  since?: number
  /** epoch ms, inclusive */
  until?: number
  /** id cursor: only records older (smaller id) than this */
  before?: number
  /** 1..1000, default 100 */
  limit?: number
}

export interface Queries {
  list(q?: FailureQuery): FailurePage
  get(id: number): FailureRecord | null
  after(afterId: number, limit: number): FailureRecord[]
  counts(q: { since: number; until: number; bucketMs: number }): FailureCounts
  latency(q: { since: number; until: number }, thresholdMs: number): { latency: LatencyHistogram; whatIf: LatencyWhatIf }
}

/** `pending`: the counters not yet written, added to what the tables hold. */
export function createQueries(
  db: Database.Database, pending: { latency: PendingLatency; counts: MinuteCounts },
): Queries {
  const getById = db.prepare<[number], StoredRow>(`SELECT ${COLUMNS} FROM failures WHERE id = ?`)
  const afterId = db.prepare<[number, number], StoredRow>(
    `SELECT ${COLUMNS} FROM failures WHERE id > ? ORDER BY id LIMIT ?`,
  )
  const countsQuery = db.prepare<{ since: number; until: number; bucketMs: number }, StoredCount>(
    `SELECT CAST((minute - @since) / @bucketMs AS INTEGER) AS idx, reason,
      sum(records) AS records, sum(failures) AS failures
    FROM failure_counts WHERE minute >= @since AND minute < @until
    GROUP BY idx, reason`)
  const latencyQuery = db.prepare<{ since: number; until: number }, Omit<LatencyMinute, 'minute'>>(
    `SELECT bucket, sum(count) AS count, sum(sum_ms) AS sumMs, max(max_ms) AS maxMs FROM connect_latency
    WHERE minute >= @since AND minute <= @until GROUP BY bucket`)

  /** List statements, one per combination of filters, each prepared the first time it is needed. */
  const listStatements = new Map<string, Database.Statement<[Record<string, unknown>], StoredRow>>()
  const listStatement = (q: FailureQuery) => {
    const where: string[] = []
    if (q.reason !== undefined) where.push('reason = @reason')
    // [prefix, prefix + U+10FFFF): every string starting with the prefix, using the index (BINARY collation)
    if (q.clientId !== undefined) where.push('client_id >= @clientId AND client_id < @clientIdEnd')
    if (q.remoteAddress !== undefined) where.push('remote_address = @remoteAddress')
    if (q.transport !== undefined) where.push('transport = @transport')
    if (q.profile !== undefined) where.push(q.profile === null ? 'profile IS NULL' : 'profile = @profile')
    if (q.node !== undefined) where.push('node = @node')
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

  return {
    list(q = {}) {
      const limit = Math.max(1, Math.min(1000, Math.trunc(q.limit ?? 100)))
      const params: Record<string, unknown> = { limit: limit + 1 }
      if (q.reason !== undefined) params.reason = q.reason
      if (q.clientId !== undefined) {
        params.clientId = q.clientId
        params.clientIdEnd = `${q.clientId}\u{10FFFF}`
      }
      if (q.remoteAddress !== undefined) params.remoteAddress = q.remoteAddress
      if (q.transport !== undefined) params.transport = q.transport
      if (q.profile !== undefined && q.profile !== null) params.profile = q.profile
      if (q.node !== undefined) params.node = q.node
      if (q.since !== undefined) params.since = q.since
      if (q.until !== undefined) params.until = q.until
      if (q.before !== undefined) params.before = q.before
      const rows = listStatement(q).all(params)
      const more = rows.length > limit
      const items = (more ? rows.slice(0, limit) : rows).map((r) => toRecord(r, r.id))
      return { items, nextCursor: more ? items[items.length - 1].id : null }
    },

    get(id) {
      const r = getById.get(id)
      return r ? toRecord(r, r.id) : null
    },

    after(id, limit) {
      return afterId.all(id, Math.max(1, Math.min(1000, limit))).map((r) => toRecord(r, r.id))
    },

    counts(q) {
      const w = countsWindow(q)
      return countBuckets(w, countsQuery.all(w), pending.counts.values())
    },

    latency(q, thresholdMs) {
      // the stored minutes plus those not yet written, from one read
      const window = latencyCounters(minuteOf(q.since), q.until)
      for (const r of latencyQuery.all({ since: window.since, until: q.until })) addToBucket(window, r)
      for (const p of pending.latency.values()) {
        if (p.minute >= window.since && p.minute <= q.until) addToBucket(window, p)
      }
      return { latency: histogram(window), whatIf: whatIf(thresholdMs, window) }
    },
  }
}
