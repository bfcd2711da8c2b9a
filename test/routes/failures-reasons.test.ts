// Every failure reason, produced for real over a WebSocket (raw ws + mqtt-packet, or MQTT.js), then found through
// GET /api/failures and GET /api/failures/:id with the record's fields right.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import type { MqttClient } from 'mqtt'
import type { FailureReason } from '../../src/contracts/failure.ts'
import type { FailureRecord } from '../../src/failures/schema.ts'
import { connectMqtt, RawClient, startServer, waitForFailure, type TestServer } from '../helpers.ts'

const UA = (reason: string) => `failures-test/${reason}`

async function apiGet<T>(server: TestServer, path: string): Promise<T> {
  const res = await fetch(`${server.url}${path}`, { headers: server.auth })
  assert.equal(res.status, 200, `GET ${path}: ${res.status} ${await res.clone().text()}`)
  return (await res.json()) as T
}

/** The newest record of `reason` as the API lists it, after the log's next write; checked against GET /:id. */
async function findViaApi(server: TestServer, reason: FailureReason): Promise<FailureRecord> {
  server.app.failureLog.flush()
  const page = await apiGet<{ items: FailureRecord[] }>(server, `/api/failures?reason=${reason}&limit=5`)
  assert.equal(page.items.length, 1, `one ${reason} record`)
  const [record] = page.items
  assert.deepEqual(await apiGet<FailureRecord>(server, `/api/failures/${record.id}`), record)
  return record
}

/** Opens a raw WebSocket MQTT client that says who it is in its User-Agent. */
const rawClient = (server: TestServer, reason: string, opts: { protocols?: string } = {}) =>
  RawClient.open(server.wsUrl, { ...opts, headers: { 'user-agent': UA(reason) } })

const connectBytes = RawClient.encode({
  cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: 'slow-client',
})

interface Case {
  reason: FailureReason
  /** Produces the failure; resolves when the client side saw its end. */
  produce(server: TestServer, cleanup: (fn: () => void) => void): Promise<void>
  expect: Partial<FailureRecord>
  check?(r: FailureRecord): void
}

