// The failure log store on a real SQLite file: batching, queries, pruning, folding, floods, latency histogram.
import { hostname } from 'node:os'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import { createFailureLog, latencyBucketIndex, LATENCY_BUCKETS_MS, type FailureLogOptions } from '../../src/failures/store.ts'
import type { FailureRecord } from '../../src/failures/schema.ts'
import { failureDb, failureEvent, retainedHeapMb } from './fixtures.ts'

const DAY = 86_400_000

function setup(t: { after(fn: () => void): void }, opts: Partial<FailureLogOptions> = {}) {
  const file = failureDb()
  // maxSliceMs high: how many transactions a flush takes must not depend on how loaded the machine is
  const log = createFailureLog(file.db, { limits: () => ({ maxRows: 100_000, maxAgeDays: 30 }), defaultLimits: { maxRows: 100_000, maxAgeDays: 30 }, autoFlush: false, maxSliceMs: 60_000, ...opts })
  t.after(() => {
    log.close()
    file.close()
  })
  return { ...file, log }
}

/** A clock the test moves by hand. */
function clock(start = Date.now()) {
  let t = start
  return { now: () => t, advance: (ms: number) => void (t += ms) }
}

const rowsIn = (db: Database.Database) => db.prepare('SELECT count(*) FROM failures').pluck().get() as number

test('records are buffered and written in one transaction per flush, then emitted with their ids', (t) => {
  const { db, path, log } = setup(t)
  const reader = new Database(path, { readonly: true })
  t.after(() => reader.close())
  const dataVersion = () => reader.pragma('data_version', { simple: true })
  const seen: FailureRecord[] = []
  log.on('record', (r) => seen.push(r))

  const before = dataVersion()
  for (let i = 0; i < 50; i++) log.record(failureEvent({ remoteAddress: `10.0.0.${i}`, clientId: `c${i}` }))
  assert.equal(rowsIn(reader), 0, 'nothing is written before the flush')
  assert.equal(dataVersion(), before, 'no commit happened while recording')
  assert.equal(log.stats().pending, 50)

  log.flush()
  const s = log.stats()
  assert.equal(s.flushes, 1, 'one transaction')
  assert.equal(s.written, 50)
  assert.equal(s.pending, 0)
  assert.equal(rowsIn(reader), 50)
  assert.equal(rowsIn(db), 50)
  assert.equal(seen.length, 50)
  assert.deepEqual(seen.map((r) => r.clientId), Array.from({ length: 50 }, (_, i) => `c${i}`))
  assert.ok(seen.every((r, i) => i === 0 || r.id > seen[i - 1].id), 'ids ascend in record order')
})

test('the timer flushes on its own within its interval', async (t) => {
  const { log } = setup(t, { autoFlush: true, flushIntervalMs: 20 })
  // the log's timer is unref'd (it never holds a process open): keep this test's event loop alive meanwhile
  const keepAlive = setTimeout(() => {}, 5000)
  t.after(() => clearTimeout(keepAlive))
  const written = new Promise<FailureRecord>((resolve) => log.on('record', resolve))
  log.record(failureEvent({ clientId: 'timer' }))
  const r = await written
  assert.equal(r.clientId, 'timer')
  assert.equal(log.get(r.id)?.clientId, 'timer')
})

