// The outage scenarios this product exists for: a CONNECT that arrives slowly is waiting, not idle; the connect
// timeout runs from the WebSocket open until the CONNECT is complete; keepalive K x multiplier, with K = 0 meaning
// none; hot settings reach connections that are already open. Real server, raw WebSocket + mqtt-packet and MQTT.js.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { Packet } from 'mqtt-packet'
import type { FailureEvent } from '../../src/contracts/failure.ts'
import { brokerKit, delay, RawClient, keepaliveSilenceMs, stallGivenMs, waitForBrokerEvent, waitForFailure } from '../helpers.ts'

/** Leeway for timers on a shared 2-core machine: early never, late by at most this much. */
const LATE_MS = 700

const connectBytes = (clientId: string, keepalive = 0, protocolVersion = 4) =>
  RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean: true, keepalive, clientId } as Packet,
    protocolVersion)

/** `bytes` cut into `n` nearly equal parts. */
function split(bytes: Buffer, n: number): Buffer[] {
  const size = Math.ceil(bytes.length / n)
  const parts: Buffer[] = []
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size))
  return parts
}

function assertWithin(actual: number, expected: number, what: string): void {
  assert.ok(actual >= expected - 60, `${what}: ${actual} ms is before ${expected} ms`)
  assert.ok(actual <= expected + LATE_MS, `${what}: ${actual} ms is far after ${expected} ms`)
}

/** The record fields every failure carries from the connection's handshake and the settings in force. */
function assertCommonFields(e: FailureEvent, version: number): void {
  assert.equal(e.remoteAddress, '127.0.0.1')
  assert.equal(typeof e.remotePort, 'number')
  assert.equal(e.subprotocol, 'mqtt')
  assert.equal(e.userAgent, 'timeouts-test/1.0')
  assert.equal(e.settingsVersion, version)
  assert.ok(e.detail.length > 0 && e.hint.length > 0)
  assert.ok(e.durationMs >= 0)
}

const UA = { headers: { 'user-agent': 'timeouts-test/1.0' } }

