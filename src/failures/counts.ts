// Failures per minute and reason: the counters not yet written, and the sum of a window's minutes into count
// buckets. Pure: no I/O.
import type { FailureCounts } from './schema.ts'
import { FAILURE_REASONS, type FailureReason } from '../contracts/failure.ts'
import { iso, MINUTE_MS, minuteOf } from './time.ts'

/** One minute and reason, as the failure_counts table holds it. */
export interface MinuteCount {
  minute: number
  reason: string
  /** failures that happened (written, folded or dropped alike) */
  failures: number
  /** rows written */
  records: number
}

/** Counters per minute and reason. */
export class MinuteCounts {
  /** by `${minute}:${reason}` */
  #counts = new Map<string, MinuteCount>()

  get size(): number {
    return this.#counts.size
  }

  /** The counter of the minute holding `at` and of `reason`, created at 0. */
  at(at: number, reason: string): MinuteCount {
    const minute = minuteOf(at)
    const key = `${minute}:${reason}`
    let c = this.#counts.get(key)
    if (!c) {
      c = { minute, reason, failures: 0, records: 0 }
      this.#counts.set(key, c)
    }
    return c
  }

  values(): IterableIterator<MinuteCount> {
    return this.#counts.values()
  }

  /** Hands over the counters (to be written) and starts afresh. */
  take(): MinuteCounts {
    const taken = new MinuteCounts()
    taken.#counts = this.#counts
    this.#counts = new Map()
    return taken
  }
}

/** A counts window: buckets are whole minutes, aligned to their size. */
export interface CountsWindow {
  since: number
  until: number
  bucketMs: number
}

export function countsWindow(q: CountsWindow): CountsWindow {
  // counters are per minute: buckets are whole minutes, aligned to their size
  const bucketMs = Math.max(MINUTE_MS, Math.ceil(q.bucketMs / MINUTE_MS) * MINUTE_MS)
  return { since: Math.floor(q.since / bucketMs) * bucketMs, until: q.until, bucketMs }
}

/** A stored sum of one bucket (by index from the window's start) and reason. */
export interface StoredCount {
  idx: number
  reason: FailureReason
  records: number
  failures: number
}

/** The window's buckets from the stored sums and the counters not yet written. */
export function countBuckets(
  { since, until, bucketMs }: CountsWindow, stored: Iterable<StoredCount>, pending: Iterable<MinuteCount>,
): FailureCounts {
  const n = Math.max(1, Math.ceil((until - since) / bucketMs))
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
  for (const r of stored) add(r.idx, r.reason, r.failures, r.records)
  for (const c of pending) {
    if (c.minute >= since && c.minute < until) {
      add(Math.floor((c.minute - since) / bucketMs), c.reason as FailureReason, c.failures, c.records)
    }
  }
  return { since: iso(since), until: iso(until), bucketSec: bucketMs / 1000, buckets, totals, total, records }
}
