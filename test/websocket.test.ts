// The WebSocket adapter: subprotocol negotiation, refused upgrades (reported), frames as a byte stream in any
// split, connection facts from the handshake, backpressure.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { once, type EventEmitter } from 'node:events'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import WebSocket from 'ws'
import mqttPacket, { type IConnackPacket, type Packet } from 'mqtt-packet'
import { startServer, waitForFailure, waitForEvent, RawClient, connectMqtt, delay, hasChromium, CHROMIUM_PATH } from './helpers.ts'
import type { ConnectedEvent } from '../src/mqtt/types.ts'
import { tcpConnect, upgradeRequest, readResponseHead, serverClosedAfter, clientFrame } from './raw-websocket.ts'

/** Opens a WebSocket and reports how the upgrade ended. */
function tryOpen(url: string, protocols?: string[], headers?: Record<string, string>) {
  return new Promise<{ opened: true; protocol: string; ws: WebSocket } | { opened: false; status: number }>((resolve, reject) => {
    const ws = protocols === undefined ? new WebSocket(url, { headers }) : new WebSocket(url, protocols, { headers })
    ws.once('open', () => resolve({ opened: true, protocol: ws.protocol, ws }))
    ws.once('unexpected-response', (_req, res) => {
      resolve({ opened: false, status: res.statusCode ?? 0 })
      res.resume()
      ws.terminate()
    })
    ws.once('error', reject)
  })
}

test('subprotocol negotiation: mqtt preferred, mqttv3.1 accepted, none accepted, only others refused', async (t) => {
  const server = await startServer()
  t.after(() => server.close())

  const accepted: Array<[offered: string[] | undefined, chosen: string]> = [
    [['mqtt'], 'mqtt'],
    [['mqttv3.1'], 'mqttv3.1'],
    [['chat', 'mqtt'], 'mqtt'],
    [['mqttv3.1', 'mqtt'], 'mqtt'],
    // No Sec-WebSocket-Protocol at all: accepted, many embedded clients send none.
    [undefined, ''],
  ]
  for (const [offered, chosen] of accepted) {
    const r = await tryOpen(server.wsUrl, offered)
    assert.ok(r.opened, `offer ${JSON.stringify(offered)} must be accepted`)
    assert.equal(r.protocol, chosen, `offer ${JSON.stringify(offered)}`)
    // and the connection speaks MQTT
    const connack = new Promise<Packet>((resolve) => {
      const parser = mqttPacket.parser()
      parser.once('packet', resolve)
      r.ws.on('message', (d: Buffer) => parser.parse(d))
    })
    r.ws.send(RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: '' } as Packet))
    assert.equal((await connack).cmd, 'connack')
    r.ws.terminate()
  }

  const failure = waitForFailure(server, (e) => e.reason === 'websocket_error' && e.subprotocol === 'chat, superchat')
  const refused = await tryOpen(server.wsUrl, ['chat', 'superchat'], { 'User-Agent': 'test-agent/1.0', Origin: 'https://example.test' })
  assert.deepEqual(refused, { opened: false, status: 400 })
  const e = await failure
  assert.equal(e.phase, 'handshake')
  assert.match(e.detail, /offered only the subprotocols "chat, superchat"/)
  assert.match(e.hint, /mqtt/)
  assert.equal(e.userAgent, 'test-agent/1.0')
  assert.equal(e.origin, 'https://example.test')
  assert.equal(e.remoteAddress, '127.0.0.1')
  assert.equal(typeof e.remotePort, 'number')
})

test('an upgrade to another path is refused with 404 and reported; a plain GET of the MQTT path gets 426', async (t) => {
  const server = await startServer()
  t.after(() => server.close())

  for (const path of ['/not-mqtt', '/mqtt/extra', '/healthz']) {
    const failure = waitForFailure(server, (e) => e.reason === 'websocket_error' && e.detail.includes(path))
    const r = await tryOpen(`${server.url.replace('http', 'ws')}${path}`, ['mqtt'])
    assert.deepEqual(r, { opened: false, status: 404 }, path)
    const e = await failure
    assert.equal(e.phase, 'handshake')
    assert.match(e.detail, /the MQTT endpoint is GET \/mqtt/)
    assert.match(e.hint, /MQTT_PATH/)
  }

  const res = await fetch(`${server.url}/mqtt`)
  assert.equal(res.status, 426)
  assert.equal(res.headers.get('upgrade'), 'websocket')
  await res.body?.cancel()
})

