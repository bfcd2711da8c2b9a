// "In force before the response returns", through real clients on a real port: each setting's scope, exercised by
// a PATCH over real HTTP and observed on real MQTT connections (MQTT.js, or raw ws + mqtt-packet for byte-level cases).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IConnackPacket } from 'mqtt-packet'
import type { SettingsValues } from '../../src/settings/schema.ts'
import type { FailureEvent } from '../../src/contracts/failure.ts'
import { failureEvent } from '../failures/fixtures.ts'
import { connectMqtt, delay, RawClient, startServer, waitForFailure, type TestServer } from '../helpers.ts'

async function server(t: { after(fn: () => Promise<void> | void): void }, settings: Partial<SettingsValues> = {}) {
  const s = await startServer({ settings })
  t.after(() => s.close())
  return s
}

/** PATCH over real HTTP; resolves with the new version once the response has arrived. */
async function patch(s: TestServer, values: Partial<SettingsValues>): Promise<{ version: number; values: SettingsValues }> {
  const res = await fetch(`${s.url}/api/settings`, {
    method: 'PATCH',
    headers: { ...s.auth, 'content-type': 'application/json' },
    body: JSON.stringify({ values }),
  })
  assert.equal(res.status, 200, await res.clone().text())
  return res.json() as Promise<{ version: number; values: SettingsValues }>
}

async function rawClient(t: { after(fn: () => void): void }, s: TestServer, protocolVersion = 4) {
  const c = await RawClient.open(s.wsUrl, { protocolVersion })
  t.after(() => c.close())
  return c
}

const connackCode = (p: IConnackPacket) => p.reasonCode ?? p.returnCode

const liveConnection = (s: TestServer, clientId: string) => s.app.broker.connections().find((c) => c.clientId === clientId)

async function apiConnection(s: TestServer, clientId: string) {
  const res = await s.app.inject({ method: 'GET', url: '/api/connections', headers: s.auth })
  return (res.json().items as Array<{ clientId: string; keepaliveSec: number; keepaliveTimeoutMs: number | null }>).find((c) => c.clientId === clientId)
}

test('keepaliveMultiplier: a live MQTT.js client\'s keepalive deadline moves before the PATCH response arrives', async (t) => {
  const s = await server(t)
  const client = await connectMqtt(s.wsUrl, { clientId: 'live-keepalive', keepalive: 2 })
  t.after(() => { client.end(true) })
  assert.equal(liveConnection(s, 'live-keepalive')?.keepaliveTimeoutMs, 3000)
  assert.equal((await apiConnection(s, 'live-keepalive'))?.keepaliveTimeoutMs, 3000)

  const v = await patch(s, { keepaliveMultiplier: 2 })
  assert.equal(v.version, 2)
  assert.equal(liveConnection(s, 'live-keepalive')?.keepaliveTimeoutMs, 4000)
  assert.equal((await apiConnection(s, 'live-keepalive'))?.keepaliveTimeoutMs, 4000)

  await patch(s, { keepaliveMultiplier: 1 })
  assert.equal(liveConnection(s, 'live-keepalive')?.keepaliveTimeoutMs, 2000)
  assert.ok(client.connected)
})

test('keepaliveMultiplier: a silent live client is dropped on the new deadline, not the old one', async (t) => {
  const s = await server(t)
  const c = await rawClient(t, s)
  const connack = await c.connect({ clientId: 'silent-one', keepalive: 1 })
  const connectedAt = Date.now()
  assert.equal(connackCode(connack as IConnackPacket), 0)
  const dropped = waitForFailure(s, (e) => e.clientId === 'silent-one', 6000)
  await patch(s, { keepaliveMultiplier: 2.5 }) // 1.5 s -> 2.5 s, re-armed from the last packet
  const failure = await dropped
  const after = Date.now() - connectedAt
  assert.equal(failure.reason, 'keepalive_timeout')
  assert.equal(failure.settingsVersion, 2)
  assert.ok(after >= 2300, `dropped after ${after} ms: the old 1.5 s deadline still applied`)
  assert.ok(after < 4500, `dropped after ${after} ms`)
})

