// Timeout profiles on a real server with real clients: an Origin profile gives browsers a longer connect timeout
// than a CIDR-matched LAN client, a client-id profile another keepaliveMultiplier, profile changes reach waiting and
// connected clients, and connections and failure records say which profile applied. Timing checks look at the
// client's share of the wait (stallGivenMs). The matcher itself, table-driven, at the end.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { Packet } from 'mqtt-packet'
import type { FailureEvent } from '../../src/contracts/failure.ts'
import type { ConnectionMeta } from '../../src/contracts/connection.ts'
import type { SettingsValues, TimeoutProfile } from '../../src/contracts/settings.ts'
import { DEFAULT_SETTINGS } from '../../src/settings/schema.ts'
import { ProfileSet, globMatch } from '../../src/mqtt/profiles.ts'
import { brokerKit, delay, RawClient, keepaliveSilenceMs, stallGivenMs, until, waitForFailure, type TestServer } from '../helpers.ts'

/** Leeway for timers on a shared machine: early never, late by at most this much. */
const LATE_MS = 700

function assertWithin(actual: number, expected: number, what: string): void {
  assert.ok(actual >= expected - 60, `${what}: ${actual} ms is before ${expected} ms`)
  assert.ok(actual <= expected + LATE_MS, `${what}: ${actual} ms is far after ${expected} ms`)
}

const connectBytes = (clientId: string) =>
  RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId } as Packet)

const BROWSER = { headers: { origin: 'https://app.example.com', 'user-agent': 'Mozilla/5.0 (test)' } }

async function api(server: TestServer, path: string) {
  const res = await server.app.inject({ method: 'GET', url: path, headers: server.auth })
  assert.equal(res.statusCode, 200, res.body)
  return res.json()
}

