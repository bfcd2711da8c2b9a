// MQTT over TLS on TCP (MQTTS_PORT) with the server's certificate: MQTT.js over mqtts://, a renewed certificate used by
// new handshakes while a live MQTTS client keeps its connection, a stalled TLS handshake cut at the connect timeout
// and a failed one, both recorded as tls_error; MQTTS without a certificate refused at start-up.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import tls from 'node:tls'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { loadConfig } from '../../src/config.ts'
import { install, makePem, skipWithoutOpenssl } from './certs.ts'
import { connectMqtt, startServer, tempDir, until, waitForFailure } from '../helpers.ts'

async function mqttsServer(t: { after(fn: () => unknown): void }, settings = {}) {
  const tmp = tempDir('broker-mqtts-')
  t.after(() => tmp.cleanup())
  const first = makePem(tmp.dir, 'first')
  const paths = { cert: join(tmp.dir, 'cert.pem'), key: join(tmp.dir, 'key.pem') }
  install(first, paths)
  const server = await startServer({ settings, config: { tlsCert: paths.cert, tlsKey: paths.key, mqttsPort: 0 } })
  t.after(() => server.close())
  return { server, port: server.app.mqttListeners.tlsPort!, first, paths, dir: tmp.dir }
}

/** The certificate a fresh TLS handshake to `port` is given. */
async function peerFingerprint(port: number, ca: Buffer[]): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' })
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', () => resolve()).once('error', reject))
  const fp = new X509Certificate(socket.getPeerX509Certificate()!.raw).fingerprint256
  socket.destroy()
  return fp
}

test('MQTT.js over mqtts:// with the server certificate; the connection says tls', { skip: skipWithoutOpenssl }, async (t) => {
  const { server, port, first } = await mqttsServer(t)
  const client = await connectMqtt(`mqtts://127.0.0.1:${port}`, { clientId: 'over-tls', ca: first.ca, servername: 'localhost' })
  t.after(() => client.end(true))
  await client.subscribeAsync('s/#', { qos: 1 })
  const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())))
  await client.publishAsync('s/1', 'secret hello', { qos: 1 })
  assert.equal(await got, 'secret hello')
  assert.equal(server.app.broker.connections().find((c) => c.clientId === 'over-tls')?.transport, 'tls')
})

test('a renewed certificate serves new MQTTS handshakes; a live MQTTS client keeps its connection', { skip: skipWithoutOpenssl }, async (t) => {
  const { server, port, first, paths, dir } = await mqttsServer(t)
  const second = makePem(dir, 'second')
  const live = await connectMqtt(`mqtts://127.0.0.1:${port}`, { clientId: 'live-tls', ca: [first.ca, second.ca], servername: 'localhost' })
  t.after(() => live.end(true))
  assert.equal(await peerFingerprint(port, [first.ca]), first.fingerprint)
  install(second, paths)
  assert.equal(server.app.tlsCertificates.reload('test'), true)
  await until(() => server.app.tlsCertificates.current() !== null &&
    new X509Certificate(server.app.tlsCertificates.current()!.cert).fingerprint256 === second.fingerprint, 'the new pair in force')
  assert.equal(await peerFingerprint(port, [second.ca]), second.fingerprint)
  // the old connection goes on
  const echo = new Promise<string>((resolve) => live.once('message', (_t, p) => resolve(p.toString())))
  await live.subscribeAsync('after/#', { qos: 1 })
  await live.publishAsync('after/1', 'still here', { qos: 1 })
  assert.equal(await echo, 'still here')
})

test('a TLS handshake that stalls is cut at connectTimeoutMs, one that fails is recorded, both as tls_error', { skip: skipWithoutOpenssl }, async (t) => {
  const { server, port } = await mqttsServer(t, { connectTimeoutMs: 300 })
  // a stalled handshake: the first bytes of a ClientHello, then nothing
  const stalled = net.connect(port, '127.0.0.1')
  t.after(() => stalled.destroy())
  const cut = waitForFailure(server, (e) => e.reason === 'tls_error' && /not complete/.test(e.detail))
  stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))
  const e = await cut
  assert.equal(e.phase, 'handshake')
  assert.equal(e.transport, 'tls')
  assert.ok(e.durationMs >= 250 && e.durationMs < 2000, `${e.durationMs} ms`)
  await until(() => stalled.destroyed || stalled.readableEnded, 'the broker closed it')

  // plain MQTT on the TLS port: the handshake fails
  const plain = net.connect(port, '127.0.0.1')
  t.after(() => plain.destroy())
  const failed = waitForFailure(server, (f) => f.reason === 'tls_error' && /handshake failed/.test(f.detail))
  plain.write(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00]))
  const f = await failed
  assert.match(f.hint, /TLS/)
  // a socket that sends nothing is not recorded (a load balancer's health check)
  const quiet = net.connect(port, '127.0.0.1')
  t.after(() => quiet.destroy())
  const before = server.app.failureLog.stats().recorded
  await until(() => quiet.destroyed || quiet.readableEnded, 'closed at the timeout', 3000)
  assert.equal(server.app.failureLog.stats().recorded, before)
})

test('MQTTS_PORT without a certificate stops start-up with one line', () => {
  assert.throws(() => loadConfig({ MQTTS_PORT: '8883' }), /^Error: invalid environment: MQTTS_PORT: needs TLS_CERT and TLS_KEY/)
})