test('connectTimeoutMs lowered: a connection already waiting for its CONNECT is closed by the new value', async (t) => {
  const s = await server(t, { connectTimeoutMs: 10000 })
  const c = await rawClient(t, s)
  const openedAt = Date.now()
  const connect = RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'half-way' } as never)
  c.sendBytes(connect.subarray(0, 5)) // waiting, not idle
  await delay(150)
  const timedOut = waitForFailure(s, (e) => e.reason === 'connect_timeout', 3000)
  await patch(s, { connectTimeoutMs: 400 })
  const failure: FailureEvent = await timedOut
  await c.closed(1000)
  const after = Date.now() - openedAt
  assert.equal(failure.phase, 'awaiting_connect')
  assert.equal(failure.bytesReceived, 5)
  assert.equal(failure.settingsVersion, 3)
  assert.ok(after < 2000, `closed ${after} ms after open; the old timeout was 10 s`)
  assert.ok(failure.durationMs >= 390, `the deadline runs from the open time (${failure.durationMs} ms)`)
})

test('connectTimeoutMs raised: a waiting connection gets the longer time and is served', async (t) => {
  const s = await server(t, { connectTimeoutMs: 400 })
  const c = await rawClient(t, s)
  await patch(s, { connectTimeoutMs: 5000 })
  await delay(700) // past the old 400 ms deadline
  assert.ok(c.isOpen, 'still open after the old deadline')
  const connack = await c.connect({ clientId: 'patient' })
  assert.equal(connackCode(connack as IConnackPacket), 0)
})

test('connectTimeoutMs: new connections get the new value', async (t) => {
  const s = await server(t)
  await patch(s, { connectTimeoutMs: 300 })
  const failed = waitForFailure(s, (e) => e.reason === 'connect_timeout', 3000)
  const c = await rawClient(t, s)
  const failure = await failed
  await c.closed(1000)
  assert.ok(failure.durationMs >= 290 && failure.durationMs < 1500, `${failure.durationMs} ms`)
  assert.equal(failure.bytesReceived, 0)
})

test('maxConnections: new connections are refused over it; those already connected stay', async (t) => {
  const s = await server(t)
  const a = await connectMqtt(s.wsUrl, { clientId: 'first' })
  const b = await connectMqtt(s.wsUrl, { clientId: 'second' })
  t.after(() => { a.end(true); b.end(true) })
  await patch(s, { maxConnections: 1 })
  assert.equal(s.app.broker.connections().length, 2, 'nobody already connected is dropped')
  const v4 = await rawClient(t, s)
  assert.equal(connackCode((await v4.connect({ clientId: 'third' })) as IConnackPacket), 3) // server unavailable
  const v5 = await rawClient(t, s, 5)
  assert.equal(connackCode((await v5.connect({ clientId: 'fourth' }, 5)) as IConnackPacket), 0x97) // quota exceeded
  assert.ok(a.connected && b.connected)
  await patch(s, { maxConnections: 3 })
  const c = await rawClient(t, s)
  assert.equal(connackCode((await c.connect({ clientId: 'third' })) as IConnackPacket), 0)
})

test('maxKeepaliveSec: checked at CONNECT (v5 told the maximum, v3 refused); a client already connected keeps its keepalive', async (t) => {
  const s = await server(t)
  const before = await rawClient(t, s, 5)
  await before.connect({ clientId: 'before', keepalive: 100 }, 5)
  await patch(s, { maxKeepaliveSec: 30 })
  assert.equal(liveConnection(s, 'before')?.keepaliveSec, 100)
  const v5 = await rawClient(t, s, 5)
  const connack = (await v5.connect({ clientId: 'v5-after', keepalive: 100 }, 5)) as IConnackPacket
  assert.equal(connackCode(connack), 0)
  assert.equal(connack.properties?.serverKeepAlive, 30)
  assert.equal(liveConnection(s, 'v5-after')?.keepaliveSec, 30)
  const v4 = await rawClient(t, s)
  assert.equal(connackCode((await v4.connect({ clientId: 'v4-after', keepalive: 100 })) as IConnackPacket), 2) // identifier rejected
  const ok = await rawClient(t, s)
  assert.equal(connackCode((await ok.connect({ clientId: 'v4-short', keepalive: 30 })) as IConnackPacket), 0)
})