describe('timeout profiles', { concurrency: 4 }, () => {
  test('an Origin profile gives browsers a longer connect timeout than a CIDR-matched LAN client, in the same run', async (t) => {
    const profiles: TimeoutProfile[] = [
      { name: 'browsers', match: { origin: ['https://*.example.com'] }, overrides: { connectTimeoutMs: 1500 } },
      { name: 'lan', match: { cidr: ['127.0.0.1/32', '::1/128'] }, overrides: { connectTimeoutMs: 300 } },
    ]
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 5000, profiles } })
    const failures: FailureEvent[] = []
    kit.server.app.broker.on('failure', (e) => failures.push(e))
    const lanFailure = waitForFailure(kit.server, (e) => e.reason === 'connect_timeout' && e.origin === null, 15_000)
    const browserFailure = waitForFailure(kit.server, (e) => e.reason === 'connect_timeout' && e.origin !== null, 15_000)
    const browser = await kit.raw(BROWSER)
    const lan = await kit.raw()
    // both send part of a CONNECT, then nothing
    browser.sendBytes(connectBytes('browser-1').subarray(0, 6))
    lan.sendBytes(connectBytes('lan-1').subarray(0, 6))

    const l = await lanFailure
    await lan.closed()
    assert.ok(browser.isOpen, 'the browser is still given time when the LAN client is closed')
    assert.equal(l.profile, 'lan')
    assert.match(l.detail, /connectTimeoutMs 300 of timeout profile "lan"/)
    assertWithin(l.durationMs - stallGivenMs(l), 300, 'LAN connect timeout')

    const b = await browserFailure
    await browser.closed()
    assert.equal(b.profile, 'browsers')
    assert.equal(b.origin, 'https://app.example.com')
    assert.match(b.detail, /connectTimeoutMs 1500 of timeout profile "browsers"/)
    assertWithin(b.durationMs - stallGivenMs(b), 1500, 'browser connect timeout')
    assert.equal(failures.length, 2)

    // the failure log keeps the profile and filters by it
    kit.server.app.failureLog.flush()
    const byBrowsers = await api(kit.server, '/api/failures?profile=browsers')
    assert.deepEqual(byBrowsers.items.map((r: { profile: string; origin: string }) => [r.profile, r.origin]), [['browsers', 'https://app.example.com']])
    const byLan = await api(kit.server, '/api/failures?profile=lan')
    assert.deepEqual(byLan.items.map((r: { profile: string }) => r.profile), ['lan'])
    assert.equal((await api(kit.server, '/api/failures?profile=-')).items.length, 0, '-: records under the global values')
    const one = await api(kit.server, `/api/failures/${byLan.items[0].id}`)
    assert.equal(one.profile, 'lan')
  })

  test('a client-id profile gives another keepaliveMultiplier: keepalive 1 dropped near 1.5 s vs near 3 s', async (t) => {
    const profiles: TimeoutProfile[] = [
      { name: 'sensors', match: { clientId: ['sensor-*'] }, overrides: { keepaliveMultiplier: 3 } },
    ]
    const kit = await brokerKit(t, { settings: { profiles } })
    const phoneFailure = waitForFailure(kit.server, (e) => e.reason === 'keepalive_timeout' && e.clientId === 'phone-1', 10_000)
    const sensorFailure = waitForFailure(kit.server, (e) => e.reason === 'keepalive_timeout' && e.clientId === 'sensor-1', 10_000)
    const phone = await kit.raw()
    const sensor = await kit.raw()
    await Promise.all([phone.connect({ clientId: 'phone-1', keepalive: 1 }), sensor.connect({ clientId: 'sensor-1', keepalive: 1 })])

    const live = (await api(kit.server, '/api/connections')).items
    const byId = new Map(live.map((c: { clientId: string }) => [c.clientId, c]))
    assert.deepEqual(byId.get('sensor-1'), { ...(byId.get('sensor-1') as object), profile: 'sensors', keepaliveTimeoutMs: 3000 })
    assert.deepEqual(byId.get('phone-1'), { ...(byId.get('phone-1') as object), profile: null, keepaliveTimeoutMs: 1500 })
    assert.deepEqual((await api(kit.server, '/api/connections?profile=sensors')).items.map((c: { clientId: string }) => c.clientId), ['sensor-1'])
    assert.deepEqual((await api(kit.server, '/api/connections?profile=-')).items.map((c: { clientId: string }) => c.clientId), ['phone-1'])

    const p = await phoneFailure
    assertWithin(keepaliveSilenceMs(p), 1500, 'keepalive 1 x 1.5 (global)')
    assert.ok(sensor.isOpen)
    assert.equal(p.profile, null)
    const s = await sensorFailure
    assertWithin(keepaliveSilenceMs(s), 3000, 'keepalive 1 x 3 (profile sensors)')
    assert.equal(s.profile, 'sensors')
    assert.match(s.detail, /keepaliveMultiplier 3 of timeout profile "sensors"/)
  })

  test('a profile with client-id conditions does not apply before CONNECT', async (t) => {
    const profiles: TimeoutProfile[] = [
      { name: 'everyone-by-id', match: { clientId: ['*'] }, overrides: { connectTimeoutMs: 60000 } },
    ]
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 300, profiles } })
    await kit.raw()
    const e = await waitForFailure(kit.server, (f) => f.reason === 'connect_timeout')
    assert.equal(e.profile, null)
    assertWithin(e.durationMs - stallGivenMs(e), 300, 'global connect timeout')
  })

  test('a profile change reaches a client waiting for CONNECT, counted from its open', async (t) => {
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 10000 } })
    const raw = await kit.raw()
    raw.sendBytes(connectBytes('waiting').subarray(0, 5))
    const failure = waitForFailure(kit.server, (e) => e.reason === 'connect_timeout')
    await delay(100)
    kit.server.app.settingsStore.update({
      profiles: [{ name: 'lan', match: { cidr: ['127.0.0.0/8'] }, overrides: { connectTimeoutMs: 600 } }],
    }, { actor: 'test', comment: 'LAN clients are quick' })
    const e = await failure
    await raw.closed()
    assert.equal(e.profile, 'lan')
    assertWithin(e.durationMs - stallGivenMs(e), 600, 'the profile\'s timeout from the open')
  })

  test('a profile change re-arms the keepalive of connected clients, and a removed profile gives the global values back', async (t) => {
    const kit = await brokerKit(t, { settings: { keepaliveMultiplier: 5 } })
    const store = kit.server.app.settingsStore
    const raw = await kit.raw()
    await raw.connect({ clientId: 'live-1', keepalive: 1 })
    const other = await kit.raw()
    await other.connect({ clientId: 'other-1', keepalive: 1 })
    const connection = (id: string) => kit.server.app.broker.connections().find((c) => c.clientId === id)
    assert.equal(connection('live-1')?.keepaliveTimeoutMs, 5000)

    store.update({ profiles: [{ name: 'strict', match: { clientId: ['live-*'] }, overrides: { keepaliveMultiplier: 4 } }] }, { actor: 'test' })
    assert.equal(connection('live-1')?.profile, 'strict')
    assert.equal(connection('live-1')?.keepaliveTimeoutMs, 4000)
    assert.equal(connection('other-1')?.profile, null)
    assert.equal(connection('other-1')?.keepaliveTimeoutMs, 5000)

    store.update({ profiles: [] }, { actor: 'test' })
    assert.equal(connection('live-1')?.profile, null)
    assert.equal(connection('live-1')?.keepaliveTimeoutMs, 5000)

    const failure = waitForFailure(kit.server, (e) => e.reason === 'keepalive_timeout' && e.clientId === 'live-1', 10_000)
    const changedAt = Date.now()
    store.update({ profiles: [{ name: 'strict', match: { clientId: ['live-*'] }, overrides: { keepaliveMultiplier: 1.5 } }] }, { actor: 'test' })
    const e = await failure
    assert.equal(e.profile, 'strict')
    assert.ok(Date.now() - changedAt - stallGivenMs(e) < 1500 + LATE_MS, 'dropped within 1 s x 1.5 of its last packet')
    assert.ok(other.isOpen)
  })

  test('a username profile applies to the authenticated user only, and its quota holds', async (t) => {
    const profiles: TimeoutProfile[] = [
      { name: 'ops', match: { username: ['ops-*'] }, overrides: { maxSubscriptionsPerClient: 1 } },
    ]
    const kit = await brokerKit(t, { settings: { profiles } })
    await kit.server.app.mqttUsers.create({ username: 'ops-1', password: 'ops-pw-123' })
    const user = await kit.raw()
    await user.connect({ clientId: 'ops-client', username: 'ops-1', password: Buffer.from('ops-pw-123') })
    // an anonymous client that only claims a matching name (unknown user, allowAnonymous) is not under the profile
    const claimer = await kit.raw()
    await claimer.connect({ clientId: 'claimer', username: 'ops-2', password: Buffer.from('x') })
    const profileOf = (id: string) => kit.server.app.broker.connections().find((c) => c.clientId === id)?.profile
    assert.equal(profileOf('ops-client'), 'ops')
    assert.equal(profileOf('claimer'), null)
    const subscribe = async (raw: RawClient) => {
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }, { topic: 'b', qos: 0 }] } as Packet)
      return ((await raw.nextPacket('suback')) as { granted: number[] }).granted
    }
    assert.deepEqual(await subscribe(user), [0, 0x80], 'maxSubscriptionsPerClient 1 of profile ops')
    assert.deepEqual(await subscribe(claimer), [0, 0])
  })

  test('an offline session\'s queue is bounded by the profile of its last connection', async (t) => {
    const profiles: TimeoutProfile[] = [
      { name: 'tiny-queue', match: { clientId: ['q-*'] }, overrides: { maxQueuedMessages: 2 } },
    ]
    const kit = await brokerKit(t, { settings: { profiles } })
    for (const id of ['q-1', 'other-q']) {
      const sub = await kit.raw()
      await sub.connect({ clientId: id, clean: false })
      sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'queued/#', qos: 1 }] } as Packet)
      await sub.nextPacket('suback')
      sub.send({ cmd: 'disconnect' })
      await sub.closed()
    }
    const pub = await kit.raw()
    await pub.connect({ clientId: 'publisher' })
    for (let i = 1; i <= 5; i++) {
      pub.send({ cmd: 'publish', topic: `queued/${i}`, payload: Buffer.from(String(i)), qos: 1, messageId: i, retain: false, dup: false } as Packet)
      await pub.nextPacket('puback')
    }
    const queued = (id: string) => kit.server.app.broker.sessions.get(id)?.queue?.length ?? 0
    assert.equal(queued('q-1'), 2, 'maxQueuedMessages 2 of profile tiny-queue')
    assert.equal(queued('other-q'), 5, 'the global maxQueuedMessages')
  })
})

