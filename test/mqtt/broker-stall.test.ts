// A timeout measures the client, never the broker: when the broker's own event loop is blocked (here on purpose, by
// a busy loop in this process, which also runs the server), the time it was stalled is not counted against the
// client, bytes that waited unread are read before anyone is judged, and a failure that still happens says how slow
// the broker was (brokerLagMs, and the hint).
import type { Socket } from 'node:net'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Packet } from 'mqtt-packet'
import type { FailureEvent } from '../../src/contracts/failure.ts'
import { brokerKit, delay, RawClient, waitForFailure } from '../helpers.ts'
import { tcpConnect, upgradeRequest, closedAfter, readResponseHead, clientFrame } from '../raw-websocket.ts'

/** Block the event loop (broker and test alike) for `ms`. */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) { /* the broker cannot run */ }
}

const connectBytes = (clientId: string, keepalive = 0) =>
  RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive, clientId } as Packet)

test('a whole CONNECT that waited unread while the broker was blocked past connectTimeoutMs is served, not timed out', async (t) => {
  const kit = await brokerKit(t, { settings: { connectTimeoutMs: 300 } })
  const failures: FailureEvent[] = []
  kit.server.app.broker.on('failure', (e) => failures.push(e))
  const raw = await kit.raw()
  raw.sendBytes(connectBytes('stalled-broker'))
  blockEventLoop(800)
  const connack = await raw.nextPacket('connack') as { returnCode: number }
  assert.equal(connack.returnCode, 0)
  assert.deepEqual(failures, [])
})

test('STALL_CREDIT=off: the same CONNECT, waiting unread through the same stall, is timed out on the wall clock', async (t) => {
  const kit = await brokerKit(t, { settings: { connectTimeoutMs: 300 }, config: { stallCredit: 'off' } })
  const failure = waitForFailure(kit.server, (e) => e.reason === 'connect_timeout', 5000)
  const raw = await kit.raw()
  raw.sendBytes(connectBytes('stalled-broker'))
  blockEventLoop(800)
  const e = await failure
  assert.doesNotMatch(e.detail, /were not counted/)
  assert.ok(e.brokerLagMs !== null && e.brokerLagMs >= 500, `brokerLagMs ${e.brokerLagMs}`)
})

test('the time the broker was stalled is given back to a connection still waiting for its CONNECT', async (t) => {
  const kit = await brokerKit(t, { settings: { connectTimeoutMs: 500 } })
  const failures: FailureEvent[] = []
  kit.server.app.broker.on('failure', (e) => failures.push(e))
  const raw = await kit.raw()
  blockEventLoop(800) // past connectTimeoutMs while the client had no chance to be served
  await delay(100) // the client sends 100 ms after the stall: 900 ms after its open, but 100 ms of broker time
  raw.sendBytes(connectBytes('after-the-stall'))
  const connack = await raw.nextPacket('connack') as { returnCode: number }
  assert.equal(connack.returnCode, 0)
  assert.deepEqual(failures, [])
})

test('a keepalive deadline passed only because the broker was blocked is given that time back', async (t) => {
  const kit = await brokerKit(t)
  const failures: FailureEvent[] = []
  kit.server.app.broker.on('failure', (e) => failures.push(e))
  const raw = await kit.raw()
  await raw.connect({ clientId: 'keepalive-1s', keepalive: 1 })
  blockEventLoop(2500) // keepalive 1 s x 1.5: the deadline passed during the block
  raw.send({ cmd: 'pingreq' })
  await raw.nextPacket('pingresp')
  assert.ok(raw.isOpen)
  assert.deepEqual(failures, [])
})

