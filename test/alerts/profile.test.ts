// A rule about one timeout profile, through the real server: clients stalled mid-CONNECT under the profile
// (matched by User-Agent) fire it, as many outside it (profile null) do not; its history event's failure query names
// the profile and lists exactly the failures behind it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Packet } from 'mqtt-packet'
import type { TimeoutProfile } from '../../src/contracts/settings.ts'
import { RawClient, startServer, until, type TestServer } from '../helpers.ts'

const HALF_CONNECT = RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'stalled' } as Packet)
  .subarray(0, 8)

async function stalled(s: TestServer, n: number, userAgent: string): Promise<void> {
  await Promise.all(Array.from({ length: n }, async () => {
    const raw = await RawClient.open(s.wsUrl, { headers: { 'user-agent': userAgent } })
    raw.sendBytes(HALF_CONNECT)
    await raw.closed(5000)
  }))
}

test('a rule on one timeout profile counts only failures under it', { timeout: 30_000 }, async (t) => {
  const profiles: TimeoutProfile[] = [{ name: 'slow-links', match: { userAgent: ['slow/*'] }, overrides: { connectTimeoutMs: 300 } }]
  const s = await startServer({ settings: { connectTimeoutMs: 300, profiles } })
  t.after(() => s.close())
  s.app.alerts.tune({ evaluateEveryMs: 100 })
  const created = await s.app.inject({
    method: 'POST', url: '/api/alerts/rules', headers: s.auth,
    payload: { name: 'slow-links-stalling', reason: 'connect_timeout', profile: 'slow-links', minBytesReceived: 1, count: 3, windowSec: 60 },
  })
  assert.equal(created.statusCode, 201, created.body)
  const seen: (string | null)[] = []
  s.app.broker.on('failure', (e) => seen.push(e.profile))

  await stalled(s, 4, 'fast/1.0')
  await until(() => seen.filter((p) => p === null).length >= 4, 'four failures without a profile')
  s.app.alerts.evaluateNow()
  assert.deepEqual(s.app.alerts.active().map((a) => a.ruleName), [], 'failures outside the profile do not count')

  await stalled(s, 3, 'slow/2.1')
  await until(() => seen.filter((p) => p === 'slow-links').length >= 3, 'three failures under slow-links')
  await until(() => s.app.alerts.active().some((a) => a.ruleName === 'slow-links-stalling'), 'the rule firing')
  const [active] = s.app.alerts.active().filter((a) => a.ruleName === 'slow-links-stalling')
  assert.equal(active.count, 3)
  assert.equal(active.failures.profile, 'slow-links')

  const [event] = (await s.app.inject({ method: 'GET', url: '/api/alerts/history', headers: s.auth })).json().items
  assert.equal(event.failures.profile, 'slow-links')
  await until(() => s.app.failureLog.stats().written >= 7, 'the failures written')
  const items: { profile: string | null }[] = (await s.app.inject({ method: 'GET', url: `/api/failures?${new URLSearchParams(event.failures)}`, headers: s.auth })).json().items
  assert.equal(items.length, 3, 'exactly the failures behind it')
  assert.ok(items.every((r) => r.profile === 'slow-links'))
})