// ---- the matcher -------------------------------------------------------------------------------------------------

const meta = (over: Partial<ConnectionMeta> = {}): ConnectionMeta => ({
  transport: 'ws', remoteAddress: '127.0.0.1', remotePort: 1, userAgent: null, origin: null, subprotocol: 'mqtt',
  path: '/mqtt', openedAt: 0, ...over,
})

const set = (profiles: TimeoutProfile[], global: Partial<SettingsValues> = {}) =>
  new ProfileSet({ ...DEFAULT_SETTINGS, ...global, profiles })

test('glob: * any run, ? one character, the rest itself; no backtracking blow-up', () => {
  const cases: Array<[string, string, boolean]> = [
    ['sensor-*', 'sensor-12', true], ['sensor-*', 'sensor-', true], ['sensor-*', 'sensors', false],
    ['*.example.com', 'https://app.example.com', true], ['a?c', 'abc', true], ['a?c', 'ac', false],
    ['*', '', true], ['', '', true], ['', 'x', false], ['a*b*c', 'aXbYc', true], ['a*b*c', 'aXbY', false],
    ['a.b', 'aXb', false], ['(x)+', '(x)+', true],
  ]
  for (const [pattern, text, want] of cases) assert.equal(globMatch(pattern, text), want, `${pattern} ~ ${text}`)
  const t0 = Date.now()
  assert.equal(globMatch(`${'*a'.repeat(200)}b`, 'a'.repeat(500)), false)
  assert.ok(Date.now() - t0 < 500)
})

