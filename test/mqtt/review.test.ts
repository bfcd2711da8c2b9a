// Regression tests from a review of the broker core: client input that used to throw out of the core (one case took
// the whole process down), leaks, and spec details that matter for interop. Raw bytes where mqtt-packet's generate()
// cannot produce the input (repeated or truncated v5 properties).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IConnackPacket, IPublishPacket, Packet } from 'mqtt-packet'
import { brokerKit, connectMqtt, RawClient, startServer, waitForFailure, type BrokerKit } from '../helpers.ts'
import { Broker } from '../../src/mqtt/broker.ts'
import { MemoryRouter } from '../../src/mqtt/router.ts'
import { DEFAULT_SETTINGS } from '../../src/settings/schema.ts'
import type { Logger } from '../../src/contracts/logger.ts'
import type { Transport } from '../../src/contracts/connection.ts'

// ---- hand-built MQTT 5 packets ----

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff])
const str = (s: string | Buffer) => {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s)
  return Buffer.concat([u16(b.length), b])
}
/** A property block: its length (one byte, the blocks here are short) and the property bytes. */
const propBlock = (bytes: number[] | Buffer) => Buffer.concat([Buffer.from([bytes.length]), Buffer.from(bytes)])
/** A Variable Byte Integer. */
function varint(n: number): Buffer {
  const out: number[] = []
  do {
    out.push((n % 128) | (n >= 128 ? 0x80 : 0))
    n = Math.floor(n / 128)
  } while (n > 0)
  return Buffer.from(out)
}
/** A packet from its first byte and body. */
const packet = (first: number, body: Buffer) => Buffer.concat([Buffer.from([first]), varint(body.length), body])
/** v5 PUBLISH at QoS 0 (retain optional) with raw property bytes. */
const v5Publish = (topic: string, props: number[], payload: string, retain = false) =>
  packet(0x30 | (retain ? 1 : 0), Buffer.concat([str(topic), propBlock(props), Buffer.from(payload)]))
/** v5 CONNECT with raw CONNECT properties and optionally a Will with raw Will properties. */
function v5Connect(clientId: string, props: number[] = [], will?: { topic: string; props: number[] }): Buffer {
  const flags = 0x02 | (will ? 0x04 : 0)
  const head = Buffer.concat([str('MQTT'), Buffer.from([5, flags]), u16(0), propBlock(props)])
  const payload = [str(clientId)]
  if (will) payload.push(propBlock(will.props), str(will.topic), str('gone'))
  return packet(0x10, Buffer.concat([head, ...payload]))
}

/** A User Property "a" whose value claims 65535 bytes: mqtt-packet reads it as null, without an error. */
const UNREADABLE_USER_PROPERTY = [0x26, 0x00, 0x01, 0x61, 0xff, 0xff]
/** Message Expiry Interval (0x02) twice: mqtt-packet makes it an array. */
const EXPIRY_TWICE = [0x02, 0, 0, 0, 60, 0x02, 0, 0, 0, 61]

async function v5Subscriber(kit: BrokerKit, clientId: string, filter: string): Promise<RawClient> {
  const raw = await kit.raw({ protocolVersion: 5 })
  assert.equal((await raw.connect({ clientId }, 5) as IConnackPacket).reasonCode, 0)
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] } as Packet, 5)
  await raw.nextPacket('suback')
  return raw
}

async function v5Raw(kit: BrokerKit, clientId: string): Promise<RawClient> {
  const raw = await kit.raw({ protocolVersion: 5 })
  assert.equal((await raw.connect({ clientId }, 5) as IConnackPacket).reasonCode, 0)
  return raw
}

// ---- 1. crash safety ----

