// Quotas: no client can make the broker grow without bound. Each bound is attacked the way a hostile or broken
// client would, over real connections, with small limits set through the settings store so the attack is short.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import type { IConnackPacket, IPubackPacket, IPublishPacket, ISubackPacket, Packet } from 'mqtt-packet'
import { brokerKit, delay, RawClient, waitForFailure, until } from '../helpers.ts'
import { clientFrame, rawUpgrade } from '../raw-websocket.ts'

const BINARY = 0x2
const frame = (p: Record<string, unknown> & { cmd: Packet['cmd'] }, v = 4) => clientFrame(BINARY, RawClient.encode(p as Packet, v))


test('maxOutputBytes: a client that publishes QoS 1 at full speed but never reads is paused, then closed as a slow_consumer', async (t) => {
  const kit = await brokerKit(t, { settings: { maxOutputBytes: 16384, slowConsumerTimeoutMs: 400 } })
  const socket: Socket = await rawUpgrade(kit.server.port)
  t.after(() => socket.destroy())
  socket.write(frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'no-reader' }))
  // it subscribes to what it publishes, and never reads: its PUBACKs and its own messages pile up in the broker
  socket.write(frame({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'spam/#', qos: 1 }] }))
  socket.pause()
  // (the kernel's loopback buffers take some MB before the broker's output backs up: a loaded machine gets there slowly;
  // the loop stops as soon as the failure comes)
  const failed = waitForFailure(kit.server, (e) => e.reason === 'slow_consumer', 25_000)
  let stop = false
  void failed.finally(() => (stop = true))
  const batch = Buffer.concat(Array.from({ length: 50 }, (_, i) =>
    frame({ cmd: 'publish', topic: 'spam/t', payload: Buffer.alloc(4096, 0x73), qos: 1, messageId: i + 2, retain: false, dup: false })))
  const end = Date.now() + 20_000
  while (!stop && Date.now() < end && !socket.destroyed) {
    // at full speed, as far as the broker reads
    if (!socket.write(batch)) await Promise.race([new Promise((r) => socket.once('drain', r)), delay(20)])
  }
  const e = await failed
  assert.equal(e.clientId, 'no-reader')
  assert.equal(e.phase, 'connected')
  const pending = Number(/^(\d+) bytes waited/.exec(e.detail)?.[1])
  assert.ok(pending > 16384, e.detail)
  // bounded: the cap plus at most what one turn of input produced (the broker stopped reading at the cap)
  assert.ok(pending < 16384 + 2 * 1024 * 1024, `${pending} bytes were pending`)
  assert.match(e.detail, /maxOutputBytes 16384, slowConsumerTimeoutMs 400/)
  assert.match(e.hint, /maxOutputBytes/)
})

test('retained on SUBSCRIBE: `#` listed 500 times is one subscription, its retained messages go once, paced by the output', async (t) => {
  const kit = await brokerKit(t)
  const pub = await kit.raw()
  await pub.connect({ clientId: 'retainer' })
  const payload = Buffer.alloc(1024, 0x72)
  const batch = Buffer.concat(Array.from({ length: 1000 }, (_, i) =>
    RawClient.encode({ cmd: 'publish', topic: `r/${i}`, payload, qos: 0, retain: true, dup: false })))
  pub.sendBytes(batch)
  await until(() => kit.server.app.broker.stats.retainedMessages === 1000, '1000 retained messages')

  // a subscriber that reads: 500 x `#` in one SUBSCRIBE -> 500 SUBACK codes, 1000 retained messages, not 500,000
  const reader = await kit.raw()
  await reader.connect({ clientId: 'reader' })
  reader.send({ cmd: 'subscribe', messageId: 1, subscriptions: Array.from({ length: 500 }, () => ({ topic: '#', qos: 0 })) })
  const suback = await reader.nextPacket('suback') as ISubackPacket
  assert.equal(suback.granted.length, 500)
  assert.ok(suback.granted.every((g) => g === 0))
  await until(() => reader.packets.filter((p) => p.cmd === 'publish').length >= 1000, '1000 retained deliveries')
  await delay(200)
  assert.equal(reader.packets.filter((p) => p.cmd === 'publish').length, 1000)

  // one that does not read: the broker holds references to the retained messages, not 1000 encoded copies x 500
  const before = process.memoryUsage().heapUsed
  const stalled = await rawUpgrade(kit.server.port)
  t.after(() => stalled.destroy())
  stalled.write(frame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'stalled' }))
  stalled.pause()
  for (let i = 0; i < 5; i++) {
    stalled.write(frame({ cmd: 'subscribe', messageId: i + 1, subscriptions: Array.from({ length: 500 }, () => ({ topic: '#', qos: 0 })) }))
  }
  await delay(500)
  const grown = process.memoryUsage().heapUsed - before
  assert.ok(grown < 64 * 1024 * 1024, `heap grew ${Math.round(grown / 1024 / 1024)} MiB (unpaced: over 2 GiB)`)
  assert.ok(kit.server.app.broker.connections().some((c) => c.clientId === 'stalled'))
})

