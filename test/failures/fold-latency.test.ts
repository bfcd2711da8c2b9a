// The failure log's pure parts without SQLite: flood folding decisions over windows (with a hand-moved clock), the
// latency histogram's percentiles and what-if at a bucket edge and inside a bucket, and count buckets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FoldTable, sourceKey } from '../../src/failures/fold.ts'
import {
  addToBucket, histogram, LATENCY_BUCKETS_MS, latencyBucketIndex, latencyCounters, PendingLatency, whatIf,
} from '../../src/failures/latency.ts'
import { countBuckets, countsWindow, MinuteCounts } from '../../src/failures/counts.ts'
import { MINUTE_MS } from '../../src/failures/time.ts'

interface Summary { name: string; live: boolean }

function table(maxSources = 100) {
  return new FoldTable<Summary>({ foldAfter: 3, windowMs: 1000, maxSources }, (s) => s.live)
}

test('a source gets foldAfter rows per window, then one summary the rest fold into', () => {
  const folds = table()
  const key = sourceKey('10.0.0.1', 'connect_timeout')
  assert.deepEqual([0, 10, 20].map((t) => folds.decide(key, t)), ['write', 'write', 'write'])
  assert.equal(folds.decide(key, 30), 'summarise', 'the 4th in the window becomes the summary')
  const summary = { name: 's1', live: true }
  folds.setSummary(key, summary)
  assert.equal(folds.decide(key, 40), summary)
  assert.equal(folds.decide(key, 999), summary, 'still the same window')

  // another reason from the same address is another source
  assert.equal(folds.decide(sourceKey('10.0.0.1', 'protocol_error'), 50), 'write')
})

test('a summary that could not be written, or was lost, is replaced by the next failure', () => {
  const folds = table()
  const key = sourceKey('10.0.0.2', 'connect_timeout')
  for (let i = 0; i < 3; i++) folds.decide(key, i)
  assert.equal(folds.decide(key, 5), 'summarise')
  folds.setSummary(key, null)
  assert.equal(folds.decide(key, 6), 'summarise', 'buffer was full: the next one tries again')
  const lost = { name: 'lost', live: true }
  folds.setSummary(key, lost)
  assert.equal(folds.decide(key, 7), lost)
  lost.live = false
  assert.equal(folds.decide(key, 8), 'summarise', 'a summary lost to a write error takes no more folds')
})

test('a flood that goes on without a gap folds from the first failure of the next window; a quiet one starts afresh', () => {
  const folds = table()
  const key = sourceKey('10.0.0.3', 'keepalive_timeout')
  for (let i = 0; i < 5; i++) folds.decide(key, i) // over the limit in window [0, 1000)
  assert.equal(folds.decide(key, 1500), 'summarise', 'flooding carries over into the next window')
  folds.setSummary(key, { name: 's2', live: true })
  assert.equal(folds.decide(key, 1600), folds.decide(key, 1700))
  folds.decide(key, 1800) // 4 in the window starting at 1500: over the limit again

  // but the next failure comes 2 windows after that window's start: no carry-over
  assert.equal(folds.decide(key, 3500), 'write')

  // a window at the limit (not over it) does not carry over
  const calm = sourceKey('10.0.0.4', 'keepalive_timeout')
  for (let i = 0; i < 3; i++) assert.equal(folds.decide(calm, i), 'write')
  assert.equal(folds.decide(calm, 1000), 'write')
})

test('a full source table gives untracked sources rows of their own and sweeps at most once per window', () => {
  const folds = table(2)
  folds.decide('a', 0)
  folds.decide('b', 0)
  assert.equal(folds.size, 2)
  for (let i = 0; i < 10; i++) assert.equal(folds.decide('c', 10 + i), 'write', 'untracked: never folded')
  assert.equal(folds.size, 2)

  // 'a' and 'b' have been quiet for two windows: the next new source sweeps them out and is tracked
  assert.equal(folds.decide('c', 2000), 'write')
  assert.equal(folds.size, 1)
  for (let i = 0; i < 3; i++) folds.decide('c', 2001 + i)
  assert.equal(folds.decide('c', 2010), 'summarise', 'now tracked, so it folds')

  // swept at 2000: a sweep due again only at 3000, even though 'd' finds the table full before then
  folds.decide('d', 2020)
  assert.equal(folds.size, 2)
  assert.equal(folds.decide('e', 4100), 'write')
  assert.equal(folds.size, 1, 'at 4100 both are two windows old: swept, and e tracked')
  folds.sweep(4200)
  assert.equal(folds.size, 1, 'a sweep less than a window after the last does nothing')
})