test('unreadable or repeated v5 PUBLISH properties are refused where they come in; subscribers keep working', async (t) => {
  const kit = await brokerKit(t)
  const { server } = kit
  const sub = await v5Subscriber(kit, 'prop-sub', 'prop/#')

  const cases = [
    { props: UNREADABLE_USER_PROPERTY, detail: /User Property/, code: 0x81 },
    { props: EXPIRY_TWICE, detail: /messageExpiryInterval more than once/, code: 0x82 },
    { props: [0x03, 0xff, 0xff], detail: /contentType/, code: 0x81 }, // a string past the packet
    { props: [0x23, 0, 1, 0x23, 0, 2], detail: /topicAlias more than once/, code: 0x82 },
  ]
  for (const [i, c] of cases.entries()) {
    const pub = await v5Raw(kit, `prop-pub-${i}`)
    const failure = waitForFailure(server, (e) => e.clientId === `prop-pub-${i}`)
    pub.sendBytes(v5Publish('prop/x', c.props, 'poison', true))
    const e = await failure
    assert.equal(e.reason, 'protocol_error')
    assert.match(e.detail, c.detail)
    const d = await pub.nextPacket('disconnect') as Packet & { reasonCode: number }
    assert.equal(d.reasonCode, c.code)
  }
  // nothing was routed or retained: the subscriber saw none of it and a new MQTT 5 subscriber gets no retained message
  assert.equal(server.app.broker.stats.retainedMessages, 0)
  const pub = await v5Raw(kit, 'prop-pub-ok')
  pub.sendBytes(v5Publish('prop/ok', [0x26, ...str('k'), ...str('v')], 'fine'))
  const got = await sub.nextPacket('publish') as IPublishPacket
  assert.equal(got.topic, 'prop/ok')
  assert.deepEqual({ ...got.properties?.userProperties }, { k: 'v' })
  assert.ok(sub.isOpen)
})

test('a Will with unreadable properties and a Will Delay is refused at CONNECT (its delay timer took the process down)', async (t) => {
  const kit = await brokerKit(t)
  const { server } = kit
  const sub = await v5Subscriber(kit, 'will-sub', 'will/#')
  const raw = await kit.raw({ protocolVersion: 5 })
  const failure = waitForFailure(server, (e) => e.clientId === 'poison-will')
  // Will Delay Interval 1 s, Session Expiry 10 s, and a User Property mqtt-packet reads as null
  raw.sendBytes(v5Connect('poison-will', [0x11, 0, 0, 0, 10],
    { topic: 'will/x', props: [0x18, 0, 0, 0, 1, ...UNREADABLE_USER_PROPERTY] }))
  const e = await failure
  assert.equal(e.reason, 'protocol_error')
  assert.match(e.detail, /Will carrying a User Property/)
  await raw.closed()
  assert.equal(raw.packets.filter((p) => p.cmd === 'connack').length, 0)

  // the same for a Will Delay Interval sent twice
  const twice = await kit.raw({ protocolVersion: 5 })
  const failure2 = waitForFailure(server, (e) => e.clientId === 'twice-will')
  twice.sendBytes(v5Connect('twice-will', [], { topic: 'will/y', props: [0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 2] }))
  assert.match((await failure2).detail, /willDelayInterval more than once/)

  // a well-formed delayed Will still works
  const ok = await kit.raw({ protocolVersion: 5 })
  ok.sendBytes(v5Connect('good-will', [0x11, 0, 0, 0, 10], { topic: 'will/ok', props: [0x18, 0, 0, 0, 1, 0x26, ...str('k'), ...str('v')] }))
  assert.equal((await ok.nextPacket('connack') as IConnackPacket).reasonCode, 0)
  ok.close()
  const will = await sub.nextPacket('publish', 4000) as IPublishPacket
  assert.equal(will.topic, 'will/ok')
  assert.deepEqual({ ...will.properties?.userProperties }, { k: 'v' })
})

test('a CONNECT with Receive Maximum twice is refused (it became NaN: no bound on messages in flight)', async (t) => {
  const kit = await brokerKit(t)
  const { server } = kit
  const raw = await kit.raw({ protocolVersion: 5 })
  const failure = waitForFailure(server, (e) => e.clientId === 'rm-twice')
  raw.sendBytes(v5Connect('rm-twice', [0x21, 0, 5, 0x21, 0, 6]))
  const e = await failure
  assert.equal(e.reason, 'protocol_error')
  assert.match(e.detail, /receiveMaximum more than once/)
  await raw.closed()
})