test('maxSessionExpirySec: MQTT 5 is told the reduced interval; an MQTT 3.1.1 persistent session expires after it', async (t) => {
  const kit = await brokerKit(t, { settings: { maxSessionExpirySec: 1 } })
  const v5 = await kit.raw({ protocolVersion: 5 })
  const connack = await v5.connect({ clientId: 'v5-long', clean: false, properties: { sessionExpiryInterval: 86400 } }, 5) as IConnackPacket
  assert.equal(connack.reasonCode, 0)
  assert.equal(connack.properties?.sessionExpiryInterval, 1)

  const first = await kit.raw()
  await first.connect({ clientId: 'v3-persistent', clean: false })
  first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'x', qos: 1 }] })
  await first.nextPacket('suback')
  first.close()
  await until(() => !kit.server.app.broker.connections().some((c) => c.clientId === 'v3-persistent'), 'disconnected')
  const again = await kit.raw()
  assert.equal((await again.connect({ clientId: 'v3-persistent', clean: false }) as IConnackPacket).sessionPresent, true, 'resumed within 1 s')
  again.close()
  await until(() => !kit.server.app.broker.connections().some((c) => c.clientId === 'v3-persistent'), 'disconnected')
  await delay(1300)
  const late = await kit.raw()
  assert.equal((await late.connect({ clientId: 'v3-persistent', clean: false }) as IConnackPacket).sessionPresent, false, 'expired after 1 s')
})

test('maxSessions: an endless loop of new persistent client ids stops at the cap; resuming an existing session still works', async (t) => {
  const kit = await brokerKit(t, { settings: { maxSessions: 5 } })
  const rejected: string[] = []
  kit.server.app.broker.on('failure', (f) => {
    if (f.reason === 'connect_rejected') rejected.push(`${f.detail} | ${f.hint}`)
  })
  for (let i = 0; i < 5; i++) {
    const c = await kit.raw()
    await c.connect({ clientId: `p${i}`, clean: false })
    c.close()
  }
  await until(() => kit.server.app.broker.stats.clientsConnected === 0, 'all gone')
  for (let i = 5; i < 50; i++) {
    const c = await kit.raw()
    const refused = await c.connect({ clientId: `p${i}`, clean: false }) as IConnackPacket
    assert.equal(refused.returnCode, 3, 'server unavailable')
  }
  const v5 = await kit.raw({ protocolVersion: 5 })
  assert.equal((await v5.connect({ clientId: 'p-v5', clean: false, properties: { sessionExpiryInterval: 60 } }, 5) as IConnackPacket).reasonCode, 0x97)
  assert.equal(kit.server.app.broker.sessions.size, 5)
  const back = await kit.raw()
  assert.equal((await back.connect({ clientId: 'p3', clean: false }) as IConnackPacket).sessionPresent, true)
  assert.equal(rejected.length, 46)
  assert.match(rejected[0], /the broker already holds 5 sessions \(maxSessions 5\) \| .*raise maxSessions/)
})