test('every field round-trips; client text is stored as given and cut to a bound', (t) => {
  const { log } = setup(t)
  const occurredAt = Date.now() - 3_600_000 // recent: older records would be pruned by age
  const e = failureEvent({
    occurredAt,
    reason: 'keepalive_timeout',
    phase: 'connected',
    clientId: '<img src=x onerror=alert(1)>',
    username: 'bob',
    protocolVersion: 5,
    keepaliveSec: 10,
    remoteAddress: '::1',
    remotePort: 5555,
    userAgent: 'x'.repeat(5000),
    origin: 'http://example.test',
    subprotocol: 'mqtt',
    durationMs: 15000.5,
    bytesReceived: 99,
    packetsReceived: 3,
    firstBytesHex: '10',
    detail: 'nothing received for 15000 ms (keepalive 10 s x 1.5)',
    hint: 'the client or its network stalled',
    settingsVersion: 7,
  })
  log.record(e)
  log.flush()
  const [r] = log.list().items
  assert.deepEqual(log.get(r.id), r)
  assert.equal(log.get(r.id + 1000), null)
  assert.equal(r.occurredAt, new Date(occurredAt).toISOString())
  assert.equal(r.userAgent?.length, 512)
  const { occurredAt: _o, userAgent: _u, ...rest } = e
  const { id: _i, occurredAt: _ro, userAgent: _ru, foldedCount, lastFoldedAt, node, ...stored } = r
  assert.deepEqual(stored, rest)
  // the event names no node: the log's own (by default the host's name)
  assert.equal(node, hostname())
  assert.equal(foldedCount, 0)
  assert.equal(lastFoldedAt, null)
})

test('list filters by reason, client id prefix, address, since/until, and pages newest first by cursor', (t) => {
  const { log } = setup(t)
  const base = Date.now() - 3_600_000
  const reasons = ['connect_timeout', 'protocol_error', 'taken_over'] as const
  for (let i = 0; i < 60; i++) {
    log.record(failureEvent({
      occurredAt: base + i * 1000,
      reason: reasons[i % 3],
      clientId: i % 2 ? `sensor-${i}` : `cam-${i}`,
      remoteAddress: `10.1.${i % 4}.1`,
    }))
  }
  log.flush()

  const all = log.list({ limit: 1000 })
  assert.equal(all.items.length, 60)
  assert.equal(all.nextCursor, null)
  assert.ok(all.items.every((r, i) => i === 0 || r.id < all.items[i - 1].id), 'newest first')

  const cases: [string, Parameters<typeof log.list>[0], (r: FailureRecord) => boolean][] = [
    ['reason', { reason: 'protocol_error' }, (r) => r.reason === 'protocol_error'],
    ['clientId prefix', { clientId: 'sensor-' }, (r) => r.clientId!.startsWith('sensor-')],
    ['clientId prefix narrow', { clientId: 'cam-1' }, (r) => r.clientId!.startsWith('cam-1')],
    ['remoteAddress', { remoteAddress: '10.1.2.1' }, (r) => r.remoteAddress === '10.1.2.1'],
    ['since', { since: base + 30_000 }, (r) => Date.parse(r.occurredAt) >= base + 30_000],
    ['until', { until: base + 9_000 }, (r) => Date.parse(r.occurredAt) <= base + 9_000],
    ['combined', { reason: 'taken_over', clientId: 'cam', since: base + 10_000, until: base + 40_000 },
      (r) => r.reason === 'taken_over' && r.clientId!.startsWith('cam') &&
        Date.parse(r.occurredAt) >= base + 10_000 && Date.parse(r.occurredAt) <= base + 40_000],
  ]
  for (const [name, q, match] of cases) {
    const got = log.list({ ...q, limit: 1000 }).items
    const want = all.items.filter(match)
    assert.ok(want.length > 0, `${name}: the fixture has matches`)
    assert.deepEqual(got.map((r) => r.id), want.map((r) => r.id), name)
  }

  // paging: limit 7 walks every record exactly once, newest first
  const ids: number[] = []
  let before: number | undefined
  for (let pages = 0; pages < 20; pages++) {
    const page = log.list({ limit: 7, before })
    ids.push(...page.items.map((r) => r.id))
    if (page.nextCursor === null) break
    assert.equal(page.nextCursor, page.items[page.items.length - 1].id)
    before = page.nextCursor
  }
  assert.deepEqual(ids, all.items.map((r) => r.id))

  // after(): oldest first from a cursor (SSE replay)
  const oldest = all.items[all.items.length - 1].id
  assert.deepEqual(log.after(oldest, 3).map((r) => r.id), [oldest + 1, oldest + 2, oldest + 3])
})