test('a silent client still times out after a stall, and its record shows the broker lag and says the broker was slow too', async (t) => {
  const kit = await brokerKit(t, { settings: { connectTimeoutMs: 300 } })
  const failure = waitForFailure(kit.server, (e) => e.reason === 'connect_timeout', 5000)
  await kit.raw()
  blockEventLoop(700)
  const e = await failure
  assert.ok(e.brokerLagMs !== null && e.brokerLagMs >= 500, `brokerLagMs ${e.brokerLagMs}`)
  assert.ok(e.durationMs >= 300 + 600, `the stall was given back (waited ${e.durationMs} ms)`)
  assert.match(e.hint, /the broker itself was slow at the time \(its event loop stalled for up to \d+ ms/)
  // and the API returns it with the record (the failure log writes in batches)
  let lag: number | null = null
  for (let tries = 0; lag === null && tries < 60; tries++) {
    const res = await fetch(`${kit.server.url}/api/failures?reason=connect_timeout`, { headers: { authorization: `Bearer ${kit.server.token}` } })
    lag = ((await res.json()) as { items: { brokerLagMs: number | null }[] }).items[0]?.brokerLagMs ?? null
    if (lag === null) await delay(50)
  }
  assert.ok(lag! >= 500, `brokerLagMs ${lag} in the API`)
})

// The same holds before there is a connection: the HTTP upgrade is bounded by connectTimeoutMs from the TCP accept.

/**
 * Send `bytes`, then block the event loop, both from a setImmediate callback: the bytes wait unread in the kernel,
 * and when the block ends the timers (the deadline) run before the poll phase reads them, the order in which a
 * stalled broker meets an expired deadline.
 */
function sendThenBlock(socket: Socket, bytes: string, ms: number): Promise<void> {
  return new Promise((resolve) => setImmediate(() => {
    socket.write(bytes)
    blockEventLoop(ms)
    resolve()
  }))
}

test('an upgrade request that waited unread while the broker was blocked past connectTimeoutMs is answered, not cut', async (t) => {
  const kit = await brokerKit(t, { settings: { connectTimeoutMs: 300 } })
  const failures: FailureEvent[] = []
  kit.server.app.broker.on('failure', (e) => failures.push(e))
  const socket = await tcpConnect(kit.server.port)
  t.after(() => socket.destroy())
  await delay(20) // accepted: its deadline runs
  await sendThenBlock(socket, upgradeRequest(), 800)
  const head = await readResponseHead(socket)
  assert.match(head, /^HTTP\/1\.1 101 /)
  // past connectTimeoutMs from the accept by now, all of it the broker's: the CONNECT deadline gives it back too
  const connack = new Promise<Buffer>((resolve) => socket.on('data', (d: Buffer) => { if (d.includes(Buffer.from([0x20, 0x02]))) resolve(d) }))
  socket.write(clientFrame(0x2, connectBytes('after-a-stalled-upgrade')))
  await connack
  assert.deepEqual(failures, [])
})

test('STALL_CREDIT=off: the same upgrade, waiting unread through the same stall, is cut on the wall clock', async (t) => {
  const kit = await brokerKit(t, { settings: { connectTimeoutMs: 300 }, config: { stallCredit: 'off' } })
  const socket = await tcpConnect(kit.server.port)
  t.after(() => socket.destroy())
  await delay(20)
  const openedAt = Date.now()
  await sendThenBlock(socket, upgradeRequest(), 800)
  const elapsed = await closedAfter(socket, openedAt, 5000)
  assert.ok(elapsed >= 700, `closed after ${elapsed} ms`)
})

test('an upgrade stalled by the client still ends after a broker stall, and its record says what was given back', async (t) => {
  const kit = await brokerKit(t, { settings: { connectTimeoutMs: 300 } })
  const failure = waitForFailure(kit.server, (e) => e.phase === 'handshake', 5000)
  const socket = await tcpConnect(kit.server.port)
  t.after(() => socket.destroy())
  socket.write('GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  await delay(50)
  blockEventLoop(700)
  const e = await failure
  assert.equal(e.reason, 'websocket_error')
  assert.match(e.detail, /; \d+ ms the broker itself was stalled were not counted\)/)
  assert.ok(e.durationMs >= 300 + 500, `the stall was given back (waited ${e.durationMs} ms)`)
  assert.ok(e.brokerLagMs !== null && e.brokerLagMs >= 500, `brokerLagMs ${e.brokerLagMs}`)
})