test('a DISCONNECT with a repeated Session Expiry Interval is a protocol error, not a NaN expiry', async (t) => {
  const kit = await brokerKit(t)
  const { server } = kit
  const raw = await kit.raw({ protocolVersion: 5 })
  assert.equal((await raw.connect({ clientId: 'dc-twice', properties: { sessionExpiryInterval: 60 } }, 5) as IConnackPacket).reasonCode, 0)
  const failure = waitForFailure(server, (e) => e.clientId === 'dc-twice')
  raw.sendBytes(packet(0xe0, Buffer.concat([Buffer.from([0x00]), propBlock([0x11, 0, 0, 0, 5, 0x11, 0, 0, 0, 6])])))
  const e = await failure
  assert.equal(e.reason, 'protocol_error')
  assert.match(e.detail, /Session Expiry Interval/)
  // the session keeps the expiry it had (60 s), so a reconnect finds it
  const again = await kit.raw({ protocolVersion: 5 })
  const connack = await again.connect({ clientId: 'dc-twice', clean: false, properties: { sessionExpiryInterval: 60 } }, 5) as IConnackPacket
  assert.equal(connack.sessionPresent, true)
})

test('ill-formed UTF-8 that grows past 65535 bytes when decoded is refused, not forwarded with a wrapped length', async (t) => {
  const kit = await brokerKit(t)
  const { server } = kit
  const sub = await kit.mqtt({ clientId: 'utf8-sub' })
  const got: Array<{ topic: string; payload: string }> = []
  sub.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }))
  await sub.subscribeAsync('#')
  const sub5 = await v5Subscriber(kit, 'utf8-sub5', '#')

  // 30000 bytes of 0xFF: each becomes U+FFFD (3 bytes), 90000 bytes in all, more than a topic length field holds
  const garbage = Buffer.alloc(30000, 0xff)
  const pub = await kit.raw()
  assert.equal((await pub.connect({ clientId: 'utf8-pub' }) as IConnackPacket).returnCode, 0)
  const failure = waitForFailure(server, (e) => e.clientId === 'utf8-pub')
  pub.sendBytes(packet(0x30, Buffer.concat([str(garbage), Buffer.from('payload')])))
  const e = await failure
  assert.equal(e.reason, 'protocol_error')
  assert.match(e.detail, /invalid topic name/)

  // the same in a v5 User Property value
  const pub5 = await v5Raw(kit, 'utf8-pub5')
  const failure5 = waitForFailure(server, (e) => e.clientId === 'utf8-pub5')
  const userProp = Buffer.concat([Buffer.from([0x26]), str('k'), str(garbage)])
  const props = Buffer.concat([varint(userProp.length), userProp])
  pub5.sendBytes(packet(0x30, Buffer.concat([str('utf8/x'), props, Buffer.from('payload')])))
  assert.match((await failure5).detail, /User Property/)

  // the subscribers got nothing garbled: the first message they see is a normal one
  const ok = await kit.mqtt({ clientId: 'utf8-ok' })
  await ok.publishAsync('utf8/ok', 'fine', { qos: 1 })
  const p5 = await sub5.nextPacket('publish') as IPublishPacket
  assert.equal(p5.topic, 'utf8/ok')
  assert.deepEqual(got, [{ topic: 'utf8/ok', payload: 'fine' }])
})

/** Deterministic pseudo-random numbers (an LCG), so a failing run can be replayed. */
function lcg(seed: number): (n: number) => number {
  let x = seed
  return (n) => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return Math.floor((x / 0x80000000) * n)
  }
}