test('maxSubscriptionsPerClient, maxTopicLevels, maxTopicLength: a filter over them is refused alone; a PUBLISH over them closes', async (t) => {
  const kit = await brokerKit(t, { settings: { maxSubscriptionsPerClient: 3, maxTopicLevels: 4, maxTopicLength: 32 } })
  const c = await kit.raw({ protocolVersion: 5 })
  await c.connect({ clientId: 'subs' }, 5)
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [
    { topic: 'a', qos: 0 }, { topic: 'b', qos: 0 }, { topic: 'a/b/c/d/e', qos: 0 }, { topic: `x/${'y'.repeat(40)}`, qos: 0 },
    { topic: 'c', qos: 1 }, { topic: 'd', qos: 0 }, { topic: 'a', qos: 1 },
  ] }, 5)
  const suback = await c.nextPacket('suback') as ISubackPacket
  // a, b, [5 levels], [41 bytes], c, d (4th subscription), a (a replacement: allowed)
  assert.deepEqual(suback.granted, [1, 0, 0x8f, 0x8f, 1, 0x97, 1])
  assert.equal(kit.server.app.broker.connections().find((x) => x.clientId === 'subs')?.subscriptions, 3)

  const v3 = await kit.raw()
  await v3.connect({ clientId: 'subs-v3' })
  v3.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/b/c/d/e', qos: 0 }, { topic: 'ok', qos: 0 }] })
  assert.deepEqual((await v3.nextPacket('suback') as ISubackPacket).granted, [0x80, 0])

  const failed = waitForFailure(kit.server, (e) => e.clientId === 'subs' && e.reason === 'protocol_error')
  c.send({ cmd: 'publish', topic: 'a/b/c/d/e', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, 5)
  const disconnect = await c.nextPacket('disconnect') as Packet & { reasonCode: number }
  assert.equal(disconnect.reasonCode, 0x90)
  assert.match((await failed).detail, /more than maxTopicLevels 4 levels/)
})

test('maxRetainedMessages / maxRetainedBytes: a new retained topic over them is refused (v5 0x97), replacing and clearing work', async (t) => {
  const kit = await brokerKit(t, { settings: { maxRetainedMessages: 3, maxRetainedBytes: 1000 } })
  const c = await kit.raw({ protocolVersion: 5 })
  await c.connect({ clientId: 'ret' }, 5)
  const publish = async (topic: string, size: number, id: number) => {
    c.send({ cmd: 'publish', topic, payload: Buffer.alloc(size, 0x61), qos: 1, messageId: id, retain: true, dup: false }, 5)
    return ((await c.nextPacket('puback')) as IPubackPacket).reasonCode ?? 0
  }
  assert.equal(await publish('r/1', 10, 1), 0)
  assert.equal(await publish('r/2', 10, 2), 0)
  assert.equal(await publish('r/3', 10, 3), 0)
  assert.equal(await publish('r/4', 10, 4), 0x97, 'a 4th topic')
  assert.equal(await publish('r/1', 20, 5), 0, 'a replacement')
  assert.equal(await publish('r/2', 0, 6), 0, 'a clear')
  assert.equal(await publish('r/5', 990, 7), 0x97, 'over the bytes')
  assert.equal(await publish('r/5', 100, 8), 0)
  const broker = kit.server.app.broker
  assert.equal(broker.stats.retainedMessages, 3)
  assert.ok(broker.retained.bytes <= 1000)
  assert.equal(broker.stats.retainedRefused, 2)
  // the refused message was not routed either (0x97 says it was not accepted)
  const sub = await kit.raw()
  await sub.connect({ clientId: 'ret-sub' })
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r/#', qos: 0 }] })
  await sub.nextPacket('suback')
  await delay(100)
  assert.deepEqual(sub.packets.filter((p) => p.cmd === 'publish').map((p) => (p as IPublishPacket).topic).sort(), ['r/1', 'r/3', 'r/5'])
})