test('pruning by rows keeps the newest failureLogMaxRows', (t) => {
  let maxRows = 100
  const { db, log } = setup(t, { limits: () => ({ maxRows, maxAgeDays: 30 }), pruneBatch: 40 })
  for (let i = 0; i < 250; i++) log.record(failureEvent({ remoteAddress: `10.2.${i >> 8}.${i & 255}`, clientId: `p${i}` }))
  log.flush()
  assert.equal(rowsIn(db), 100)
  assert.equal(log.stats().rows, 100)
  assert.equal(log.list({ limit: 1000 }).items.at(-1)?.clientId, 'p150', 'the oldest went first')

  // a lower limit is applied from the next passes, a batch at a time
  maxRows = 10
  log.flush()
  assert.equal(rowsIn(db), 60, 'one batch of 40 per pass')
  log.flush()
  log.flush()
  assert.equal(rowsIn(db), 10)
  assert.equal(log.stats().pruned, 240)
})

test('pruning by age removes records older than failureLogMaxAgeDays, in small batches', (t) => {
  const { db, log } = setup(t, { pruneBatch: 50 })
  const now = Date.now()
  for (let i = 0; i < 120; i++) {
    log.record(failureEvent({ occurredAt: now - 31 * DAY - i, remoteAddress: `10.3.0.${i}`, clientId: `old${i}` }))
  }
  for (let i = 0; i < 5; i++) log.record(failureEvent({ occurredAt: now - 29 * DAY, remoteAddress: `10.4.0.${i}`, clientId: `new${i}` }))
  log.flush()
  assert.equal(rowsIn(db), 125 - 50, 'a pass deletes at most pruneBatch')
  log.flush()
  log.flush()
  assert.equal(rowsIn(db), 5)
  assert.ok(log.list().items.every((r) => r.clientId!.startsWith('new')))
})

test('a flood from one source is folded into summary rows whose counts add up', (t) => {
  const c = clock()
  const { db, log } = setup(t, { now: c.now, foldAfter: 10, foldWindowMs: 1000 })
  const folded: { id: number; foldedCount: number; lastFoldedAt: string }[] = []
  log.on('folded', (u) => folded.push(u))
  const flood = (n: number, over = {}) => {
    for (let i = 0; i < n; i++) log.record(failureEvent({ remoteAddress: '192.0.2.7', reason: 'protocol_error', ...over }))
  }

  // window 1: 10 rows of their own, the 11th becomes the summary for the other 14
  flood(25)
  log.flush()
  let rows = log.list({ remoteAddress: '192.0.2.7', limit: 1000 }).items
  assert.equal(rows.length, 11)
  assert.equal(rows[0].foldedCount, 14)
  assert.ok(rows[0].lastFoldedAt)
  assert.ok(rows.slice(1).every((r) => r.foldedCount === 0))

  // still window 1, after the flush: folded into the written summary by an UPDATE
  flood(5)
  log.flush()
  assert.equal(log.get(rows[0].id)?.foldedCount, 19)
  assert.deepEqual(folded.at(-1), { id: rows[0].id, foldedCount: 19, lastFoldedAt: log.get(rows[0].id)?.lastFoldedAt })

  // window 2 follows without a gap: the flood goes on, so one summary row for the whole window
  c.advance(1000)
  flood(40)
  // another reason from the same address is a different source
  flood(3, { reason: 'connect_timeout' })
  log.flush()
  rows = log.list({ remoteAddress: '192.0.2.7', reason: 'protocol_error', limit: 1000 }).items
  assert.equal(rows.length, 12)
  assert.equal(rows[0].foldedCount, 39)
  assert.equal(log.list({ reason: 'connect_timeout' }).items.length, 3)

  // after a quiet gap, the source starts afresh
  c.advance(5000)
  flood(3)
  log.flush()
  assert.equal(log.list({ remoteAddress: '192.0.2.7', reason: 'protocol_error', limit: 1000 }).items.length, 15)

  const s = log.stats()
  const total = db.prepare('SELECT sum(1 + folded_count) FROM failures').pluck().get()
  assert.equal(s.recorded, 25 + 5 + 40 + 3 + 3)
  assert.equal(total, s.recorded, 'every failure is a row or counted in one')
  assert.equal(s.written + s.folded, s.recorded)
  assert.equal(s.dropped, 0)

  // stats count folded failures
  const counts = log.counts({ since: c.now() - 60_000, until: c.now() + 1, bucketMs: 60_000 })
  assert.equal(counts.total, s.recorded)
  assert.equal(counts.totals.protocol_error, 25 + 5 + 40 + 3)
  assert.equal(counts.records, rowsIn(db))
})