const cases: Case[] = [
  {
    reason: 'connect_timeout',
    async produce(server, cleanup) {
      const c = await rawClient(server, 'connect_timeout')
      cleanup(() => c.close())
      c.sendBytes(connectBytes.subarray(0, 7))
      await c.closed()
    },
    expect: { phase: 'awaiting_connect', bytesReceived: 7, firstBytesHex: connectBytes.subarray(0, 7).toString('hex'), subprotocol: 'mqtt', clientId: null },
    check(r) {
      assert.match(r.detail, new RegExp(`7 of ${connectBytes.length} bytes`))
      assert.match(r.hint, /connectTimeoutMs/)
      assert.ok(r.durationMs >= 250, `waited the connect timeout (${r.durationMs} ms)`)
    },
  },
  {
    reason: 'closed_before_connect',
    async produce(server) {
      const c = await rawClient(server, 'closed_before_connect')
      c.sendBytes(connectBytes.subarray(0, 3))
      c.ws.close() // after the data frame: the server has the 3 bytes before it sees the close
      await c.closed()
    },
    expect: { phase: 'awaiting_connect', bytesReceived: 3, firstBytesHex: connectBytes.subarray(0, 3).toString('hex') },
  },
  {
    reason: 'keepalive_timeout',
    async produce(server, cleanup) {
      const c = await rawClient(server, 'keepalive_timeout')
      cleanup(() => c.close())
      const connack = await c.connect({ clientId: 'sleepy-1', keepalive: 1 })
      assert.equal((connack as { returnCode?: number }).returnCode, 0)
      await c.closed() // silent: dropped after 1 s x keepaliveMultiplier 1
    },
    expect: { phase: 'connected', clientId: 'sleepy-1', keepaliveSec: 1, protocolVersion: 4, packetsReceived: 1 },
    check(r) {
      assert.ok(r.durationMs >= 900, `waited keepalive x multiplier (${r.durationMs} ms)`)
    },
  },
  {
    reason: 'connection_lost',
    async produce(server) {
      const c = await rawClient(server, 'connection_lost')
      await c.connect({ clientId: 'vanishing-1', keepalive: 60 })
      c.close() // TCP gone, no DISCONNECT
    },
    expect: { phase: 'connected', clientId: 'vanishing-1', keepaliveSec: 60 },
  },
  {
    reason: 'protocol_error',
    async produce(server, cleanup) {
      const c = await rawClient(server, 'protocol_error')
      cleanup(() => c.close())
      c.send({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('hi'), qos: 0, retain: false, dup: false })
      await c.closed()
    },
    expect: { phase: 'awaiting_connect', clientId: null },
    check(r) {
      assert.ok(r.firstBytesHex.startsWith('30'), `the PUBLISH bytes are kept: ${r.firstBytesHex}`)
    },
  },
  {
    reason: 'connect_rejected',
    async produce(server, cleanup) {
      const c = await rawClient(server, 'connect_rejected')
      cleanup(() => c.close())
      // [MQTT-3.1.3-8] an empty client id with clean session 0: CONNACK "identifier rejected". mqtt-packet will not
      // encode that, so the Clean Session flag (bit 1 of the Connect Flags, byte 9) is cleared by hand.
      const bytes = RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: '' })
      bytes[9] &= ~0x02
      c.sendBytes(bytes)
      const connack = await c.nextPacket('connack')
      assert.equal((connack as { returnCode?: number }).returnCode, 2)
      await c.closed()
    },
    expect: { phase: 'awaiting_connect', protocolVersion: 4 },
    check(r) {
      assert.match(r.hint, /client id/)
    },
  },
  {
    reason: 'packet_too_large',
    async produce(server, cleanup) {
      const client: MqttClient = await connectMqtt(server.wsUrl, { clientId: 'big-sender-1', wsOptions: { headers: { 'user-agent': UA('packet_too_large') } } })
      cleanup(() => client.end(true))
      client.on('error', () => {})
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
      client.publish('big/topic', Buffer.alloc(1000, 0x61))
      await closed
    },
    expect: { phase: 'connected', clientId: 'big-sender-1', protocolVersion: 4 },
    check(r) {
      assert.match(r.detail, /maxPacketSize is 256/)
      assert.match(r.hint, /maxPacketSize/)
    },
  },
  {
    reason: 'websocket_error',
    async produce(server) {
      // the wrong path: the upgrade is refused and reported in phase `handshake`
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/not-mqtt`, 'mqtt', { headers: { 'user-agent': UA('websocket_error') } })
      const status = await new Promise<number>((resolve, reject) => {
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
        ws.once('open', () => reject(new Error('the wrong path was upgraded')))
        ws.once('error', () => {})
      })
      ws.terminate()
      assert.ok(status >= 400, `refused with HTTP ${status}`)
    },
    expect: { phase: 'handshake', clientId: null, bytesReceived: 0 },
    check(r) {
      assert.match(r.detail + r.hint, /\/not-mqtt|\/mqtt/)
    },
  },
  {
    reason: 'taken_over',
    async produce(server, cleanup) {
      const opts = { clientId: 'twin-1', wsOptions: { headers: { 'user-agent': UA('taken_over') } } }
      const first = await connectMqtt(server.wsUrl, opts)
      first.on('error', () => {})
      cleanup(() => first.end(true))
      const closed = new Promise<void>((resolve) => first.once('close', () => resolve()))
      const second = await connectMqtt(server.wsUrl, opts)
      cleanup(() => second.end(true))
      await closed
    },
    expect: { phase: 'connected', clientId: 'twin-1', protocolVersion: 4 },
    check(r) {
      assert.match(r.detail, /twin-1/)
    },
  },
]

test('every failure reason, produced over a real WebSocket, is found through the API with its fields', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 300, keepaliveMultiplier: 1, maxPacketSize: 256 } })
  t.after(() => server.close())
  const settingsVersion = server.app.settingsStore.current().version
  assert.ok(settingsVersion > 1)

  for (const c of cases) {
    await t.test(c.reason, async (st) => {
      const cleanups: (() => void)[] = []
      st.after(() => cleanups.forEach((fn) => fn()))
      const emitted = waitForFailure(server, (e) => e.reason === c.reason, 4000)
      await c.produce(server, (fn) => cleanups.push(fn))
      await emitted
      const r = await findViaApi(server, c.reason)

      assert.equal(r.reason, c.reason)
      for (const [key, value] of Object.entries(c.expect)) {
        assert.deepEqual(r[key as keyof FailureRecord], value, `${c.reason}.${key}`)
      }
      assert.equal(r.remoteAddress, '127.0.0.1')
      assert.ok(r.remotePort !== null && r.remotePort > 0)
      assert.equal(r.userAgent, UA(c.reason))
      assert.equal(r.settingsVersion, settingsVersion)
      assert.equal(r.foldedCount, 0)
      assert.ok(r.detail.length > 10, `detail in words: ${r.detail}`)
      assert.ok(r.hint.length > 10, `hint in words: ${r.hint}`)
      assert.ok(Math.abs(Date.parse(r.occurredAt) - Date.now()) < 10_000)
      assert.ok(r.durationMs >= 0)
      c.check?.(r)
    })
  }

  // and nothing else was logged: one record per case
  server.app.failureLog.flush()
  const all = await apiGet<{ items: FailureRecord[] }>(server, '/api/failures?limit=100')
  assert.deepEqual(all.items.map((r) => r.reason).sort(), cases.map((c) => c.reason).sort())
})
