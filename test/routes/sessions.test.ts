// The /api/sessions HTTP contract through the real app, with sessions made by real MQTT.js clients: a persistent
// client that subscribed and went away listed offline with its queue and expiry, its subscriptions, an online one
// with its connection, a pending Will; ending an online session (DISCONNECT 0x98, no Will, session present false at
// the next CONNECT) and an offline one; filters, paging, totals; client ids that need URL encoding; 400, 401, OpenAPI.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { InjectOptions } from 'fastify'
import type { IClientOptions, MqttClient } from 'mqtt'
import type { IConnackPacket, IDisconnectPacket } from 'mqtt-packet'
import { brokerKit, startServer, TEST_TOKEN, until, type BrokerKit, type TestServer } from '../helpers.ts'

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }
type Method = 'GET' | 'DELETE'
type Summary = {
  clientId: string; online: boolean; expiryIntervalSec: number; disconnectedAt: string | null; expiresAt: string | null
  subscriptions: number; queued: number; queuedBytes: number; inflight: number; willPending: boolean
}

const call = (s: TestServer, method: Method, url: string, headers: Record<string, string> = AUTH) =>
  s.app.inject({ method, url, headers } as InjectOptions)
const one = (clientId: string) => `/api/sessions/${encodeURIComponent(clientId)}`
const list = async (s: TestServer, q: Record<string, string | number> = {}) => {
  const res = await call(s, 'GET', `/api/sessions?${new URLSearchParams(Object.entries(q).map(([k, v]) => [k, String(v)]))}`)
  assert.equal(res.statusCode, 200, res.body)
  return res.json() as { items: Summary[]; next: string | null; total: { online: number; offline: number } }
}
const read = async (s: TestServer, clientId: string) => {
  const res = await call(s, 'GET', one(clientId))
  assert.equal(res.statusCode, 200, res.body)
  return res.json()
}

/** Connects an MQTT.js client and returns it with its CONNACK and the payloads it receives (from the first packet on). */
async function connect(kit: BrokerKit, opts: IClientOptions): Promise<{ client: MqttClient; connack: IConnackPacket; received: string[] }> {
  let connack!: IConnackPacket
  const received: string[] = []
  const client = await kit.mqtt(opts, undefined, (c) => {
    c.once('connect', (p) => (connack = p))
    c.on('message', (_topic, payload) => received.push(payload.toString()))
  })
  return { client, connack, received }
}

/** Ends a client with DISCONNECT and waits until the broker holds its session offline. */
async function goOffline(s: TestServer, client: MqttClient, clientId: string) {
  await client.endAsync()
  await until(() => s.app.broker.clientConnection(clientId) === undefined, `${clientId} offline`, 3000)
}

test('a persistent client that went away: offline, its queue, its expiry, its subscriptions; then back online', async (t) => {
  const kit = await brokerKit(t)
  const s = kit.server
  const id = 'thermostat-7'
  const opts: IClientOptions = { protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } }
  const { client } = await connect(kit, opts)
  await client.subscribeAsync('home/7/cmd/#', { qos: 1 })
  await client.subscribeAsync('home/all/+', { qos: 2, nl: true, rap: true, rh: 2, properties: { subscriptionIdentifier: 42 } })
  await client.subscribeAsync('$share/g/jobs/#', { qos: 0 })

  const online = await read(s, id)
  assert.equal(online.online, true)
  assert.equal(online.disconnectedAt, null)
  assert.equal(online.expiresAt, null, 'no expiry while online')
  const conn = s.app.broker.connections().find((c) => c.clientId === id)!
  assert.deepEqual(online.connection, {
    id: conn.id, transport: 'ws', remoteAddress: '127.0.0.1', remotePort: conn.remotePort, username: null, protocolVersion: 5,
    keepaliveSec: 60, connectedAt: conn.connectedAt, lastPacketAt: online.connection.lastPacketAt,
  })

  await goOffline(s, client, id)
  const pub = await kit.mqtt({ protocolVersion: 5 })
  const payloads = ['on', 'off', 'twenty-one degrees']
  for (const p of payloads) await pub.publishAsync('home/7/cmd/heat', p, { qos: 1 })

  const before = Date.now()
  const { items, total } = await list(s)
  const offline = items.find((i) => i.clientId === id)!
  assert.ok(offline, JSON.stringify(items))
  assert.deepEqual({ ...offline, disconnectedAt: 0, expiresAt: 0 }, {
    clientId: id, online: false, expiryIntervalSec: 300, disconnectedAt: 0, expiresAt: 0, subscriptions: 3,
    queued: 3, queuedBytes: payloads.join('').length, inflight: 0, willPending: false,
  })
  assert.ok(before - Date.parse(offline.disconnectedAt!) < 5000, `disconnected just now: ${offline.disconnectedAt}`)
  assert.equal(Date.parse(offline.expiresAt!), Date.parse(offline.disconnectedAt!) + 300_000)
  assert.deepEqual(total, { online: 1, offline: 1 }, 'the publisher is online, the thermostat offline')

  const detail = await read(s, id)
  assert.equal(detail.connection, null)
  assert.deepEqual({ ...detail, subscriptionList: undefined, connection: undefined }, { ...offline, subscriptionList: undefined, connection: undefined })
  assert.deepEqual(detail.subscriptionList, [
    { filter: '$share/g/jobs/#', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionIds: [] },
    { filter: 'home/7/cmd/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionIds: [] },
    { filter: 'home/all/+', qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2, subscriptionIds: [42] },
  ])

  // back: the queue is delivered and the session is online again
  const { connack, received } = await connect(kit, { ...opts, clean: false })
  assert.equal(connack.sessionPresent, true)
  await until(() => received.length === 3, 'the queued messages delivered')
  assert.deepEqual(received, payloads)
  await until(() => (s.app.broker.sessions.get(id)?.inflight?.size ?? 0) === 0, 'the deliveries acknowledged')
  const again = await read(s, id)
  assert.equal(again.online, true)
  assert.equal(again.queued, 0)
  assert.equal(again.queuedBytes, 0)
  assert.equal(again.expiresAt, null)
})