test('matching: each condition, two stages, first match wins, effective values', () => {
  const s = set([
    { name: 'by-id', match: { clientId: ['dev-*'] }, overrides: { keepaliveMultiplier: 2 } },
    { name: 'tcp-v6', match: { transport: ['tcp'], cidr: ['fd00::/8'] }, overrides: { connectTimeoutMs: 200 } },
    { name: 'lan4', match: { cidr: ['10.0.0.0/8'] }, overrides: { connectTimeoutMs: 300 } },
    { name: 'browser', match: { origin: ['HTTPS://APP.example.com'], path: ['/mqtt*'], subprotocol: ['mqtt'] }, overrides: { connectTimeoutMs: 900 } },
    { name: 'ua', match: { userAgent: ['curl/*'] }, overrides: {} },
    { name: 'users', match: { username: ['ops-?'] }, overrides: { maxSubscriptionsPerClient: 5 } },
  ], { connectTimeoutMs: 4000 })
  const cases: Array<[string, Partial<ConnectionMeta>, { clientId: string; username: string | null } | null, string | null]> = [
    ['ipv4 block', { remoteAddress: '10.1.2.3' }, null, 'lan4'],
    ['ipv4-mapped ipv6 of a dual-stack socket', { remoteAddress: '::ffff:10.1.2.3' }, null, 'lan4'],
    ['outside the block', { remoteAddress: '11.0.0.1' }, null, null],
    ['ipv6 block and transport', { transport: 'tcp', remoteAddress: 'fd12::1' }, null, 'tcp-v6'],
    ['ipv6 block, wrong transport', { transport: 'ws', remoteAddress: 'fd12::1' }, null, null],
    ['origin case-insensitive, path glob, subprotocol', { origin: 'https://app.example.com', path: '/mqtt?x=1' }, null, 'browser'],
    ['origin, wrong path', { origin: 'https://app.example.com', path: '/other' }, null, null],
    ['no origin', { origin: null }, null, null],
    ['user agent glob', { userAgent: 'curl/8.1' }, null, 'ua'],
    ['client id only at CONNECT: skipped before', { remoteAddress: '10.0.0.1' }, null, 'lan4'],
    ['client id at CONNECT wins by order', { remoteAddress: '10.0.0.1' }, { clientId: 'dev-7', username: null }, 'by-id'],
    ['username glob at CONNECT', {}, { clientId: 'x', username: 'ops-1' }, 'users'],
    ['anonymous never matches a username', {}, { clientId: 'x', username: null }, null],
  ]
  for (const [what, m, who, want] of cases) {
    const r = who === null ? s.beforeConnect(meta(m)) : s.atConnect(meta(m), who)
    assert.equal(r.profile, want, what)
  }
  const lan = s.beforeConnect(meta({ remoteAddress: '10.0.0.1' }))
  assert.equal(lan.values.connectTimeoutMs, 300)
  assert.equal(lan.values.keepaliveMultiplier, DEFAULT_SETTINGS.keepaliveMultiplier, 'the rest are the global values')
  assert.ok(Object.isFrozen(lan.values))
  assert.equal(s.beforeConnect(meta({ remoteAddress: '10.0.0.2' })).values, lan.values, 'one values object per profile and version')
  assert.equal(s.beforeConnect(meta({ remoteAddress: '9.9.9.9' })).values.connectTimeoutMs, 4000)
  assert.equal(s.largestConnectTimeoutMs, 4000, 'by-id cannot apply before the headers are read; the rest are lower')
  assert.equal(s.named('lan4'), lan)
  assert.equal(s.named('gone').profile, null)
})