test('fuzz: thousands of valid, mutated and spliced packets from raw clients; the broker stays up and serves MQTT.js', async (t) => {
  // errors the core throws are caught by the adapter (which closes that connection) or, in timers, are fatal:
  // both are logged at level error, and none may happen
  const errorLogs: string[] = []
  const server = await startServer({
    settings: { maxPacketSize: 4096, connectTimeoutMs: 1000 },
    logger: { level: 'error', stream: { write: (line: string) => errorLogs.push(line) } },
  })
  t.after(() => server.close())
  const broker = server.app.broker
  const r = lcg(Number(process.env.FUZZ_SEED ?? 20251125))
  const pick = <T>(a: readonly T[]): T => a[r(a.length)]
  const names = ['f/a', 'f/a/b', '$SYS/f', 'ü/\uFFFD', 'f', 'f/a/b/c', 'g/b']
  const filters = ['f/a', 'f/+', 'f/#', '#', '+/b', '$share/g/f/#', '$share/h/#', 'ü/+', '$SYS/#']
  const invalid = ['', 'f/#', 'f\u0000', '$share//f', 'a/#/b']
  const topicName = () => (r(30) === 0 ? pick(invalid) : pick(names))
  const filter = () => (r(30) === 0 ? pick(invalid) : pick(filters))
  const someProps = (): Record<string, unknown> => {
    const p: Record<string, unknown> = {}
    if (r(4) === 0) p.messageExpiryInterval = r(3)
    if (r(4) === 0) p.topicAlias = r(30) === 0 ? pick([0, 65]) : 1 + r(8)
    if (r(4) === 0) p.contentType = 'text/plain'
    if (r(5) === 0) p.correlationData = Buffer.from('cd')
    if (r(2) === 0) p.userProperties = r(2) === 0 ? { k: 'v' } : { k: 'v', z: ['1', '2'] }
    return p
  }
  const validPacket = (v: number): Record<string, unknown> => {
    const id = 1 + r(4)
    switch (r(40) === 0 ? pick(['connect', 'disconnect']) : pick(['publish', 'publish', 'publish', 'subscribe', 'unsubscribe', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'pingreq'])) {
      case 'publish': {
        const qos = r(3)
        return { cmd: 'publish', topic: topicName(), payload: Buffer.alloc(r(40), 0x41), qos, retain: r(3) === 0,
          dup: qos > 0 && r(5) === 0, messageId: qos > 0 ? id : undefined, properties: v === 5 ? someProps() : undefined }
      }
      case 'subscribe':
        return { cmd: 'subscribe', messageId: id, properties: v === 5 && r(3) === 0 ? { subscriptionIdentifier: 1 + r(5) } : undefined,
          subscriptions: Array.from({ length: 1 + r(3) }, () => ({ topic: filter(), qos: r(3), nl: r(4) === 0, rap: r(2) === 0, rh: r(3) })) }
      case 'unsubscribe':
        return { cmd: 'unsubscribe', messageId: id, unsubscriptions: [filter()] }
      case 'connect':
        return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: true, keepalive: 0, clientId: 'again' }
      case 'disconnect':
        return { cmd: 'disconnect', reasonCode: v === 5 ? pick([0, 4]) : undefined }
      case 'pingreq':
        return { cmd: 'pingreq' }
      default:
        return { cmd: pick(['puback', 'pubrec', 'pubrel', 'pubcomp']), messageId: id }
    }
  }
  const mutated = (b: Buffer): Buffer => {
    // mostly valid, so that a connection lives long enough to reach deeper states
    const kind = r(60)
    if (kind > 4) return b
    if (kind === 4 && b.length > 6) {
      // a 16-bit length (of a string, a property, a topic) claiming more than there is
      const out = Buffer.from(b)
      out.writeUInt16BE(0xffff, 2 + r(out.length - 3))
      return out
    }
    if (kind === 1 && b.length > 4) {
      // a slice repeated in place (often a property), the length byte patched to still cover it
      const at = 2 + r(b.length - 2)
      const len = Math.min(1 + r(8), b.length - at)
      const out = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)])
      if (out[1] < 0x80) out[1] = Math.min(0x7f, out[1] + len)
      return out
    }
    const out = Buffer.from(b)
    for (let i = 0; i <= r(3); i++) {
      const at = r(out.length)
      out[at] = r(2) === 0 ? r(256) : out[at] ^ (1 << r(8))
    }
    return out
  }

  // bystanders subscribed to everything: every routed message is encoded for MQTT 3.1.1 and 5, and they must
  // stay connected (MQTT.js drops the connection on a packet it cannot parse)
  const bystanders = await Promise.all([4, 5].map((v) => connectMqtt(server.wsUrl, { clientId: `bystander-${v}`, protocolVersion: v as 4 | 5 })))
  t.after(() => bystanders.forEach((c) => c.end(true)))
  await Promise.all(bystanders.map((c) => c.subscribeAsync('#', { qos: 1 })))

  const PACKETS = 4000
  let sent = 0
  let connections = 0
  while (sent < PACKETS) {
    const v = pick([4, 5])
    const raw = await RawClient.open(server.wsUrl, { protocolVersion: v })
    connections++
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: r(2) === 0, keepalive: 0, clientId: `fuzz-${r(6)}`,
      properties: v === 5 ? { sessionExpiryInterval: r(3), receiveMaximum: 1 + r(3) } : undefined } as Packet, v)
    for (let i = 0; i < 40 && raw.isOpen; i++, sent++) {
      let bytes: Buffer
      try {
        bytes = RawClient.encode(validPacket(v) as unknown as Packet, v)
      } catch {
        continue // mqtt-packet refused to encode this combination
      }
      raw.sendBytes(mutated(bytes))
    }
    // leave some open, close others abruptly
    if (r(2) === 0) raw.close()
    else t.after(() => raw.close())
  }
  assert.ok(connections > 50, `${connections} connections`)

  // a normal client still gets its own messages round trip, at every QoS
  const js = await connectMqtt(server.wsUrl, { clientId: 'after-fuzz', protocolVersion: 5 })
  t.after(() => js.end(true))
  await js.subscribeAsync('checked/#', { qos: 2 })
  for (const qos of [0, 1, 2] as const) {
    const got = new Promise<string>((resolve) => js.once('message', (_topic, payload) => resolve(payload.toString())))
    await js.publishAsync(`checked/${qos}`, `qos ${qos}`, { qos })
    assert.equal(await got, `qos ${qos}`)
  }
  for (const c of bystanders) assert.ok(c.connected, `${c.options.clientId} still connected`)
  assert.deepEqual(errorLogs, [])
})