test('an invalid WebSocket handshake is refused with 400 and reported', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const failure = waitForFailure(server, (e) => e.reason === 'websocket_error' && /Sec-WebSocket-Version/.test(e.detail))
  const socket = await tcpConnect(server.port)
  t.after(() => socket.destroy())
  socket.write(upgradeRequest('/mqtt', { 'Sec-WebSocket-Protocol': 'mqtt' }).replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 12'))
  const head = await readResponseHead(socket)
  assert.match(head, /^HTTP\/1\.1 400/)
  assert.equal((await failure).phase, 'handshake')
})

test('a CONNECT and a PUBLISH sent one byte per frame are served', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const sub = await connectMqtt(server.wsUrl)
  t.after(() => sub.end(true))
  await sub.subscribeAsync('split/#')
  const got = new Promise<[string, Buffer]>((resolve) => sub.once('message', (topic, payload) => resolve([topic, payload])))

  const raw = await RawClient.open(server.wsUrl)
  t.after(() => raw.close())
  const bytes = Buffer.concat([
    RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'split-1' } as Packet),
    RawClient.encode({ cmd: 'publish', topic: 'split/one', payload: Buffer.from('byte by byte'), qos: 0, retain: false, dup: false } as Packet),
  ])
  for (const b of bytes) raw.sendBytes(Buffer.from([b]))
  assert.equal((await raw.nextPacket('connack') as IConnackPacket).returnCode, 0)
  const [topic, payload] = await got
  assert.equal(topic, 'split/one')
  assert.equal(payload.toString(), 'byte by byte')
})

test('many packets in one frame are each handled, in order', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const raw = await RawClient.open(server.wsUrl)
  t.after(() => raw.close())
  raw.sendBytes(Buffer.concat([
    RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'batch-1' } as Packet),
    RawClient.encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'batch/#', qos: 1 }] } as Packet),
    RawClient.encode({ cmd: 'publish', topic: 'batch/a', payload: Buffer.from('first'), qos: 0, retain: false, dup: false } as Packet),
    RawClient.encode({ cmd: 'publish', topic: 'batch/b', payload: Buffer.from('second'), qos: 1, messageId: 2, retain: false, dup: false } as Packet),
    RawClient.encode({ cmd: 'pingreq' } as Packet),
  ]))
  assert.equal((await raw.nextPacket('connack') as IConnackPacket).returnCode, 0)
  assert.deepEqual((await raw.nextPacket('suback') as { granted: number[] }).granted, [1])
  assert.equal((await raw.nextPacket('puback') as { messageId: number }).messageId, 2)
  const first = await raw.nextPacket('publish') as { topic: string; payload: Buffer }
  const second = await raw.nextPacket('publish') as { topic: string; payload: Buffer }
  assert.deepEqual([first.topic, first.payload.toString()], ['batch/a', 'first'])
  assert.deepEqual([second.topic, second.payload.toString()], ['batch/b', 'second'])
  await raw.nextPacket('pingresp')
  assert.ok(raw.isOpen)
})

test('the connection carries the handshake facts: address, user agent, origin, subprotocol', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const raw = await RawClient.open(server.wsUrl, {
    protocols: ['mqttv3.1'],
    headers: { 'User-Agent': 'embedded-device/2.3', Origin: 'http://device.local' },
  })
  t.after(() => raw.close())
  await raw.connect({ clientId: 'facts-1' })
  const live = server.app.broker.connections().find((c) => c.clientId === 'facts-1')
  assert.ok(live, 'the client is listed')
  assert.equal(live.remoteAddress, '127.0.0.1')
  assert.equal(live.userAgent, 'embedded-device/2.3')

  // a failure of the same kind of connection carries origin and subprotocol too
  const raw2 = await RawClient.open(server.wsUrl, {
    protocols: ['mqttv3.1'],
    headers: { 'User-Agent': 'embedded-device/2.3', Origin: 'http://device.local' },
  })
  const failure = waitForFailure(server, (e) => e.reason === 'protocol_error' && e.origin === 'http://device.local')
  raw2.sendBytes(Buffer.from('not mqtt'), false)
  const e = await failure
  assert.equal(e.subprotocol, 'mqttv3.1')
  assert.equal(e.userAgent, 'embedded-device/2.3')
  await raw2.closed()
})

