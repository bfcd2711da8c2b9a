// Plain MQTT over TCP through the same core: MQTT.js over mqtt://, messages across transports, the outage scenarios
// of the timeout tests over a raw TCP socket (CONNECT in pieces, a late last byte, keepalive 0), failure records and
// live connections that say `tcp`, the failure list filtered by transport, the connection cap and a graceful close.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import mqtt from 'mqtt'
import mqttPacket, { type IConnackPacket, type IDisconnectPacket, type Packet } from 'mqtt-packet'
import { connectMqtt, delay, startServer, until, waitForFailure, type TestServer } from '../helpers.ts'

const tcpServer = (settings: NonNullable<Parameters<typeof startServer>[0]>['settings'] = {}) =>
  startServer({ config: { mqttTcpPort: 0 }, settings })

const tcpUrl = (s: TestServer) => `mqtt://127.0.0.1:${s.app.mqttListeners.tcpPort}`

/** A raw TCP MQTT client: bytes in, parsed packets out. */
async function rawTcp(s: TestServer) {
  const socket = net.connect(s.app.mqttListeners.tcpPort!, '127.0.0.1')
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const packets: Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  parser.on('packet', (p: Packet) => packets.push(p))
  socket.on('data', (d) => parser.parse(d))
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return { socket, packets, closed }
}

const connectBytes = (clientId: string, keepalive = 0) =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive, clientId })

test('MQTT.js over mqtt:// talks to WebSocket clients through the same broker; connections and records say tcp', async (t) => {
  const server = await tcpServer()
  t.after(() => server.close())
  assert.ok(server.app.mqttListeners.tcpPort! > 0)
  const tcp = await connectMqtt(tcpUrl(server), { clientId: 'over-tcp', protocolVersion: 5 })
  t.after(() => tcp.end(true))
  const ws = await connectMqtt(server.wsUrl, { clientId: 'over-ws' })
  t.after(() => ws.end(true))
  await ws.subscribeAsync('x/#', { qos: 1 })
  await tcp.subscribeAsync('y/#', { qos: 1 })
  const toWs = new Promise<string>((resolve) => ws.once('message', (_t, p) => resolve(p.toString())))
  const toTcp = new Promise<string>((resolve) => tcp.once('message', (_t, p) => resolve(p.toString())))
  await tcp.publishAsync('x/1', 'from tcp', { qos: 1 })
  await ws.publishAsync('y/1', 'from ws', { qos: 1 })
  assert.equal(await toWs, 'from tcp')
  assert.equal(await toTcp, 'from ws')

  const res = await fetch(`${server.url}/api/connections`, { headers: server.auth })
  const items = (await res.json() as { items: Array<{ clientId: string; transport: string }> }).items
  assert.equal(items.find((c) => c.clientId === 'over-tcp')?.transport, 'tcp')
  assert.equal(items.find((c) => c.clientId === 'over-ws')?.transport, 'ws')
})

test('over TCP: a CONNECT in 3 pieces is served, a late last byte is connect_timeout, keepalive 0 stays', async (t) => {
  const server = await tcpServer({ connectTimeoutMs: 300 })
  t.after(() => server.close())

  const pieces = await rawTcp(server)
  t.after(() => pieces.socket.destroy())
  const bytes = connectBytes('pieces')
  pieces.socket.write(bytes.subarray(0, 3))
  await delay(80)
  pieces.socket.write(bytes.subarray(3, 9))
  await delay(80)
  pieces.socket.write(bytes.subarray(9))
  await until(() => pieces.packets.some((p) => p.cmd === 'connack'), 'CONNACK')
  assert.equal((pieces.packets[0] as IConnackPacket).returnCode, 0)

  const late = await rawTcp(server)
  t.after(() => late.socket.destroy())
  const failed = waitForFailure(server, (e) => e.reason === 'connect_timeout' && e.transport === 'tcp')
  const lateBytes = connectBytes('late')
  late.socket.write(lateBytes.subarray(0, lateBytes.length - 1))
  const e = await failed
  assert.equal(e.bytesReceived, lateBytes.length - 1)
  assert.match(e.detail, new RegExp(`${lateBytes.length - 1} of ${lateBytes.length} bytes of its CONNECT`))
  assert.ok(e.durationMs >= 250 && e.durationMs < 2000, `${e.durationMs} ms`)
  await late.closed

  // keepalive 0: no keepalive, however long it is quiet (several connect timeouts here)
  const idle = await rawTcp(server)
  t.after(() => idle.socket.destroy())
  idle.socket.write(connectBytes('idle', 0))
  await until(() => idle.packets.some((p) => p.cmd === 'connack'), 'CONNACK')
  await delay(1000)
  assert.ok(!idle.socket.destroyed && server.app.broker.connections().some((c) => c.clientId === 'idle'))

  const listed = await fetch(`${server.url}/api/failures?transport=tcp`, { headers: server.auth })
  const records = (await listed.json() as { items: Array<{ clientId: string | null; transport: string; reason: string }> }).items
  assert.ok(records.length >= 1 && records.every((r) => r.transport === 'tcp'))
  const wsOnly = await fetch(`${server.url}/api/failures?transport=ws`, { headers: server.auth })
  assert.equal((await wsOnly.json() as { items: unknown[] }).items.length, 0)
})