test('serverKeepaliveSec: every new MQTT 5 client is told it and held to it; MQTT 3.1.1 keeps its own', async (t) => {
  const s = await server(t)
  await patch(s, { serverKeepaliveSec: 20 })
  const v5 = await rawClient(t, s, 5)
  const connack = (await v5.connect({ clientId: 'told', keepalive: 60 }, 5)) as IConnackPacket
  assert.equal(connack.properties?.serverKeepAlive, 20)
  assert.equal(liveConnection(s, 'told')?.keepaliveSec, 20)
  assert.equal(liveConnection(s, 'told')?.keepaliveTimeoutMs, 30000)
  const v4 = await rawClient(t, s)
  assert.equal(connackCode((await v4.connect({ clientId: 'own', keepalive: 60 })) as IConnackPacket), 0)
  assert.equal(liveConnection(s, 'own')?.keepaliveSec, 60)
  await patch(s, { serverKeepaliveSec: null })
  const later = await rawClient(t, s, 5)
  const plain = (await later.connect({ clientId: 'later', keepalive: 60 }, 5)) as IConnackPacket
  assert.equal(plain.properties?.serverKeepAlive, undefined)
  assert.equal(liveConnection(s, 'later')?.keepaliveSec, 60)
  assert.equal(liveConnection(s, 'told')?.keepaliveSec, 20, 'checked at CONNECT: the earlier client keeps what it was told')
})

test('allowZeroKeepalive false: checked at CONNECT (v3 refused, v5 given maxKeepaliveSec); a connected keepalive-0 client stays', async (t) => {
  const s = await server(t)
  const zero = await rawClient(t, s)
  await zero.connect({ clientId: 'zero-before', keepalive: 0 })
  await patch(s, { allowZeroKeepalive: false, maxKeepaliveSec: 120 })
  const v4 = await rawClient(t, s)
  assert.equal(connackCode((await v4.connect({ clientId: 'zero-v4', keepalive: 0 })) as IConnackPacket), 2)
  const v5 = await rawClient(t, s, 5)
  const connack = (await v5.connect({ clientId: 'zero-v5', keepalive: 0 }, 5)) as IConnackPacket
  assert.equal(connackCode(connack), 0)
  assert.equal(connack.properties?.serverKeepAlive, 120)
  assert.ok(zero.isOpen)
  assert.equal(liveConnection(s, 'zero-before')?.keepaliveSec, 0)
})

test('maxPacketSize: live connections, from their next packet', async (t) => {
  const s = await server(t)
  const c = await rawClient(t, s)
  await c.connect({ clientId: 'big-sender' })
  const payload = Buffer.alloc(200, 0x61)
  c.send({ cmd: 'publish', topic: 't/big', payload, qos: 0, retain: false, dup: false } as never)
  c.send({ cmd: 'pingreq' })
  await c.nextPacket('pingresp') // 200 bytes were fine under the default
  const tooLarge = waitForFailure(s, (e) => e.clientId === 'big-sender', 3000)
  await patch(s, { maxPacketSize: 100 })
  c.send({ cmd: 'publish', topic: 't/big', payload, qos: 0, retain: false, dup: false } as never)
  const failure = await tooLarge
  assert.equal(failure.reason, 'packet_too_large')
  assert.equal(failure.settingsVersion, 2)
  await c.closed(2000)
})

const syntheticFailure = (i: number, occurredAt: number): FailureEvent =>
  failureEvent({ occurredAt, remoteAddress: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` })

test('failureLogMaxRows and failureLogMaxAgeDays: the failure log, from its next pruning pass', async (t) => {
  const s = await server(t)
  const rows = () => s.app.db.prepare('SELECT count(*) FROM failures').pluck().get() as number
  const day = 24 * 3600 * 1000
  const now = Date.now()
  for (let i = 0; i < 1100; i++) s.app.failureLog.record(syntheticFailure(i, i < 50 ? now - 10 * day : now))
  s.app.failureLog.flush()
  assert.equal(rows(), 1100, 'precondition: every record stored under the defaults')

  await patch(s, { failureLogMaxAgeDays: 5 })
  s.app.failureLog.flush()
  assert.equal(rows(), 1050, 'records older than 5 days pruned')

  await patch(s, { failureLogMaxRows: 1000 })
  s.app.failureLog.flush()
  assert.equal(rows(), 1000, 'the oldest beyond 1000 rows pruned')
})