test('a throw while a timer routes a Will (delayed, or after a keepalive timeout) is logged, not fatal', async () => {
  // a Router is a documented extension point (e.g. a clustered one); here it fails on every match
  class FailingRouter extends MemoryRouter {
    override match(): never {
      throw new Error('router unavailable')
    }
  }
  const errors: string[] = []
  const noop = () => {}
  const logger: Logger = { debug: noop, info: noop, warn: noop, error: (_o, msg) => errors.push(msg ?? '') }
  const broker = new Broker({ settings: { version: 1, values: { ...DEFAULT_SETTINGS } }, logger, router: new FailingRouter() })
  const transport = (): Transport => ({ write: () => true, end: noop, destroy: noop, pause: noop, resume: noop })
  const meta = { transport: 'ws' as const, remoteAddress: null, remotePort: null, userAgent: null, origin: null, subprotocol: null, openedAt: Date.now() }
  const will = { topic: 'will/t', payload: Buffer.from('x'), qos: 0, retain: false }

  // a Will Delay of 1 s on a session that outlives its connection
  const delayed = broker.handleConnection(transport(), meta)
  delayed.push(RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0,
    clientId: 'delayed', properties: { sessionExpiryInterval: 10 }, will: { ...will, properties: { willDelayInterval: 1 } } } as Packet, 5))
  delayed.closed()
  // keepalive 1 s: dropped after 1.5 s, its Will published from the deadline's timer
  const silent = broker.handleConnection(transport(), meta)
  silent.push(RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 1, clientId: 'silent', will } as Packet))
  assert.equal(broker.stats.clientsConnected, 1)

  const deadline = Date.now() + 3000
  while (errors.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  assert.equal(errors.length, 2, errors.join('; '))
  assert.equal(broker.stats.clientsConnected, 0)
  await broker.close()
})