test('the connect timeout runs from TCP accept, not from the end of the upgrade', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 1000 } })
  t.after(() => server.close())
  const failure = waitForFailure(server, (e) => e.reason === 'connect_timeout', 5000)
  const acceptedAt = Date.now()
  const socket = await tcpConnect(server.port)
  t.after(() => socket.destroy())
  await delay(500)
  socket.write(upgradeRequest())
  assert.match(await readResponseHead(socket), /^HTTP\/1\.1 101/)
  // Counted from accept the deadline is ~1000 ms away from acceptedAt; counted from the upgrade it would be ~1500.
  const elapsed = await serverClosedAfter(socket, acceptedAt)
  assert.ok(elapsed >= 950, `closed after ${elapsed} ms, before the timeout`)
  assert.ok(elapsed < 1450, `closed after ${elapsed} ms: the timeout ran from the upgrade, not from accept`)
  assert.equal((await failure).phase, 'awaiting_connect')
})

test('backpressure: a subscriber that stops reading gets every QoS 1 message once it reads again', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  // The subscriber's own TCP socket, so that it can stop reading (ws lets the caller create the connection).
  let tcp: net.Socket | undefined
  const ws = new WebSocket(server.wsUrl, 'mqtt', {
    createConnection: ((opts: net.NetConnectOpts) => {
      tcp = net.connect(opts)
      return tcp
    }) as typeof net.createConnection,
  })
  t.after(() => ws.terminate())
  await once(ws, 'open')
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const received: number[] = []
  let allReceived: () => void = () => {}
  const done = new Promise<void>((resolve) => {
    allReceived = resolve
  })
  const COUNT = 256
  parser.on('packet', (p: Packet) => {
    if (p.cmd !== 'publish') return
    ws.send(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId } as Packet))
    received.push(Number((p.payload as Buffer).readUInt32BE(0)))
    if (received.length === COUNT) allReceived()
  })
  ws.on('message', (d: Buffer) => parser.parse(d))
  ws.send(RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'slow-reader' } as Packet))
  ws.send(RawClient.encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bulk', qos: 1 }] } as Packet))
  await delay(100)
  assert.ok(tcp)
  tcp.pause()

  // 256 x 16 KiB = 4 MiB: more than the loopback socket buffers hold, so the broker must wait for 'drain'.
  const pub = await connectMqtt(server.wsUrl)
  t.after(() => pub.end(true))
  const payload = Buffer.alloc(16 * 1024)
  for (let i = 0; i < COUNT; i++) {
    const p = Buffer.from(payload)
    p.writeUInt32BE(i, 0)
    await pub.publishAsync('bulk', p, { qos: 1 })
  }
  await delay(200)
  assert.ok(received.length < COUNT, 'the paused subscriber cannot have read everything')
  tcp.resume()
  await done
  assert.deepEqual(received, Array.from({ length: COUNT }, (_, i) => i))
})

test('a CONNECT sent together with the upgrade request (before the 101) is served', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const socket = await tcpConnect(server.port)
  t.after(() => socket.destroy())
  const connect = RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'eager' } as Packet)
  socket.write(Buffer.concat([Buffer.from(upgradeRequest()), clientFrame(0x2, connect)]))
  // 101, then a binary frame holding CONNACK (0x20 0x02 0x00 0x00)
  let bytes = Buffer.alloc(0)
  await new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => {
      bytes = Buffer.concat([bytes, d])
      if (bytes.includes(Buffer.from([0x82, 0x04, 0x20, 0x02, 0x00, 0x00]))) resolve()
    })
  })
  assert.match(bytes.toString('latin1'), /^HTTP\/1\.1 101/)
  assert.deepEqual(server.app.broker.connections().map((c) => c.clientId), ['eager'])
})

