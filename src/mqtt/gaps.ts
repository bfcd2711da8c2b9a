// How late connected clients' packets come relative to their keepalive: a histogram of (silence between two chunks)
// / keepalive, broker-wide and per timeout profile, and of the longest such silence of the clients later dropped for
// keepalive_timeout. Fed only for silences over half the keepalive, so the packet path stays one comparison.

/** Upper bounds (inclusive) of the gap-ratio buckets; one more bucket past the last holds anything larger. */
export const GAP_RATIO_BUCKETS: readonly number[] = Object.freeze([0.5, 0.75, 1, 1.1, 1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5])

/** Index of the bucket holding `ratio`: the first edge >= ratio, or the overflow bucket. */
export function gapBucketIndex(ratio: number): number {
  let i = 0
  while (i < GAP_RATIO_BUCKETS.length && GAP_RATIO_BUCKETS[i] < ratio) i++
  return i
}

/** One histogram: counts per bucket (the overflow bucket last) and the largest keepalive seen. */
export interface GapCounts {
  counts: number[]
  maxKeepaliveSec: number
}

/** An empty histogram. */
export const emptyCounts = (): GapCounts => ({ counts: new Array<number>(GAP_RATIO_BUCKETS.length + 1).fill(0), maxKeepaliveSec: 0 })

/** What the broker's stats expose (since start, never reset). */
export class KeepaliveGaps {
  /** late gaps of connected clients (gap > keepalive / 2), broker-wide */
  readonly all = emptyCounts()
  /** the same per timeout profile (key '' = no profile) */
  readonly byProfile = new Map<string, GapCounts>()
  /** per client dropped for keepalive_timeout: the bucket of its longest earlier late gap (0 = none over half) */
  readonly dropped = emptyCounts()
  /** the same per profile */
  readonly droppedByProfile = new Map<string, GapCounts>()

  /** One late gap (`ratio` = silence / keepalive). */
  observe(ratio: number, keepaliveSec: number, profile: string | null): void {
    const b = gapBucketIndex(ratio)
    bump(this.all, b, keepaliveSec)
    bump(of(this.byProfile, profile), b, keepaliveSec)
  }

  /** A client dropped for keepalive_timeout, with its longest late gap before (0 when none was over half). */
  droppedAfter(maxRatio: number, keepaliveSec: number, profile: string | null): void {
    const b = gapBucketIndex(maxRatio)
    bump(this.dropped, b, keepaliveSec)
    bump(of(this.droppedByProfile, profile), b, keepaliveSec)
  }
}

function of(m: Map<string, GapCounts>, profile: string | null): GapCounts {
  const key = profile ?? ''
  let c = m.get(key)
  if (!c) m.set(key, (c = emptyCounts()))
  return c
}

function bump(c: GapCounts, bucket: number, keepaliveSec: number): void {
  c.counts[bucket]++
  if (keepaliveSec > c.maxKeepaliveSec) c.maxKeepaliveSec = keepaliveSec
}
