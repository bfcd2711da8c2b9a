// The HTTP upgrade is bounded by connectTimeoutMs (read per connection, so a hot change applies), stalled sockets
// are reported, and floods of stalled or silent sockets never keep a normal client out.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type net from 'node:net'
import type { FailureEvent } from '../src/contracts/failure.ts'
import { MAX_STALL_CREDIT_MS } from '../src/mqtt/stall.ts'
import { startServer, waitForFailure, connectMqtt, delay } from './helpers.ts'
import { tcpConnect, upgradeRequest, rawUpgrade, closedAfter } from './raw-websocket.ts'

/** The first part of an upgrade request: the request line and one header, never the blank line that ends it. */
const PARTIAL = 'GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n'

/** Collects the broker's failure events from now on. */
function collectFailures(emitter: { on(name: 'failure', l: (e: FailureEvent) => void): unknown }): FailureEvent[] {
  const seen: FailureEvent[] = []
  emitter.on('failure', (e) => seen.push(e))
  return seen
}

test('an upgrade request stalled halfway is closed at connectTimeoutMs and reported', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 300 } })
  t.after(() => server.close())
  const failure = waitForFailure(server, (e) => e.phase === 'handshake')
  const openedAt = Date.now()
  const socket = await tcpConnect(server.port)
  t.after(() => socket.destroy())
  socket.write(PARTIAL)
  await delay(50)
  assert.equal(server.app.websocketAdapter.pendingUpgrades, 1)

  const elapsed = await closedAfter(socket, openedAt)
  assert.ok(elapsed >= 280, `closed after ${elapsed} ms, before the timeout`)
  assert.ok(elapsed < 3000, `closed after ${elapsed} ms (Node's own limit would be 60 s)`)
  const e = await failure
  assert.equal(e.reason, 'websocket_error')
  // (on a loaded machine the broker may have been stalled meanwhile: the detail then says how long was not counted)
  assert.match(e.detail, new RegExp(`the upgrade request was not complete after \\d+ ms \\(${PARTIAL.length} bytes of it had arrived` +
    `(; \\d+ ms the broker itself was stalled were not counted)?\\)$`))
  assert.match(e.hint, /connectTimeoutMs/)
  assert.equal(e.remoteAddress, '127.0.0.1')
  assert.equal(server.app.websocketAdapter.pendingUpgrades, 0)
})

test('a hot change of connectTimeoutMs reaches upgrades already waiting and the next ones', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 60000 } })
  t.after(() => server.close())
  const openedAt = Date.now()
  const waiting = await tcpConnect(server.port)
  t.after(() => waiting.destroy())
  waiting.write(PARTIAL)
  await delay(100)
  assert.equal(server.app.websocketAdapter.pendingUpgrades, 1)

  server.app.settingsStore.update({ connectTimeoutMs: 250 }, { actor: 'test', comment: 'shorter' })
  // re-computed from its accept time: ~250 ms after it opened, not 60 s
  const elapsed = await closedAfter(waiting, openedAt, 5000)
  assert.ok(elapsed >= 230, `closed after ${elapsed} ms`)

  const nextOpenedAt = Date.now()
  const next = await tcpConnect(server.port)
  t.after(() => next.destroy())
  next.write(PARTIAL)
  const nextElapsed = await closedAfter(next, nextOpenedAt, 5000)
  assert.ok(nextElapsed >= 230, `closed after ${nextElapsed} ms`)
})

test('a socket that sends nothing is closed at connectTimeoutMs without a failure record', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 200 } })
  t.after(() => server.close())
  const failures = collectFailures(server.app.broker)
  const openedAt = Date.now()
  const socket = await tcpConnect(server.port)
  t.after(() => socket.destroy())
  const elapsed = await closedAfter(socket, openedAt)
  assert.ok(elapsed >= 180, `closed after ${elapsed} ms`)
  await delay(50)
  assert.deepEqual(failures, [], 'a never-used socket (a browser preconnect) is not a failure')
})

test('a socket whose first request is complete is no longer watched; Node’s header timeout follows connectTimeoutMs, past the guard’s bound', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 300 } })
  t.after(() => server.close())
  // One HTTP request, then the socket stays open, idle: the upgrade guard no longer watches it.
  const socket = await tcpConnect(server.port)
  t.after(() => socket.destroy())
  socket.write('GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  await new Promise((resolve) => socket.once('data', resolve))
  assert.equal(server.app.websocketAdapter.pendingUpgrades, 0)
  // (past the most the guard gives back for the broker's own stalls, so that Node's check never cuts first)
  assert.equal(server.app.server.headersTimeout, 300 + MAX_STALL_CREDIT_MS, 'Node’s header timeout follows connectTimeoutMs')
})