test('edge inputs from the brief: each gets its answer or closes only its own connection', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const watcher = await connectMqtt(server.wsUrl, { clientId: 'edge-watch' })
  t.after(() => watcher.end(true))
  const seen: string[] = []
  watcher.on('message', (topic) => seen.push(topic))
  await watcher.subscribeAsync('edge/#')

  const open = async (v: 4 | 5, clientId: string) => {
    const raw = await RawClient.open(server.wsUrl, { protocolVersion: v })
    t.after(() => raw.close())
    const connack = await raw.connect({ clientId }, v) as IConnackPacket
    assert.equal(v === 5 ? connack.reasonCode : connack.returnCode, 0)
    return raw
  }
  const refused = async (raw: RawClient, clientId: string, bytes: Buffer, detail: RegExp) => {
    const failure = waitForFailure(server, (e) => e.clientId === clientId)
    raw.sendBytes(bytes)
    const e = await failure
    assert.equal(e.reason, 'protocol_error', e.detail)
    assert.match(e.detail, detail)
    await raw.closed()
  }

  for (const v of [4, 5] as const) {
    const props = v === 5 ? [0] : []
    await refused(await open(v, `edge-sub-${v}`), `edge-sub-${v}`, packet(0x82, Buffer.from([0, 1, ...props])), /SUBSCRIBE without any topic filter/)
    await refused(await open(v, `edge-unsub-${v}`), `edge-unsub-${v}`, packet(0xa2, Buffer.from([0, 1, ...props])), /UNSUBSCRIBE without any topic filter/)

    // acknowledgements for ids never used: PUBACK / PUBCOMP ignored, PUBREC and PUBREL answered, connection kept
    const acks = await open(v, `edge-acks-${v}`)
    for (const cmd of ['puback', 'pubcomp'] as const) acks.send({ cmd, messageId: 4242 } as Packet, v)
    acks.send({ cmd: 'pubrec', messageId: 4243 } as Packet, v)
    acks.send({ cmd: 'pubrel', messageId: 4244 } as Packet, v)
    const rel = await acks.nextPacket('pubrel') as Packet & { messageId: number; reasonCode?: number }
    const comp = await acks.nextPacket('pubcomp') as Packet & { messageId: number; reasonCode?: number }
    assert.deepEqual([rel.messageId, comp.messageId], [4243, 4244])
    if (v === 5) assert.deepEqual([rel.reasonCode, comp.reasonCode], [0x92, 0x92]) // Packet Identifier not found
    acks.send({ cmd: 'pingreq' } as Packet, v)
    await acks.nextPacket('pingresp')

    // packets after DISCONNECT in the same frame are not acted on
    const after = await open(v, `edge-after-${v}`)
    after.sendBytes(Buffer.concat([
      RawClient.encode({ cmd: 'disconnect' } as Packet, v),
      RawClient.encode({ cmd: 'publish', topic: `edge/after-${v}`, payload: Buffer.from('late'), qos: 0, retain: true, dup: false } as Packet, v),
    ]))
    await after.closed()

    // a Will with QoS 3, and one with a wildcard topic
    const willConnect = RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: true, keepalive: 0,
      clientId: `edge-will3-${v}`, will: { topic: 'edge/w', payload: Buffer.from('w'), qos: 2, retain: false } } as Packet, v)
    willConnect[9] |= 0x18 // Will QoS bits 11
    const will3 = await RawClient.open(server.wsUrl, { protocolVersion: v })
    t.after(() => will3.close())
    await refused(will3, `edge-will3-${v}`, willConnect, /Will QoS 3/)
    const wild = await RawClient.open(server.wsUrl, { protocolVersion: v })
    t.after(() => wild.close())
    await refused(wild, `edge-wild-${v}`, RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: true,
      keepalive: 0, clientId: `edge-wild-${v}`, will: { topic: 'edge/+', payload: Buffer.from('w'), qos: 0, retain: false } } as Packet, v),
    /invalid Will topic/)
  }

  // MQTT 5 only: AUTH without an agreed method, Subscription Identifier 0, an empty client id with Clean Start 0
  await refused(await open(5, 'edge-auth'), 'edge-auth', RawClient.encode({ cmd: 'auth', reasonCode: 0x18 } as Packet, 5), /AUTH/)
  await refused(await open(5, 'edge-subid'), 'edge-subid',
    packet(0x82, Buffer.from([0, 1, 2, 0x0b, 0, ...str('edge/x'), 0])), /Subscription Identifier/)
  const anon = await RawClient.open(server.wsUrl, { protocolVersion: 5 })
  t.after(() => anon.close())
  // (mqtt-packet will not encode it: by hand, Clean Start 0 and Session Expiry 5 s)
  anon.sendBytes(packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([5, 0x00]), u16(0), propBlock([0x11, 0, 0, 0, 5]), str('')])))
  const connack = await anon.nextPacket('connack') as IConnackPacket
  assert.equal(connack.reasonCode, 0)
  assert.match(connack.properties?.assignedClientIdentifier ?? '', /^auto-/)

  // nothing above reached the watcher, which still gets a normal message; no retained message was stored
  await watcher.publishAsync('edge/ok', 'ok', { qos: 1 })
  const deadline = Date.now() + 3000
  while (!seen.includes('edge/ok') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.deepEqual(seen, ['edge/ok'])
  assert.equal(server.app.broker.stats.retainedMessages, 0)
})

// ---- 2. leaks ----