test('a storm stays bounded: 20k events from one source and 20k from many sources', (t) => {
  // one fold window for the whole storm, however slow the machine: the clock stands still
  const c = clock()
  const { db, log } = setup(t, { now: c.now, maxPending: 2000, maxBatch: 500, limits: () => ({ maxRows: 1000, maxAgeDays: 30 }) })
  const heapBefore = retainedHeapMb()
  let maxPending = 0

  for (let i = 0; i < 20_000; i++) {
    log.record(failureEvent({ remoteAddress: '198.51.100.1', reason: 'closed_before_connect' }))
    maxPending = Math.max(maxPending, log.stats().pending)
  }
  let s = log.stats()
  assert.equal(s.recorded, 20_000)
  assert.equal(s.pending, 11, 'one source folds: 10 rows, then one summary')
  assert.equal(s.folded, 20_000 - 11)

  for (let i = 0; i < 20_000; i++) {
    log.record(failureEvent({ remoteAddress: `203.0.${i >> 8}.${i & 255}`, reason: 'connect_timeout', userAgent: 'u'.repeat(400) }))
    maxPending = Math.max(maxPending, log.stats().pending)
  }
  s = log.stats()
  assert.ok(maxPending <= 2000, `the buffer never held more than its bound (${maxPending})`)
  assert.ok(s.dropped > 0, 'beyond the bound, records are dropped and counted')
  log.flush()
  s = log.stats()
  assert.equal(s.recorded, s.written + s.folded + s.dropped + s.pending, 'every event accounted for')
  assert.equal(s.pending, 0)
  assert.ok(rowsIn(db) <= 1000, `rows stay within failureLogMaxRows (${rowsIn(db)})`)
  assert.equal(rowsIn(db), s.rows)
  const afterFirst = retainedHeapMb()
  assert.ok(afterFirst - heapBefore < 32, `retained heap grew ${(afterFirst - heapBefore).toFixed(1)} MB`)

  // more storms, later: 40k events of ~1 KB each pass through, and the log retains nothing more
  for (let round = 0; round < 3; round++) {
    c.advance(5000)
    for (let i = 0; i < 20_000; i++) log.record(failureEvent({ remoteAddress: '198.51.100.1', reason: 'closed_before_connect' }))
    for (let i = 0; i < 20_000; i++) {
      log.record(failureEvent({ remoteAddress: `203.1.${i >> 8}.${i & 255}`, reason: 'connect_timeout', userAgent: 'u'.repeat(400) }))
    }
    log.flush()
  }
  const grewMb = retainedHeapMb() - afterFirst
  assert.ok(grewMb < 4, `retained heap grew ${grewMb.toFixed(1)} MB over three more storms`)
  assert.ok(rowsIn(db) <= 1000)
  s = log.stats()
  assert.equal(s.recorded, 4 * 40_000)
  assert.equal(s.recorded, s.written + s.folded + s.dropped + s.pending)
})

