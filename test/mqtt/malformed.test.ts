// Malformed input, one line per case: each closes only its own connection, is reported with the right reason and
// phase, and the broker goes on serving a client that is connected throughout.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type net from 'node:net'
import type { IConnackPacket, Packet } from 'mqtt-packet'
import { startServer, waitForFailure, RawClient, connectMqtt, type TestServer } from '../helpers.ts'
import { rawUpgrade, clientFrame, closedAfter } from '../raw-websocket.ts'
import type { FailurePhase, FailureReason } from '../../src/contracts/failure.ts'

const MAX_PACKET = 1024

const encode = (p: Record<string, unknown> & { cmd: Packet['cmd'] }) => RawClient.encode(p as Packet)
const connectBytes = (clientId: string) =>
  encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId })
const publishBytes = (topic: string, payload: Buffer | string) =>
  encode({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false })

/** Deterministic "random" bytes (a small LCG), the first byte a reserved packet type. */
function noise(n: number, seed = 7): Buffer {
  const out = Buffer.alloc(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    out[i] = x >> 16
  }
  out[0] = 0x00
  return out
}

/** A connection under test: bytes go in, and the test waits for the server to close it. */
interface Victim {
  closed(): Promise<unknown>
}

type Case = {
  name: string
  /** connected: the case starts after a successful CONNECT */
  phase: FailurePhase
  reason: FailureReason
  detail?: RegExp
  run(server: TestServer, clientId: string): Promise<Victim>
}

/** Over a real WebSocket client. */
const viaWs = (send: (raw: RawClient) => void, connectFirst: boolean) =>
  async (server: TestServer, clientId: string): Promise<Victim> => {
    const raw = await RawClient.open(server.wsUrl)
    if (connectFirst) assert.equal((await raw.connect({ clientId }) as IConnackPacket).returnCode, 0)
    send(raw)
    return { closed: () => raw.closed() }
  }

/** Below the WebSocket layer: hand-built frames on an upgraded TCP socket. */
const viaTcp = (frames: (connect: Buffer) => Buffer[]) =>
  async (server: TestServer, clientId: string): Promise<Victim> => {
    const socket: net.Socket = await rawUpgrade(server.port)
    for (const f of frames(connectBytes(clientId))) socket.write(f)
    return { closed: () => closedAfter(socket, Date.now()) }
  }

const cases: Case[] = [
  { name: 'random bytes', phase: 'awaiting_connect', reason: 'protocol_error',
    run: viaWs((raw) => raw.sendBytes(noise(64)), false) },
  { name: 'a text frame', phase: 'awaiting_connect', reason: 'protocol_error', detail: /text frame/,
    run: viaWs((raw) => raw.sendBytes(Buffer.from('hello'), false), false) },
  { name: 'a PUBLISH before CONNECT', phase: 'awaiting_connect', reason: 'protocol_error',
    run: viaWs((raw) => raw.sendBytes(publishBytes('a/b', 'early')), false) },
  { name: 'a CONNECT with a bad protocol name', phase: 'awaiting_connect', reason: 'protocol_error',
    run: viaWs((raw) => raw.sendBytes(Buffer.from(connectBytes('bad-name')).fill(0x58, 6, 7)), false) },
  { name: 'a truncated CONNECT, then close', phase: 'awaiting_connect', reason: 'closed_before_connect', detail: /\d+ of \d+ bytes/,
    run: viaWs((raw) => {
      raw.sendBytes(connectBytes('truncated').subarray(0, 9))
      setTimeout(() => raw.ws.close(1000), 50)
    }, false) },
  { name: 'a second CONNECT', phase: 'connected', reason: 'protocol_error',
    run: viaWs((raw) => raw.sendBytes(connectBytes('second-connect')), true) },
  { name: 'SUBSCRIBE with bad reserved flags', phase: 'connected', reason: 'protocol_error',
    run: viaWs((raw) => raw.sendBytes(Buffer.from([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00])), true) },
  { name: 'PUBLISH with QoS 3', phase: 'connected', reason: 'protocol_error',
    run: viaWs((raw) => raw.sendBytes(Buffer.from([0x36, 0x07, 0x00, 0x01, 0x61, 0x00, 0x01, 0x68, 0x69])), true) },
  { name: 'a truncated PUBLISH, then close', phase: 'connected', reason: 'connection_lost',
    run: viaWs((raw) => {
      raw.sendBytes(publishBytes('cut/short', 'x'.repeat(100)).subarray(0, 20))
      setTimeout(() => raw.ws.close(1000), 50)
    }, true) },
  { name: 'a packet over maxPacketSize', phase: 'connected', reason: 'packet_too_large', detail: new RegExp(`maxPacketSize is ${MAX_PACKET}`),
    run: viaWs((raw) => raw.sendBytes(publishBytes('big', Buffer.alloc(MAX_PACKET * 2))), true) },
  { name: 'a WebSocket frame with a reserved opcode', phase: 'awaiting_connect', reason: 'websocket_error', detail: /opcode/,
    run: viaTcp(() => [clientFrame(0x3, Buffer.from([1, 2, 3]))]) },
  { name: 'an unmasked WebSocket frame', phase: 'awaiting_connect', reason: 'websocket_error', detail: /MASK/,
    run: viaTcp(() => [Buffer.from([0x82, 0x02, 0x10, 0x00])]) },
  { name: 'a WebSocket frame longer than any MQTT packet', phase: 'awaiting_connect', reason: 'packet_too_large', detail: /WebSocket message of more than/,
    run: viaTcp(() => [clientFrame(0x2, Buffer.alloc(0), { declaredLength: 2 ** 31 })]) },
  { name: 'a WebSocket frame with a reserved opcode after CONNECT', phase: 'connected', reason: 'websocket_error',
    run: viaTcp((connect) => [clientFrame(0x2, connect), clientFrame(0xb, Buffer.alloc(0))]) },
]

test('malformed input closes only that connection, with the right reason, while others are served', async (t) => {
  const server = await startServer({ settings: { maxPacketSize: MAX_PACKET, connectTimeoutMs: 3000 } })
  t.after(() => server.close())

  // A bystander pair, connected throughout.
  const sub = await connectMqtt(server.wsUrl, { clientId: 'bystander-sub' })
  const pub = await connectMqtt(server.wsUrl, { clientId: 'bystander-pub', protocolVersion: 5 })
  t.after(() => {
    sub.end(true)
    pub.end(true)
  })
  await sub.subscribeAsync('alive/#')
  const roundTrip = async (n: number) => {
    const got = new Promise<string>((resolve) => sub.once('message', (_topic, payload) => resolve(payload.toString())))
    await pub.publishAsync(`alive/${n}`, `still here ${n}`)
    assert.equal(await got, `still here ${n}`)
  }

  let n = 0
  for (const c of cases) {
    await t.test(c.name, async () => {
      const clientId = `victim-${++n}`
      const failure = waitForFailure(server, (e) => e.reason === c.reason && e.phase === c.phase &&
        (c.phase === 'awaiting_connect' || e.clientId === clientId))
      const victim = await c.run(server, clientId)
      const e = await failure
      if (c.detail) assert.match(e.detail, c.detail)
      assert.ok(e.hint.length > 0, 'a hint for the operator')
      await victim.closed()
      assert.ok(sub.connected && pub.connected, 'the bystanders are still connected')
      await roundTrip(n)
    })
  }
  assert.equal(server.app.broker.connections().length, 2, 'only the bystanders are left')
})