test('an upgrade on a kept-alive socket that served a request before: the connect timeout runs from the upgrade', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 400 } })
  t.after(() => server.close())
  const socket = await tcpConnect(server.port)
  t.after(() => socket.destroy())
  socket.write('GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  assert.match(await readResponseHead(socket), /^HTTP\/1\.1 426/)
  await delay(600) // longer than connectTimeoutMs since the TCP accept
  socket.write(upgradeRequest())
  await new Promise<void>((resolve) => {
    let text = ''
    const onData = (d: Buffer) => {
      text += d.toString('latin1')
      if (text.includes('101 Switching Protocols')) {
        socket.off('data', onData)
        resolve()
      }
    }
    socket.on('data', onData)
  })
  const connect = RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'reused' } as Packet)
  const connack = new Promise<Buffer>((resolve) => socket.once('data', resolve))
  socket.write(clientFrame(0x2, connect))
  assert.deepEqual([...(await connack)], [0x82, 0x04, 0x20, 0x02, 0x00, 0x00])
})

test('a browser: MQTT.js in Chromium connects over MQTT 5, publishes and receives', { skip: !hasChromium() && 'no Chromium' }, async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const connected = waitForEvent<ConnectedEvent>(server.app.broker as unknown as EventEmitter, 'connected', (e) => e.protocolVersion === 5, 10000)
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  })
  t.after(() => browser.close())
  const page = await browser.newPage()
  // any page of this origin (the MQTT path answers a plain GET with 426 and a JSON body)
  await page.goto(`${server.url}/mqtt`)
  await page.addScriptTag({ path: join(import.meta.dirname, '../node_modules/mqtt/dist/mqtt.min.js') })
  const received = await page.evaluate(async (url) => {
    const mqtt = (window as unknown as { mqtt: { connect(url: string, o: object): any } }).mqtt
    const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0 })
    return await new Promise<string>((resolve) => {
      client.on('connect', () => client.subscribe('browser/#', () => client.publish('browser/hello', 'from chromium')))
      client.on('message', (topic: string, payload: Uint8Array) => {
        resolve(`${topic} ${new TextDecoder().decode(payload)}`)
        client.end()
      })
      client.on('error', (e: Error) => resolve(`error: ${e.message}`))
    })
  }, server.wsUrl)
  assert.equal(received, 'browser/hello from chromium')
  const e = await connected
  assert.equal(e.remoteAddress, '127.0.0.1')
})

test('a WebSocket message over maxPacketSize is refused before it is buffered, as packet_too_large; a raised limit reaches new connections', async (t) => {
  const server = await startServer({ settings: { maxPacketSize: 1024 } })
  t.after(() => server.close())
  const limit = 1024 + 5 + 64 * 1024

  // One message just over the WebSocket limit: ws refuses it from its frame header (close 1009), the core reports it.
  const big = await RawClient.open(server.wsUrl)
  t.after(() => big.close())
  await big.connect({ clientId: 'big-1' })
  const failure = waitForFailure(server, (e) => e.clientId === 'big-1')
  big.sendBytes(Buffer.alloc(limit + 1))
  const e = await failure
  assert.equal(e.reason, 'packet_too_large')
  assert.equal(e.phase, 'connected')
  assert.match(e.detail, new RegExp(`more than ${limit} bytes; maxPacketSize is 1024`))
  assert.equal(await big.closed(), 1009)

  // After maxPacketSize is raised, a new connection may send a packet of the new size in one message.
  const older = await RawClient.open(server.wsUrl)
  t.after(() => older.close())
  await older.connect({ clientId: 'big-old' })
  server.app.settingsStore.update({ maxPacketSize: 200_000 }, { actor: 'test' })
  // a connection opened before the raise keeps the limit it was opened with, and its failure names that limit
  const olderFailure = waitForFailure(server, (f) => f.clientId === 'big-old')
  older.sendBytes(Buffer.alloc(limit + 1))
  assert.match((await olderFailure).detail, new RegExp(`more than ${limit} bytes`))
  assert.equal(await older.closed(), 1009)
  const sub = await connectMqtt(server.wsUrl, { clientId: 'big-sub' })
  t.after(() => sub.end(true))
  await sub.subscribeAsync('big/#')
  const got = new Promise<Buffer>((resolve) => sub.once('message', (_topic, payload) => resolve(payload)))
  const raw = await RawClient.open(server.wsUrl)
  t.after(() => raw.close())
  await raw.connect({ clientId: 'big-2' })
  raw.send({ cmd: 'publish', topic: 'big/one', payload: Buffer.alloc(150_000, 7), qos: 0, retain: false, dup: false } as Packet)
  assert.equal((await got).length, 150_000)
  assert.ok(raw.isOpen)
})