test('a database error never throws out of record() or flush(); the records are counted as dropped', (t) => {
  const errors: string[] = []
  const logger = { debug() {}, info() {}, warn() {}, error: (_o: object, msg?: string) => void errors.push(msg ?? '') }
  const { db, log } = setup(t, { logger })
  for (let i = 0; i < 5; i++) log.record(failureEvent({ remoteAddress: `10.9.0.${i}` }))
  log.flush()
  db.exec('DROP TABLE failures')
  for (let i = 0; i < 7; i++) log.record(failureEvent({ remoteAddress: `10.9.1.${i}` }))
  assert.doesNotThrow(() => log.flush())
  const s = log.stats()
  assert.equal(s.written, 5)
  assert.equal(s.dropped, 7)
  assert.equal(s.recorded, s.written + s.folded + s.dropped + s.pending)
  assert.deepEqual(errors, ['failure log write failed; records dropped'])
  log.close()
  log.record(failureEvent())
  assert.equal(log.stats().dropped, 8, 'after close, records are dropped and counted')
})

test('connect latency is kept as bucket counters: histogram, percentiles and an exact what-if on round values', (t) => {
  const { db, log } = setup(t)
  assert.equal(latencyBucketIndex(0.2), 0)
  assert.equal(LATENCY_BUCKETS_MS[latencyBucketIndex(5000)], 5000)
  assert.equal(LATENCY_BUCKETS_MS[latencyBucketIndex(5000.1)], 6000)
  assert.equal(latencyBucketIndex(2_000_000), LATENCY_BUCKETS_MS.length)

  const samples = [3, 12, 40, 40, 250, 900, 1400, 2600, 4900, 5200]
  for (const ms of samples) log.recordConnectLatency(ms)
  log.recordConnectLatency(Number.NaN)
  log.recordConnectLatency(-1)
  const window = { since: Date.now() - 3_600_000, until: Date.now() + 60_000 }
  const histogram = (w: typeof window) => log.latency(w, 0).latency

  // before the flush, the pending counters are already visible; after it, they come from the table
  const pending = histogram(window)
  log.flush()
  assert.ok((db.prepare('SELECT count(*) FROM connect_latency').pluck().get() as number) > 0)
  const h = histogram(window)
  assert.deepEqual(h, pending)
  assert.equal(h.count, samples.length)
  assert.equal(h.sumMs, samples.reduce((a, b) => a + b, 0))
  assert.equal(h.maxMs, 5200)
  assert.equal(h.p50Ms, 250)
  assert.equal(h.buckets.reduce((a, b) => a + b.count, 0), samples.length)
  assert.equal(h.buckets.at(-1)?.leMs, null)

  for (const [threshold, slower] of [[1000, 4], [5000, 1], [2000, 3], [10, 9], [6000, 0]] as const) {
    const { latency, whatIf: w } = log.latency(window, threshold)
    assert.deepEqual(latency, h, 'the histogram does not depend on the threshold')
    assert.equal(w.total, samples.length)
    assert.equal(w.slower, slower, `> ${threshold} ms`)
    assert.equal(w.slowerMax, slower, `> ${threshold} ms is exact on an edge`)
  }
  // 4800 lies inside (4500, 5000]: 4900 may or may not be slower
  const w = log.latency(window, 4800).whatIf
  assert.deepEqual([w.slower, w.slowerMax], [1, 2])

  // the counters add up across flushes
  log.recordConnectLatency(3)
  log.flush()
  assert.equal(histogram(window).count, samples.length + 1)
  assert.equal(histogram({ since: window.until + 120_000, until: window.until + 240_000 }).count, 0)
})