test('floods: 800 stalled upgrades and 200 silent WebSockets never keep a normal client out', async (t) => {
  const STALLED = 800
  const SILENT = 200
  // A long timeout while the flood builds up (a shared machine may be slow to open 1000 sockets), then a short one.
  const server = await startServer({ settings: { connectTimeoutMs: 60000 } })
  const sockets: net.Socket[] = []
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await server.close()
  })
  const failures = collectFailures(server.app.broker)

  // Open in batches, to stay polite to a shared machine.
  for (let i = 0; i < STALLED; i += 100) {
    const batch = await Promise.all(Array.from({ length: 100 }, () => tcpConnect(server.port)))
    for (const s of batch) s.write(PARTIAL)
    sockets.push(...batch)
  }
  for (let i = 0; i < SILENT; i += 50) {
    sockets.push(...(await Promise.all(Array.from({ length: 50 }, () => rawUpgrade(server.port)))))
  }
  await delay(100)
  assert.equal(server.app.websocketAdapter.pendingUpgrades, STALLED)

  // While all of them wait, a normal client connects and does pub/sub.
  const client = await connectMqtt(server.wsUrl, { clientId: 'normal', keepalive: 0 })
  t.after(() => client.end(true))
  await client.subscribeAsync('flood/ok')
  const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())))
  await client.publishAsync('flood/ok', 'served')
  assert.equal(await got, 'served')

  // A shorter timeout reaches every waiting socket; each is closed and nothing is left behind.
  const closed = Promise.all(sockets.map((s) => closedAfter(s, Date.now(), 15000)))
  server.app.settingsStore.update({ connectTimeoutMs: 300 }, { actor: 'test', comment: 'end the flood' })
  await closed
  assert.equal(server.app.websocketAdapter.pendingUpgrades, 0)
  assert.ok(client.connected, 'the normal client is still connected')
  assert.deepEqual(server.app.broker.connections().map((c) => c.clientId), ['normal'])
  assert.equal(failures.filter((e) => e.phase === 'handshake').length, STALLED)
  assert.equal(failures.filter((e) => e.reason === 'connect_timeout').length, SILENT)
})

test('more waiting upgrades than maxConnections: the oldest makes room, a normal client still connects', async (t) => {
  const LIMIT = 50
  const server = await startServer({ settings: { connectTimeoutMs: 60000, maxConnections: LIMIT } })
  const sockets: net.Socket[] = []
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await server.close()
  })
  const failures = collectFailures(server.app.broker)
  for (let i = 0; i < LIMIT + 10; i++) {
    const s = await tcpConnect(server.port)
    s.write(PARTIAL)
    sockets.push(s)
  }
  await delay(100)
  assert.ok(server.app.websocketAdapter.pendingUpgrades <= LIMIT, `${server.app.websocketAdapter.pendingUpgrades} pending`)
  // the 10 oldest were closed, the newest still wait
  await Promise.all(sockets.slice(0, 10).map((s) => closedAfter(s, Date.now(), 2000)))
  assert.ok(!sockets[sockets.length - 1].destroyed, 'the newest stalled socket still waits')
  assert.ok(failures.filter((e) => /maxConnections/.test(e.detail)).length >= 10)

  const client = await connectMqtt(server.wsUrl, { clientId: 'still-welcome' })
  t.after(() => client.end(true))
  assert.ok(client.connected)
})

test('a normal upgrade after a slow start is served if its request completes in time', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 1500 } })
  t.after(() => server.close())
  const socket = await tcpConnect(server.port)
  t.after(() => socket.destroy())
  const request = upgradeRequest()
  // the request in three pieces, well within the timeout
  socket.write(request.slice(0, 20))
  await delay(150)
  socket.write(request.slice(20, 60))
  await delay(150)
  socket.write(request.slice(60))
  const head = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))))
  assert.match(head, /^HTTP\/1\.1 101/)
  assert.match(head, /Sec-WebSocket-Protocol: mqtt/i)
  socket.destroy()
})