test('maxQueuedBytes: an offline session keeps at most that many payload bytes; the payloads are their own copies', async (t) => {
  const kit = await brokerKit(t, { settings: { maxQueuedBytes: 4096 } })
  const sub = await kit.raw()
  await sub.connect({ clientId: 'offline', clean: false })
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q/#', qos: 1 }] })
  await sub.nextPacket('suback')
  sub.close()
  await until(() => kit.server.app.broker.stats.clientsConnected === 0, 'offline')
  const pub = await kit.raw()
  await pub.connect({ clientId: 'q-pub' })
  // ten 1000-byte QoS 1 messages in one WebSocket message of ~10 KB
  pub.sendBytes(Buffer.concat(Array.from({ length: 10 }, (_, i) =>
    RawClient.encode({ cmd: 'publish', topic: 'q/t', payload: Buffer.alloc(1000, 0x30 + i), qos: 1, messageId: i + 1, retain: false, dup: false }))))
  await until(() => pub.packets.filter((p) => p.cmd === 'puback').length === 10, '10 PUBACKs')
  const session = kit.server.app.broker.sessions.get('offline')!
  assert.equal(session.queue?.length, 4)
  assert.equal(session.queuedBytes, 4000)
  for (const q of session.queue!) assert.ok(q.message.payload.buffer.byteLength <= 8192, 'not a view into the 10 KB frame (a copy, or a slice of the 8 KiB pool)')
  const back = await kit.raw()
  await back.connect({ clientId: 'offline', clean: false })
  await until(() => back.packets.filter((p) => p.cmd === 'publish').length === 4, '4 delivered')
})

test('maxPendingConnects: the socket waiting longest for its CONNECT makes room; a CONNECT over 256 KiB is refused from its header', async (t) => {
  const kit = await brokerKit(t, { settings: { maxPendingConnects: 3, connectTimeoutMs: 10_000 } })
  const silent: RawClient[] = []
  for (let i = 0; i < 3; i++) silent.push(await kit.raw())
  const evicted = waitForFailure(kit.server, (e) => e.reason === 'connect_timeout' && /maxPendingConnects \(3\)/.test(e.detail))
  const fourth = await kit.raw()
  await evicted
  assert.equal(await silent[0].closed(), 1000)
  assert.ok(silent[1].isOpen && silent[2].isOpen)
  // a real client still gets in (evicting the next oldest silent one)
  assert.equal((await fourth.connect({ clientId: 'real' }) as IConnackPacket).returnCode, 0)

  // a CONNECT whose header declares 300 KB: refused before its body is buffered, though maxPacketSize is 1 MiB
  const big = await kit.raw()
  const tooLarge = waitForFailure(kit.server, (e) => e.reason === 'packet_too_large' && e.phase === 'awaiting_connect')
  big.sendBytes(Buffer.from([0x10, 0xe0, 0xa7, 0x12])) // remaining length 300,000
  const e = await tooLarge
  assert.match(e.detail, /a CONNECT may be at most 262144 bytes/)
})

test('before CONNECT a socket may deliver only what a CONNECT can need, even inside one unfinished WebSocket message', async (t) => {
  const kit = await brokerKit(t, { settings: { connectTimeoutMs: 10_000 } })
  const socket: Socket = await rawUpgrade(kit.server.port)
  t.after(() => socket.destroy())
  const failed = waitForFailure(kit.server, (e) => e.reason === 'packet_too_large' && e.phase === 'awaiting_connect', 5000)
  // one binary frame declared at 900 KB (under maxPacketSize's message limit), of which 400 KB arrive, never finished
  const CONNECT_HEADER = Buffer.from([0x10, 0xe0, 0xa7, 0x12])
  socket.write(clientFrame(BINARY, Buffer.concat([CONNECT_HEADER, Buffer.alloc(64)]), { declaredLength: 900_000 }))
  for (let i = 0; i < 25 && !socket.destroyed; i++) {
    socket.write(Buffer.alloc(16 * 1024, 0x41))
    await delay(5)
  }
  const e = await failed
  assert.match(e.detail, /without completing its CONNECT; a CONNECT may be at most 262144 bytes/)
})