// Independent servers, mostly waiting on timers: run side by side to keep the file short.
describe('timeouts', { concurrency: 4 }, () => {
  test('a CONNECT split into 3 frames with gaps below the connect timeout is served', async (t) => {
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 800 } })
    const failures: FailureEvent[] = []
    kit.server.app.broker.on('failure', (e) => failures.push(e))
    const raw = await kit.raw(UA)
    const connected = waitForBrokerEvent(kit.server, 'connected', (e) => e.clientId === 'slow-3-frames')
    const parts = split(connectBytes('slow-3-frames'), 3)
    assert.equal(parts.length, 3)
    for (const [i, part] of parts.entries()) {
      if (i > 0) await delay(200)
      raw.sendBytes(part)
    }
    const connack = await raw.nextPacket('connack')
    assert.equal((connack as { returnCode: number }).returnCode, 0)
    const e = await connected
    assert.ok(e.connectLatencyMs >= 390, `connect latency ${e.connectLatencyMs} ms counts from the socket open`)
    // the gaps add up to more than a CONNECT usually takes, yet nothing timed out
    await delay(900 - e.connectLatencyMs)
    assert.ok(raw.isOpen)
    assert.deepEqual(failures, [])
  })

  test('a CONNECT whose last byte comes after the connect timeout is closed as connect_timeout', async (t) => {
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 300 } })
    const version = kit.server.app.settingsStore.current().version
    const raw = await kit.raw(UA)
    const bytes = connectBytes('too-slow')
    const parts = split(bytes, 3)
    const failure = waitForFailure(kit.server, (e) => e.reason === 'connect_timeout')
    raw.sendBytes(parts[0])
    await delay(50)
    raw.sendBytes(parts[1])
    const e = await failure
    raw.sendBytes(parts[2]) // too late: the server has already given up
    await raw.closed()
    assert.equal(raw.packets.length, 0, 'no CONNACK')
    const sent = parts[0].length + parts[1].length
    assert.equal(e.phase, 'awaiting_connect')
    assert.equal(e.bytesReceived, sent)
    assert.equal(e.packetsReceived, 0)
    assert.equal(e.firstBytesHex, bytes.subarray(0, sent).toString('hex'))
    assert.match(e.detail, new RegExp(`sent ${sent} of ${bytes.length} bytes of its CONNECT in \\d+ ms`))
    assert.match(e.hint, /connectTimeoutMs/)
    assert.equal(e.clientId, null, 'the client id was never read')
    assertWithin(e.durationMs - stallGivenMs(e), 300, 'connect timeout')
    assertCommonFields(e, version)
  })

  test('a socket that sends nothing is closed at the connect timeout', async (t) => {
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 300 } })
    const raw = await kit.raw(UA)
    const e = await waitForFailure(kit.server, (f) => f.reason === 'connect_timeout')
    await raw.closed()
    assert.equal(e.bytesReceived, 0)
    assert.equal(e.firstBytesHex, '')
    assert.match(e.detail, /sent no bytes in \d+ ms/)
    assertWithin(e.durationMs - stallGivenMs(e), 300, 'connect timeout of a silent socket')
  })

  test('keepalive 0 stays connected past several would-be deadlines (raw and MQTT.js)', async (t) => {
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 200, keepaliveMultiplier: 1 } })
    const failures: FailureEvent[] = []
    kit.server.app.broker.on('failure', (e) => failures.push(e))
    const raw = await kit.raw()
    assert.equal((await raw.connect({ clientId: 'ka0-raw', keepalive: 0 }) as { returnCode: number }).returnCode, 0)
    const js = await kit.mqtt({ clientId: 'ka0-js', keepalive: 0 })
    // 1.5 s: many connect timeouts and the deadline a keepalive of 1 would have had, without a byte sent
    await delay(1500)
    assert.ok(raw.isOpen)
    assert.ok(js.connected)
    raw.send({ cmd: 'pingreq' })
    await raw.nextPacket('pingresp')
    const live = kit.server.app.broker.connections().find((c) => c.clientId === 'ka0-raw')
    assert.equal(live?.keepaliveSec, 0)
    assert.equal(live?.keepaliveTimeoutMs, null)
    assert.deepEqual(failures, [])
  })

  test('keepalive 1 without pings is dropped close to 1.5 s as keepalive_timeout', async (t) => {
    const kit = await brokerKit(t)
    const raw = await kit.raw(UA)
    const failure = waitForFailure(kit.server, (e) => e.reason === 'keepalive_timeout', 15_000)
    await raw.connect({ clientId: 'ka1-silent', keepalive: 1 })
    const e = await failure
    await raw.closed()
    assertWithin(keepaliveSilenceMs(e), 1500, 'keepalive 1 x 1.5')
    assert.equal(e.phase, 'connected')
    assert.equal(e.clientId, 'ka1-silent')
    assert.equal(e.keepaliveSec, 1)
    assert.equal(e.protocolVersion, 4)
    assert.equal(e.packetsReceived, 1)
    assert.match(e.detail, /keepalive 1 s x keepaliveMultiplier 1\.5/)
    assert.match(e.hint, /keepaliveMultiplier/)
    assertCommonFields(e, kit.server.app.settingsStore.current().version)
  })

  test('keepalive 1 with MQTT.js pings stays connected; any packet refreshes the deadline', async (t) => {
    const kit = await brokerKit(t)
    const failures: FailureEvent[] = []
    kit.server.app.broker.on('failure', (e) => failures.push(e))
    const js = await kit.mqtt({ clientId: 'ka1-pinging', keepalive: 1 })
    // a raw client that sends a PUBLISH (not a PINGREQ) every 600 ms is not idle either
    const raw = await kit.raw()
    await raw.connect({ clientId: 'ka1-publishing', keepalive: 1 })
    for (let i = 0; i < 4; i++) {
      await delay(600)
      raw.send({ cmd: 'publish', topic: 'ka/busy', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
    }
    assert.ok(js.connected)
    assert.ok(raw.isOpen)
    assert.deepEqual(failures, [])
  })

  test('a new keepaliveMultiplier re-arms the deadline of a live connection (close to 2 s with 2)', async (t) => {
    const kit = await brokerKit(t)
    const raw = await kit.raw()
    const failure = waitForFailure(kit.server, (e) => e.reason === 'keepalive_timeout', 15_000)
    await raw.connect({ clientId: 'ka1-rearmed', keepalive: 1 })
    // the live change, through the settings store the REST API uses (it applies synchronously)
    kit.server.app.settingsStore.update({ keepaliveMultiplier: 2 }, { actor: 'test', comment: 'slower links' })
    assert.equal(kit.server.app.broker.settings.values.keepaliveMultiplier, 2)
    assert.equal(kit.server.app.broker.connections().find((c) => c.clientId === 'ka1-rearmed')?.keepaliveTimeoutMs, 2000)
    const e = await failure
    assertWithin(keepaliveSilenceMs(e), 2000, 'keepalive 1 x 2')
    assert.match(e.detail, /keepaliveMultiplier 2\b/)
    assert.equal(e.settingsVersion, kit.server.app.settingsStore.current().version)
  })

  test('a lower multiplier drops a connection already silent for longer at once', async (t) => {
    const kit = await brokerKit(t, { settings: { keepaliveMultiplier: 5 } })
    const raw = await kit.raw()
    await raw.connect({ clientId: 'ka2-lowered', keepalive: 1 })
    await delay(1300)
    assert.ok(raw.isOpen, 'keepalive 1 x 5 has not passed')
    const failure = waitForFailure(kit.server, (e) => e.reason === 'keepalive_timeout', 15_000)
    const changedAt = Date.now()
    kit.server.app.broker.applySettings({
      version: 99, values: { ...kit.server.app.broker.settings.values, keepaliveMultiplier: 1 },
    })
    const e = await failure
    await raw.closed()
    assert.ok(Date.now() - changedAt - stallGivenMs(e) < 1000, 'closed at once (the old deadline was 3.7 s away): 1 s x 1 had already passed')
  })

  test('a lower connectTimeoutMs reaches a connection already waiting for its CONNECT', async (t) => {
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 10000 } })
    const raw = await kit.raw()
    raw.sendBytes(connectBytes('waiting').subarray(0, 5))
    const failure = waitForFailure(kit.server, (e) => e.reason === 'connect_timeout')
    await delay(100)
    kit.server.app.settingsStore.update({ connectTimeoutMs: 500 }, { actor: 'test' })
    const e = await failure
    await raw.closed()
    // the new deadline counts from the socket's open, not from the change
    assertWithin(e.durationMs - stallGivenMs(e), 500, 'lowered connect timeout')
    assert.equal(e.bytesReceived, 5)
    assert.match(e.detail, /connectTimeoutMs 500/)
  })

  test('a connectTimeoutMs lowered below the age of a waiting connection closes it now', async (t) => {
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 10000 } })
    const raw = await kit.raw()
    await delay(400)
    const failure = waitForFailure(kit.server, (e) => e.reason === 'connect_timeout')
    const changedAt = Date.now()
    kit.server.app.settingsStore.update({ connectTimeoutMs: 100 }, { actor: 'test' })
    const e = await failure
    await raw.closed()
    assert.ok(Date.now() - changedAt - stallGivenMs(e) < 1000, 'closed at once (the old deadline was 9.6 s away)')
    assert.ok(e.durationMs >= 400)
  })

  test('a raised connectTimeoutMs lets a waiting connection finish its CONNECT; connected ones are untouched', async (t) => {
    // (the first deadline leaves room for a loaded machine between the socket's open and the raise)
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 800 } })
    const failures: FailureEvent[] = []
    kit.server.app.broker.on('failure', (e) => failures.push(e))
    const early = await kit.mqtt({ clientId: 'already-in' })
    const raw = await kit.raw()
    const bytes = connectBytes('raised')
    raw.sendBytes(bytes.subarray(0, 3))
    kit.server.app.settingsStore.update({ connectTimeoutMs: 5000 }, { actor: 'test' })
    await delay(1000) // past the old deadline
    raw.sendBytes(bytes.subarray(3))
    assert.equal((await raw.nextPacket('connack') as { returnCode: number }).returnCode, 0)
    kit.server.app.settingsStore.update({ connectTimeoutMs: 100 }, { actor: 'test' })
    await delay(300)
    assert.ok(raw.isOpen && early.connected, 'connected clients have no connect deadline')
    assert.deepEqual(failures, [])
  })

  test('the peer closing in the middle of its CONNECT is closed_before_connect with the bytes received', async (t) => {
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 5000 } })
    const raw = await kit.raw(UA)
    const bytes = connectBytes('gave-up')
    const failure = waitForFailure(kit.server, (e) => e.reason === 'closed_before_connect')
    raw.sendBytes(bytes.subarray(0, 10))
    await delay(50)
    raw.ws.close(1001)
    const e = await failure
    assert.equal(e.bytesReceived, 10)
    assert.match(e.detail, new RegExp(`10 of ${bytes.length} bytes of its CONNECT`))
    assert.ok(e.durationMs < 5000)
  })

  test('a connected client whose socket drops is connection_lost, and its Will is published', async (t) => {
    const kit = await brokerKit(t)
    const { log } = await kit.watch({ 'wills/#': { qos: 0 } })
    const raw = await kit.raw(UA)
    await raw.connect({ clientId: 'will-holder', keepalive: 30, will: { topic: 'wills/will-holder', payload: Buffer.from('gone'), qos: 0, retain: false } })
    const failure = waitForFailure(kit.server, (e) => e.reason === 'connection_lost')
    raw.close()
    const e = await failure
    assert.equal(e.phase, 'connected')
    assert.equal(e.clientId, 'will-holder')
    assert.equal(e.keepaliveSec, 30)
    const will = await log.waitFor((m) => m.topic === 'wills/will-holder')
    assert.equal(will.payload.toString(), 'gone')
  })

  test('a normal DISCONNECT and a server shutdown are not failures', async (t) => {
    const kit = await brokerKit(t)
    const failures: FailureEvent[] = []
    kit.server.app.broker.on('failure', (e) => failures.push(e))
    const raw = await kit.raw()
    await raw.connect({ clientId: 'polite', keepalive: 10 })
    const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === 'polite')
    raw.send({ cmd: 'disconnect' })
    assert.equal((await gone).how, 'disconnect')
    const v5 = await kit.raw({ protocolVersion: 5 })
    await v5.connect({ clientId: 'stays-v5', keepalive: 10 }, 5)
    const v3 = await kit.raw()
    await v3.connect({ clientId: 'stays-v3', keepalive: 10 })
    await kit.server.app.broker.close()
    const farewell = await v5.nextPacket('disconnect') as { reasonCode: number }
    assert.equal(farewell.reasonCode, 0x8b)
    await v3.closed()
    assert.deepEqual(failures, [])
  })
})