test('a v3.1.1 persistent session expires after maxSessionExpirySec; a Will waiting for its delay is pending', async (t) => {
  const kit = await brokerKit(t, { settings: { maxSessionExpirySec: 120 } })
  const s = kit.server
  const { client: v3 } = await connect(kit, { protocolVersion: 4, clientId: 'old-device', clean: false })
  await v3.subscribeAsync('old/#', { qos: 1 })
  await goOffline(s, v3, 'old-device')
  const old = await read(s, 'old-device')
  assert.equal(old.expiryIntervalSec, 120)
  assert.equal(Date.parse(old.expiresAt), Date.parse(old.disconnectedAt) + 120_000)

  const will = { topic: 'wills/gone', payload: Buffer.from('gone'), qos: 1 as const, retain: false, properties: { willDelayInterval: 60 } }
  const { client: v5 } = await connect(kit, { protocolVersion: 5, clientId: 'will-holder', clean: false, properties: { sessionExpiryInterval: 300 }, will })
  assert.equal((await read(s, 'will-holder')).willPending, false, 'online: the Will is not pending')
  v5.end(true) // the socket closes without DISCONNECT: the Will waits for its delay
  await until(() => s.app.broker.clientConnection('will-holder') === undefined, 'will-holder offline')
  const pending = await read(s, 'will-holder')
  assert.equal(pending.online, false)
  assert.equal(pending.willPending, true)
})

test('DELETE of an online session: DISCONNECT 0x98, no Will, the session gone (session present false at the next CONNECT)', async (t) => {
  const kit = await brokerKit(t)
  const s = kit.server
  const id = 'to-be-ended'
  const { log, sync } = await kit.watch({ 'wills/#': { qos: 1 } }, { protocolVersion: 5 })
  const opts: IClientOptions = {
    protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 300 },
    will: { topic: 'wills/ended', payload: Buffer.from('ended'), qos: 1, retain: false },
  }
  const { client } = await connect(kit, opts)
  await client.subscribeAsync('ended/#', { qos: 1 })
  const disconnect = new Promise<IDisconnectPacket>((resolve) => client.once('disconnect', resolve))

  const del = await call(s, 'DELETE', one(id))
  assert.equal(del.statusCode, 204, del.body)
  assert.equal(del.body, '')
  assert.equal((await disconnect).reasonCode, 0x98)
  assert.equal((await call(s, 'GET', one(id))).statusCode, 404)
  assert.equal((await list(s)).items.some((i) => i.clientId === id), false)
  await sync()
  assert.deepEqual(log.on('wills/ended'), [], 'an ended session publishes no Will')

  const { connack } = await connect(kit, { ...opts, will: undefined })
  assert.equal(connack.sessionPresent, false)
  assert.equal((await read(s, id)).subscriptions, 0)
})

test('DELETE of an offline session: 204, then 404; its queue is dropped; an unknown one is 404', async (t) => {
  const kit = await brokerKit(t)
  const s = kit.server
  const opts: IClientOptions = { protocolVersion: 4, clientId: 'gone-away', clean: false }
  const { client } = await connect(kit, opts)
  await client.subscribeAsync('gone/#', { qos: 1 })
  await goOffline(s, client, 'gone-away')
  const pub = await kit.mqtt()
  await pub.publishAsync('gone/x', 'queued', { qos: 1 })
  assert.equal((await read(s, 'gone-away')).queued, 1)

  assert.equal((await call(s, 'DELETE', one('gone-away'))).statusCode, 204)
  const again = await call(s, 'DELETE', one('gone-away'))
  assert.equal(again.statusCode, 404)
  assert.deepEqual(again.json(), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'there is no session of client id "gone-away"' })
  assert.equal((await call(s, 'GET', one('nobody'))).statusCode, 404)

  const { client: back, connack, received } = await connect(kit, opts)
  assert.equal(connack.sessionPresent, false)
  await back.subscribeAsync('gone/#', { qos: 1 })
  await pub.publishAsync('gone/x', 'fresh', { qos: 1 })
  await until(() => received.length > 0, 'the fresh message')
  assert.deepEqual(received, ['fresh'], 'the dropped queue is not delivered')
})