test('counts per time bucket and reason', (t) => {
  const { log } = setup(t)
  const base = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 7_200_000 // a whole hour, recent
  const at = (min: number, reason: 'connect_timeout' | 'keepalive_timeout', addr: string) =>
    log.record(failureEvent({ occurredAt: base + min * 60_000, reason, remoteAddress: addr }))
  at(0, 'connect_timeout', 'a')
  at(0, 'keepalive_timeout', 'b')
  at(5, 'connect_timeout', 'c')
  at(14, 'connect_timeout', 'd')
  at(20, 'connect_timeout', 'e') // outside the window
  log.flush()
  const c = log.counts({ since: base, until: base + 15 * 60_000, bucketMs: 5 * 60_000 })
  assert.equal(c.bucketSec, 300)
  assert.deepEqual(c.buckets.map((b) => b.total), [2, 1, 1])
  assert.deepEqual(c.buckets[0].counts, { connect_timeout: 1, keepalive_timeout: 1 })
  assert.equal(c.buckets[1].start, new Date(base + 5 * 60_000).toISOString())
  assert.equal(c.totals.connect_timeout, 3)
  assert.equal(c.totals.taken_over, 0)
  assert.equal(c.total, 4)
})

test('a transaction stops taking rows after maxSliceMs; the rest follow in the next ones, in order', (t) => {
  const { log } = setup(t, { maxSliceMs: 0 })
  const seen: string[] = []
  log.on('record', (r) => seen.push(r.clientId!))
  for (let i = 0; i < 200; i++) log.record(failureEvent({ remoteAddress: `10.7.0.${i}`, clientId: `s${i}` }))
  log.flush()
  const s = log.stats()
  assert.equal(s.written, 200)
  assert.ok(s.flushes >= 3, `written in slices (${s.flushes} transactions)`)
  assert.deepEqual(seen, Array.from({ length: 200 }, (_, i) => `s${i}`))
})

test('counts per minute outlive pruned rows and include folded and dropped failures', (t) => {
  const c = clock()
  const { log } = setup(t, { now: c.now, maxPending: 20, limits: () => ({ maxRows: 10, maxAgeDays: 30 }) })
  for (let i = 0; i < 30; i++) log.record(failureEvent({ remoteAddress: `10.8.0.${i}`, occurredAt: c.now() }))
  for (let i = 0; i < 40; i++) log.record(failureEvent({ remoteAddress: '10.8.1.1', occurredAt: c.now() }))
  // pending counters are visible before the flush
  const window = { since: c.now() - 60_000, until: c.now() + 60_000, bucketMs: 60_000 }
  assert.equal(log.counts(window).total, 70)
  log.flush()
  const s = log.stats()
  assert.ok(s.dropped > 0)
  assert.equal(s.rows, 10, 'rows pruned to failureLogMaxRows')
  const counts = log.counts(window)
  assert.equal(counts.total, 70, 'every failure counted: written, folded and dropped')
  assert.equal(counts.records, s.written)
})

test('the per-minute counters (failures and connect latency) are pruned by age like the rows', (t) => {
  const c = clock(Date.now() - 31 * DAY)
  const { db, log } = setup(t, { now: c.now })
  const minutesIn = (table: string) => db.prepare(`SELECT DISTINCT minute FROM ${table}`).pluck().all() as number[]
  log.record(failureEvent({ occurredAt: c.now(), remoteAddress: '10.6.0.1' }))
  log.recordConnectLatency(40)
  log.flush()
  assert.equal(minutesIn('failure_counts').length, 1)
  assert.equal(minutesIn('connect_latency').length, 1)

  c.advance(31 * DAY)
  log.record(failureEvent({ occurredAt: c.now(), remoteAddress: '10.6.0.2' }))
  log.recordConnectLatency(40)
  log.flush()
  const minute = Math.floor(c.now() / 60_000) * 60_000
  assert.deepEqual(minutesIn('failure_counts'), [minute], 'the 31-day-old minute is gone, the new one kept')
  assert.deepEqual(minutesIn('connect_latency'), [minute])
  assert.equal(rowsIn(db), 1)
  const window = { since: c.now() - 40 * DAY, until: c.now() + 60_000 }
  assert.equal(log.counts({ ...window, bucketMs: DAY }).total, 1)
  assert.equal(log.latency(window, 0).latency.count, 1)
})
