// GET /api/settings/suggestions: connectTimeoutMs from a seeded history (latencies and failure records through the
// real failure log) matches a value computed by hand; thin evidence suggests nothing; the keepalive late-gap histogram
// moves when a raw client is late, and feeds the keepaliveMultiplier suggestion; a viewer reads it.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, RawClient, delay, waitForFailure, type TestServer } from '../helpers.ts'
import { failureEvent } from '../failures/fixtures.ts'
import { GAP_RATIO_BUCKETS, gapBucketIndex } from '../../src/mqtt/gaps.ts'

async function server(t: { after(fn: () => unknown): void }, settings = {}) {
  const s = await startServer({ settings })
  t.after(() => s.close())
  return s
}

async function suggestions(s: TestServer, headers = s.auth) {
  const res = await s.app.inject({ method: 'GET', url: '/api/settings/suggestions', headers })
  assert.equal(res.statusCode, 200, res.body)
  return res.json()
}

const PROFILES = [
  { name: 'slow', match: { cidr: ['10.9.0.0/16'] }, overrides: { connectTimeoutMs: 8000 } },
  { name: 'fast', match: { cidr: ['10.8.0.0/16'] }, overrides: {} },
]

describe('settings suggestions', { concurrency: 3 }, () => {
  test('connectTimeoutMs from a seeded history matches the value computed by hand, globally and per profile', async (t) => {
    const s = await server(t, { connectTimeoutMs: 2000, profiles: PROFILES })
    const log = s.app.failureLog
    // 100 successful connects: 99 at 200 ms, one at 1000 ms -> p99 (rank 99) is the 200 ms bucket -> 200 x 1.5 = 300
    for (let i = 0; i < 99; i++) log.recordConnectLatency(200)
    log.recordConnectLatency(1000)
    const t0 = Date.now() - 60_000
    // near misses (part of a CONNECT received): 2000 and 2400 ms globally, 9000 ms under profile "slow"
    log.record(failureEvent({ occurredAt: t0, remoteAddress: '10.1.0.1', durationMs: 2000, bytesReceived: 10 }))
    log.record(failureEvent({ occurredAt: t0, remoteAddress: '10.1.0.2', durationMs: 2400, bytesReceived: 30 }))
    log.record(failureEvent({ occurredAt: t0, remoteAddress: '10.9.0.3', durationMs: 9000, bytesReceived: 5, profile: 'slow' }))
    // silent ones (nothing received) are no near misses; one older than the window counts for nothing
    log.record(failureEvent({ occurredAt: t0, remoteAddress: '10.1.0.4', durationMs: 2000, bytesReceived: 0 }))
    log.record(failureEvent({ occurredAt: Date.now() - 25 * 3600_000, remoteAddress: '10.1.0.5', durationMs: 50_000, bytesReceived: 9 }))

    const body = await suggestions(s)
    const [global, slow, fast] = body.connectTimeoutMs
    // by hand: max(300, 9000 x 1.2 = 10800) -> rounded up to whole seconds above 10 s -> 11000
    assert.equal(global.profile, null)
    assert.equal(global.current, 2000)
    assert.equal(global.suggested, 11000)
    assert.equal(global.evidence.successfulConnects, 100)
    assert.equal(global.evidence.percentileMs, 200)
    assert.equal(global.evidence.nearMisses, 3)
    assert.equal(global.evidence.largestNearMissMs, 9000)
    assert.equal(global.evidence.nearMissesServed, 3)
    assert.equal(global.evidence.silentTimeouts, 1)
    assert.equal(global.evidence.silentHeldMs, 11000)
    assert.equal(global.evidence.window, 'last 24 h')
    assert.match(global.comment, /^suggestion: connectTimeoutMs 11000 \(/)
    // profile "slow": its own near miss (9000 ms) -> 11000; its current value is its override
    assert.equal(slow.profile, 'slow')
    assert.equal(slow.current, 8000)
    assert.equal(slow.suggested, 11000)
    assert.equal(slow.evidence.nearMisses, 1)
    assert.match(slow.comment, /^suggestion: profile "slow" connectTimeoutMs 11000/)
    // profile "fast": no near miss; the (broker-wide) latency alone: 200 x 1.5 = 300
    assert.equal(fast.current, 2000)
    assert.equal(fast.suggested, 300)
    assert.equal(fast.evidence.nearMisses, 0)
    assert.equal(fast.evidence.connectsSlowerThanSuggested, 1)
  })

  test('thin evidence: no suggestion, and the words say why', async (t) => {
    const s = await server(t)
    for (let i = 0; i < 19; i++) s.app.failureLog.recordConnectLatency(150)
    s.app.failureLog.record(failureEvent({ remoteAddress: '10.2.0.1', bytesReceived: 0 }))
    const body = await suggestions(s)
    assert.equal(body.connectTimeoutMs.length, 1)
    const [c] = body.connectTimeoutMs
    assert.equal(c.suggested, null)
    assert.equal(c.comment, null)
    assert.equal(c.evidence.successfulConnects, 19)
    assert.match(c.summary, /Too little evidence/)
    const [k] = body.keepaliveMultiplier
    assert.equal(k.suggested, null)
    assert.equal(k.evidence.lateGaps, 0)
    assert.match(k.summary, /Too little evidence/)
  })

  test('late packets move the keepalive histogram; a client dropped after them makes a keepaliveMultiplier suggestion', async (t) => {
    const s = await server(t, { keepaliveMultiplier: 3 })
    const gaps = s.app.broker.stats.keepaliveGaps
    const raw = await RawClient.open(s.wsUrl)
    t.after(() => raw.close())
    await raw.connect({ clientId: 'late-one', keepalive: 1 })
    for (let i = 0; i < 2; i++) {
      await delay(1200)
      raw.send({ cmd: 'pingreq' })
      await raw.nextPacket('pingresp')
    }
    const counted = gaps.all.counts.reduce((a, b) => a + b, 0)
    assert.equal(counted, 2, `two late gaps: ${gaps.all.counts}`)
    // ~1.2 x keepalive: the 1.25 bucket (1.5 on a loaded machine), never below 1.1
    const idx = gaps.all.counts.findIndex((n) => n > 0)
    assert.ok(idx >= gapBucketIndex(1.2) && idx <= gapBucketIndex(1.5), `bucket ${idx}: ${gaps.all.counts}`)
    assert.equal(gaps.all.maxKeepaliveSec, 1)
    // silence: dropped after 3 s; its longest earlier gap is remembered
    const failure = waitForFailure(s, (e) => e.reason === 'keepalive_timeout', 8000)
    await failure
    const droppedIdx = gaps.dropped.counts.findIndex((n) => n > 0)
    assert.ok(droppedIdx >= gapBucketIndex(1.2), `dropped bucket ${droppedIdx}`)

    const body = await suggestions(s)
    const [k] = body.keepaliveMultiplier
    const lastIdx = gaps.all.counts.length - 1
    const p99 = GAP_RATIO_BUCKETS[Math.max(...gaps.all.counts.map((n, i) => (n > 0 ? i : -1)).filter((i) => i < lastIdx))]
    // by hand: max(1.5, p99 edge x 1.25) rounded up to a quarter (1.25 -> 1.5625 -> 1.75; 1.5 -> 1.875 -> 2)
    const expected = Math.ceil(Math.max(1.5, p99 * 1.25) * 4) / 4
    assert.equal(k.current, 3)
    assert.equal(k.evidence.lateGaps, 2)
    assert.equal(k.evidence.percentileRatio, p99)
    assert.equal(k.suggested, expected)
    assert.equal(k.evidence.dropped, 1)
    assert.equal(k.evidence.droppedKept, GAP_RATIO_BUCKETS[droppedIdx] <= expected ? 1 : 0)
    assert.equal(k.evidence.keepaliveTimeoutsInLog, 1)
    assert.equal(k.evidence.deadHeldMaxSec, Math.round(1 * expected))
    assert.match(k.comment, new RegExp(`^suggestion: keepaliveMultiplier ${expected} `))
  })

  test('a viewer reads the suggestions', async (t) => {
    const s = await server(t)
    const res = await s.app.inject({ method: 'POST', url: '/api/admin-tokens', headers: s.auth, payload: { name: 'v', role: 'viewer' } })
    const body = await suggestions(s, { authorization: `Bearer ${res.json().token}` })
    assert.equal(body.connectTimeoutMs[0].profile, null)
  })
})