test('filters by state and client id prefix, paging by client id, totals', async (t) => {
  const kit = await brokerKit(t)
  const s = kit.server
  const ids = ['dev-a', 'dev-b', 'dev-c', 'dev-d', 'dev-e', 'sensor-1']
  const clients = new Map<string, MqttClient>()
  for (const id of ids) clients.set(id, (await connect(kit, { protocolVersion: 4, clientId: id, clean: false })).client)
  for (const id of ['dev-b', 'dev-d', 'sensor-1']) await goOffline(s, clients.get(id)!, id)

  const ofState = async (q: Record<string, string | number>) => (await list(s, q)).items.map((i) => i.clientId)
  assert.deepEqual(await ofState({}), ids)
  assert.deepEqual(await ofState({ state: 'all' }), ids)
  assert.deepEqual(await ofState({ state: 'online' }), ['dev-a', 'dev-c', 'dev-e'])
  assert.deepEqual(await ofState({ state: 'offline' }), ['dev-b', 'dev-d', 'sensor-1'])
  assert.deepEqual(await ofState({ state: 'offline', clientId: 'dev-' }), ['dev-b', 'dev-d'])
  assert.deepEqual(await ofState({ clientId: 'sensor' }), ['sensor-1'])
  assert.deepEqual(await ofState({ clientId: 'nothing' }), [])
  assert.deepEqual((await list(s, { clientId: 'dev-' })).total, { online: 3, offline: 2 })
  assert.deepEqual((await list(s, { state: 'online', limit: 1 })).total, { online: 3, offline: 3 }, 'totals ignore state and paging')

  const seen: string[] = []
  let after: string | null = null
  let pages = 0
  do {
    const page = await list(s, { clientId: 'dev-', limit: 2, ...(after === null ? {} : { after }) })
    seen.push(...page.items.map((i) => i.clientId))
    after = page.next
    pages++
  } while (after !== null)
  assert.equal(pages, 3)
  assert.deepEqual(seen, ['dev-a', 'dev-b', 'dev-c', 'dev-d', 'dev-e'])
  assert.deepEqual(await ofState({ state: 'offline', after: 'dev-b', limit: 1 }), ['dev-d'])
  assert.equal((await list(s, { state: 'offline', after: 'dev-b', limit: 1 })).next, 'dev-d')
})

test('client ids with /, spaces, % and markup round-trip URL-encoded', async (t) => {
  const kit = await brokerKit(t)
  const s = kit.server
  const ids = ['site/a b/7', '<script>alert(1)</script>', '100% sure', 'ünï名😀', 'q?x=1&y#z']
  for (const id of ids) {
    const { client } = await connect(kit, { protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } })
    await client.subscribeAsync(`x/${ids.indexOf(id)}`, { qos: 1 })
  }
  const listed = (await list(s)).items.map((i) => i.clientId)
  assert.deepEqual(listed, [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
  for (const id of ids) {
    const got = await read(s, id)
    assert.equal(got.clientId, id)
    assert.deepEqual(got.subscriptionList.map((x: { filter: string }) => x.filter), [`x/${ids.indexOf(id)}`])
  }
  assert.deepEqual((await list(s, { clientId: '<script>' })).items.map((i) => i.clientId), ['<script>alert(1)</script>'])
  assert.equal((await read(s, 'site/a b/7')).clientId, 'site/a b/7')
  assert.equal((await call(s, 'GET', '/api/sessions/site/a%20b/7')).json().clientId, 'site/a b/7', 'a / may also stay as it is')
  for (const id of ids) assert.equal((await call(s, 'DELETE', one(id))).statusCode, 204, id)
  assert.deepEqual((await list(s)).items, [])
})

test('400 for bad list queries; 401 without the token on every route; OpenAPI documents them', async (t) => {
  const s = await startServer()
  t.after(() => s.close())
  for (const [q, field] of [['state=gone', 'state'], ['limit=0', 'limit'], ['limit=1001', 'limit'], ['prefix=a', 'prefix']]) {
    const res = await call(s, 'GET', `/api/sessions?${q}`)
    assert.equal(res.statusCode, 400, `${q}: ${res.body}`)
    assert.deepEqual(res.json().fields.map((f: { field: string }) => f.field), [field], q)
  }
  for (const [method, url] of [['GET', '/api/sessions'], ['GET', one('a/b')], ['DELETE', one('a/b')]] as [Method, string][]) {
    assert.equal((await call(s, method, url, {})).statusCode, 401, `${method} ${url}`)
    assert.equal((await call(s, method, url, { authorization: 'Bearer wrong-token-xxxxxxxx' })).statusCode, 401, `${method} ${url}`)
  }
  const doc = (await s.app.inject({ method: 'GET', url: '/docs/json' })).json()
  for (const [path, method] of [['/api/sessions', 'get'], ['/api/sessions/{*}', 'get'], ['/api/sessions/{*}', 'delete']]) {
    const op = doc.paths[path]?.[method]
    assert.ok(op, `${method} ${path} documented`)
    assert.deepEqual(op.tags, ['sessions'])
    assert.deepEqual(op.security, [{ bearerAuth: [] }])
  }
})
