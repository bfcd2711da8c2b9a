// Once the server's side of a WebSocket has ended (the closing handshake done), the server closes the TCP connection
// itself (RFC 6455 7.1.1) and lets go of the client at once, without waiting for the peer's FIN (ws would wait up to
// 30 s for it).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { startServer, until } from './helpers.ts'
import { upgradeRequest, readResponseHead, clientFrame } from './raw-websocket.ts'

test('a client that sends its close frame but keeps its TCP side open is let go at once', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  // half-open allowed: the client does not answer the server's FIN with its own
  const socket = net.connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true })
  t.after(() => socket.destroy())
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  socket.write(upgradeRequest())
  assert.match(await readResponseHead(socket), /^HTTP\/1\.1 101 /)
  const connack = new Promise<void>((resolve) => socket.on('data', (d: Buffer) => { if (d.includes(Buffer.from([0x20, 0x02]))) resolve() }))
  const connect = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'half-open' } as Packet
  socket.write(clientFrame(0x2, mqttPacket.generate(connect)))
  await connack
  assert.equal(server.app.broker.stats.clientsConnected, 1)
  const ended = new Promise<void>((resolve) => socket.once('end', resolve))
  socket.write(clientFrame(0x8, Buffer.from([0x03, 0xe8]))) // close, 1000
  await ended // the server's FIN
  await until(() => server.app.broker.stats.clientsConnected === 0, 'the broker let go of the client', 2000)
  assert.equal(socket.writableEnded, false, 'the client never ended its side')
})