test('over TCP: maxConnections counts every transport; a graceful close tells MQTT 5 clients 0x8B', async (t) => {
  const server = await tcpServer({ maxConnections: 1 })
  let closed = false
  t.after(() => (closed ? undefined : server.close()))
  const first = await connectMqtt(server.wsUrl, { clientId: 'first-ws' })
  t.after(() => first.end(true))
  const refused = await rawTcp(server)
  t.after(() => refused.socket.destroy())
  refused.socket.write(connectBytes('second-tcp'))
  await until(() => refused.packets.some((p) => p.cmd === 'connack'), 'CONNACK')
  assert.equal((refused.packets[0] as IConnackPacket).returnCode, 3, 'server unavailable')
  first.end(true)
  await until(() => server.app.broker.stats.clientsConnected === 0, 'room again')

  const v5 = mqtt.connect(tcpUrl(server), { clientId: 'v5-tcp', protocolVersion: 5, reconnectPeriod: 0 })
  t.after(() => v5.end(true))
  await new Promise<void>((resolve, reject) => v5.once('connect', () => resolve()).once('error', reject))
  const bye = new Promise<IDisconnectPacket>((resolve) => v5.once('disconnect', resolve))
  closed = true
  await server.close()
  assert.equal((await bye).reasonCode, 0x8b)
})

test('/metrics splits connections and failures by transport', async (t) => {
  const server = await tcpServer({ connectTimeoutMs: 200 })
  t.after(() => server.close())
  const tcp = await connectMqtt(tcpUrl(server), { clientId: 'm-tcp' })
  t.after(() => tcp.end(true))
  const ws = await connectMqtt(server.wsUrl, { clientId: 'm-ws' })
  t.after(() => ws.end(true))
  const silent = await rawTcp(server)
  silent.socket.write(Buffer.from([0x10]))
  await waitForFailure(server, (e) => e.reason === 'connect_timeout' && e.transport === 'tcp')
  const text = await (await fetch(`${server.url}/metrics`)).text()
  assert.match(text, /^mqtt_connections_by_transport\{transport="tcp"\} 1$/m)
  assert.match(text, /^mqtt_connections_by_transport\{transport="ws"\} 1$/m)
  assert.match(text, /^mqtt_connection_failures_by_transport_total\{transport="tcp",reason="connect_timeout"\} 1$/m)
})

test('over TCP: MQTT users and ACL rules apply as on WebSocket', async (t) => {
  const server = await tcpServer({ allowAnonymous: false })
  t.after(() => server.close())
  const post = (path: string, body: unknown) => fetch(`${server.url}${path}`, {
    method: 'POST', headers: { ...server.auth, 'content-type': 'application/json' }, body: JSON.stringify(body),
  })
  assert.equal((await post('/api/mqtt-users', { username: 'dev', password: 'dev-password-1' })).status, 201)
  assert.equal((await post('/api/acl', { topic: 'private/#', action: 'subscribe', permission: 'deny' })).status, 201)

  const refused = waitForFailure(server, (e) => e.reason === 'auth_failed' && e.transport === 'tcp')
  const bad = mqtt.connect(tcpUrl(server), { clientId: 'bad-tcp', username: 'dev', password: 'nope', reconnectPeriod: 0 })
  t.after(() => bad.end(true))
  bad.on('error', () => {})
  assert.match((await refused).detail, /dev/)

  const good = await connectMqtt(tcpUrl(server), { clientId: 'good-tcp', username: 'dev', password: 'dev-password-1', protocolVersion: 5 })
  t.after(() => good.end(true))
  await assert.rejects(good.subscribeAsync('private/x'), /Not authorized/)
  assert.deepEqual((await good.subscribeAsync('public/x')).map((g) => g.qos), [0])
})