test('2000 clean clients connect, subscribe and leave every way; sessions, subscriptions and connections return to baseline', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 2000 } })
  t.after(() => server.close())
  const broker = server.app.broker
  const stay = await connectMqtt(server.wsUrl, { clientId: 'leak-stay', protocolVersion: 5 })
  t.after(() => stay.end(true))
  await stay.subscribeAsync('leak/#')
  const baseline = () => ({
    connectionsOpen: broker.stats.connectionsOpen,
    clientsConnected: broker.stats.clientsConnected,
    subscriptions: broker.stats.subscriptions,
    routerSize: broker.router.size,
    sessions: broker.sessions.size,
    live: broker.connections().length,
  })
  const before = baseline()

  const CLIENTS = 2000
  const BATCH = 100
  let accepted = 0 // the baseline below means something only if the clients really got in
  for (let start = 0; start < CLIENTS; start += BATCH) {
    await Promise.all(Array.from({ length: BATCH }, async (_, j) => {
      const i = start + j
      const v = i % 2 === 0 ? 4 : 5
      const raw = await RawClient.open(server.wsUrl, { protocolVersion: v })
      const clientId = `leak-${i % 150}` // ids repeat: some connections take over others
      const fields: Record<string, unknown> = { clientId, clean: true }
      if (i % 3 === 0) fields.will = { topic: 'leak/will', payload: Buffer.from('w'), qos: 1, retain: false }
      const connack = await raw.connect(fields, v).catch(() => null)
      if (connack === null || !raw.isOpen) return raw.close()
      if (((connack as { returnCode?: number }).returnCode ?? (connack as { reasonCode?: number }).reasonCode) === 0) accepted++
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [
        { topic: `leak/${i}/+`, qos: 1 }, { topic: 'leak/shared/#', qos: 0 }, { topic: `$share/g${i % 7}/leak/s/#`, qos: 1 },
      ] } as Packet, v)
      await raw.nextPacket('suback').catch(() => null)
      switch (i % 4) {
        case 0: // DISCONNECT
          raw.send({ cmd: 'disconnect' } as Packet, v)
          await raw.closed().catch(() => raw.close())
          break
        case 1: // UNSUBSCRIBE first, then drop the socket
          raw.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [`leak/${i}/+`, 'leak/shared/#'] } as Packet, v)
          await raw.nextPacket('unsuback').catch(() => null)
          raw.close()
          break
        case 2: // a protocol error
          raw.sendBytes(Buffer.from([0x00, 0x00]))
          await raw.closed().catch(() => raw.close())
          break
        default: // the socket just goes away
          raw.close()
      }
    }))
  }
  assert.ok(accepted > CLIENTS * 0.9, `${accepted} of ${CLIENTS} clients were accepted`)
  // connections still waiting for CONNECT, and one closed during its CONNECT
  const waiting = await RawClient.open(server.wsUrl)
  waiting.sendBytes(RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'half' } as Packet).subarray(0, 6))
  waiting.close()

  const deadline = Date.now() + 5000
  while (JSON.stringify(baseline()) !== JSON.stringify(before) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.deepEqual(baseline(), before)
  // and the broker still routes
  const got = new Promise<string>((resolve) => stay.once('message', (_t, p) => resolve(p.toString())))
  await stay.publishAsync('leak/check', 'ok', { qos: 1 })
  assert.equal(await got, 'ok')
})

test('v5 sessions with an expiry are dropped when it passes, with their subscriptions and queued messages', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const broker = server.app.broker
  const base = { sessions: broker.sessions.size, subscriptions: broker.stats.subscriptions }
  for (let i = 0; i < 20; i++) {
    const c = await connectMqtt(server.wsUrl, { clientId: `exp-${i}`, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 1 } })
    await c.subscribeAsync(`exp/${i}/#`, { qos: 1 })
    c.end(true)
  }
  const pub = await connectMqtt(server.wsUrl, { clientId: 'exp-pub', protocolVersion: 5 })
  t.after(() => pub.end(true))
  await new Promise((r) => setTimeout(r, 100))
  for (let i = 0; i < 20; i++) await pub.publishAsync(`exp/${i}/x`, 'queued', { qos: 1 })
  assert.equal(broker.sessions.size, base.sessions + 20 + 1)
  const deadline = Date.now() + 3000
  while (broker.sessions.size > base.sessions + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  assert.equal(broker.sessions.size, base.sessions + 1, 'only the publisher is left')
  assert.equal(broker.stats.subscriptions, base.subscriptions)
})
