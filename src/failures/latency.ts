// Connect-latency maths: the bucket edges, the samples per minute and bucket not yet written, and the histogram
// (percentiles) and what-if answered from a window's bucket counters. Pure: no I/O.
import type { LatencyHistogram, LatencyWhatIf } from './schema.ts'
import { iso, minuteOf } from './time.ts'

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

/** The samples of one bucket. */
export interface BucketCounter {
  count: number
  sumMs: number
  maxMs: number
}

/** The samples of one bucket in one minute, as the connect_latency table holds them. */
export interface LatencyMinute extends BucketCounter {
  minute: number
  bucket: number
}

/** A window's counters: one per bucket, the overflow bucket last. */
export interface LatencyCounters {
  since: number
  until: number
  c: BucketCounter[]
}

/** Empty counters for the window, to be filled with addToBucket(). */
export const latencyCounters = (since: number, until: number): LatencyCounters => ({
  since,
  until,
  c: Array.from({ length: OVERFLOW_BUCKET + 1 }, () => ({ count: 0, sumMs: 0, maxMs: 0 })),
})

/** Adds one bucket's samples (of a minute, stored or pending) to the window's counters. */
export function addToBucket({ c }: LatencyCounters, { bucket, count, sumMs, maxMs }: Omit<LatencyMinute, 'minute'>): void {
  const b = c[bucket]
  if (!b) return
  b.count += count
  b.sumMs += sumMs
  if (maxMs > b.maxMs) b.maxMs = maxMs
}

/** Samples per minute and bucket not yet written. */
export class PendingLatency {
  /** by `${minute}:${bucket}` */
  #pending = new Map<string, LatencyMinute>()

  get size(): number {
    return this.#pending.size
  }

  add(t: number, ms: number): void {
    const minute = minuteOf(t)
    const bucket = latencyBucketIndex(ms)
    const key = `${minute}:${bucket}`
    const c = this.#pending.get(key)
    if (c) {
      c.count++
      c.sumMs += ms
      if (ms > c.maxMs) c.maxMs = ms
    } else {
      this.#pending.set(key, { minute, bucket, count: 1, sumMs: ms, maxMs: ms })
    }
  }

  values(): IterableIterator<LatencyMinute> {
    return this.#pending.values()
  }

  /** Hands over what is pending (to be written) and starts afresh. */
  take(): Map<string, LatencyMinute> {
    const taken = this.#pending
    this.#pending = new Map()
    return taken
  }
}

export function histogram({ since, until, c }: LatencyCounters): LatencyHistogram {
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

export function whatIf(thresholdMs: number, { since, until, c }: LatencyCounters): LatencyWhatIf {
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