const window = (samples: number[]) => {
  const pending = new PendingLatency()
  for (const ms of samples) pending.add(0, ms)
  const w = latencyCounters(0, MINUTE_MS)
  for (const p of pending.values()) addToBucket(w, p)
  return w
}

test('percentiles are the upper edge of the bucket holding the rank, capped by the max', () => {
  // 10 samples: p50 is the 5th, p90 the 9th, p99 the 10th
  const h = histogram(window([3, 12, 40, 40, 250, 900, 1400, 2600, 4900, 5200]))
  assert.equal(h.count, 10)
  assert.equal(h.meanMs, 15345 / 10)
  assert.equal(h.p50Ms, 250, '250 is an edge')
  assert.equal(h.p90Ms, 5000, '4900 lies in (4500, 5000]')
  assert.equal(h.p99Ms, 5200, 'in (5000, 6000], capped by the max 5200')
  assert.equal(h.buckets.length, LATENCY_BUCKETS_MS.length + 1)

  const one = histogram(window([1.05]))
  assert.deepEqual([one.p50Ms, one.p99Ms], [1.05, 1.05], 'the edge 1.1 is capped by the max')
  const huge = histogram(window([2_000_000]))
  assert.equal(huge.p50Ms, 2_000_000, 'the overflow bucket answers with the max')
  assert.equal(huge.buckets.at(-1)?.count, 1)

  const empty = histogram(window([]))
  assert.deepEqual([empty.count, empty.meanMs, empty.maxMs, empty.p50Ms], [0, null, null, null])
})

test('what-if is exact at a bucket edge and a range inside a bucket', () => {
  const w = window([3, 40, 250, 4600, 4900, 5200])
  assert.deepEqual(whatIf(5000, w), { thresholdMs: 5000, since: new Date(0).toISOString(), until: new Date(MINUTE_MS).toISOString(), total: 6, slower: 1, slowerMax: 1 })
  // 4800 lies inside (4500, 5000], whose samples 4600 and 4900 reach 4900: 0..2 of them are slower
  const inside = whatIf(4800, w)
  assert.deepEqual([inside.slower, inside.slowerMax], [1, 3])
  // 4950 inside the same bucket, above its max: none of it can be slower
  const aboveMax = whatIf(4950, w)
  assert.deepEqual([aboveMax.slower, aboveMax.slowerMax], [1, 1])
  // past the last edge: only the overflow bucket, and only if its max is higher
  const far = whatIf(1_500_000, window([2_000_000, 10]))
  assert.deepEqual([far.slower, far.slowerMax], [0, 1])
  assert.equal(latencyBucketIndex(1_500_000), LATENCY_BUCKETS_MS.length)
})

test('pending latency adds up per minute and bucket, and take() hands it over', () => {
  const pending = new PendingLatency()
  pending.add(5, 40)
  pending.add(MINUTE_MS - 1, 39)
  pending.add(MINUTE_MS, 40)
  assert.equal(pending.size, 2, '39 and 40 share the bucket (35, 40]; the third sample is in the next minute')
  const taken = pending.take()
  assert.equal(pending.size, 0)
  assert.deepEqual([...taken.values()], [
    { minute: 0, bucket: latencyBucketIndex(40), count: 2, sumMs: 79, maxMs: 40 },
    { minute: MINUTE_MS, bucket: latencyBucketIndex(40), count: 1, sumMs: 40, maxMs: 40 },
  ])
})

test('count buckets are whole minutes aligned to their size', () => {
  const w = countsWindow({ since: 90_000, until: 5 * MINUTE_MS, bucketMs: 90_000 })
  assert.deepEqual(w, { since: 0, until: 5 * MINUTE_MS, bucketMs: 2 * MINUTE_MS })
  const counts = new MinuteCounts()
  counts.at(30_000, 'connect_timeout').failures += 3
  counts.at(3 * MINUTE_MS, 'connect_timeout').failures++
  counts.at(3 * MINUTE_MS + 1, 'protocol_error').records++
  counts.at(5 * MINUTE_MS, 'protocol_error').failures++ // at until: outside
  const c = countBuckets(w, [{ idx: 0, reason: 'protocol_error', failures: 2, records: 1 }], counts.values())
  assert.deepEqual(c.buckets.map((b) => [b.start, b.total, b.counts]), [
    [new Date(0).toISOString(), 5, { protocol_error: 2, connect_timeout: 3 }],
    [new Date(2 * MINUTE_MS).toISOString(), 1, { connect_timeout: 1, protocol_error: 0 }],
    [new Date(4 * MINUTE_MS).toISOString(), 0, {}],
  ])
  assert.equal(c.total, 6)
  assert.equal(c.records, 2)
  assert.equal(c.totals.connect_timeout, 4)
})
