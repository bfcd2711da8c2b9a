// The broker's core MQTT features, table-driven over protocol versions: every feature that MQTT 3.1, 3.1.1 and
// 5.0 share runs once per version here (real MQTT.js, or raw ws + mqtt-packet where the bytes matter).
// What only MQTT 5.0 has is in features-v5.test.ts; sessions, queues and take-over are in sessions.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Packet } from 'mqtt-packet'
import { PROTOCOL_VERSIONS, type ProtocolVersion,
  barrier, MessageLog, protocolOptions, RawClient, sharedBrokerKit, uniqueId, waitForBrokerEvent, waitForFailure,
  type BrokerKit,
} from '../helpers.ts'

// one server for the file: every test uses its own client ids and topics
const brokerKit = sharedBrokerKit()

type Version = ProtocolVersion
const VERSIONS = PROTOCOL_VERSIONS

const proto = protocolOptions
const uid = uniqueId

/** The CONNACK's result code whatever the version: v3 returnCode, v5 reasonCode. */
const connackCode = (p: Packet) => (p as { returnCode?: number; reasonCode?: number }).returnCode ??
  (p as { reasonCode?: number }).reasonCode

/** kit.watch with QoS-only filters in one protocol version. */
const pubSub = (kit: BrokerKit, pv: Version, filters: Record<string, 0 | 1 | 2>) =>
  kit.watch(Object.fromEntries(Object.entries(filters).map(([f, qos]) => [f, { qos }])), proto(pv))

// [filter, topic, delivered]
const WILDCARD_CASES: [string, string, boolean][] = [
  ['a/+/c', 'a/b/c', true],
  ['a/+/c', 'a/b/d/c', false],
  ['a/+', 'a/', true], // an empty level is a level
  ['+/+', '/x', true],
  ['+', 'a', true],
  ['+', 'a/b', false],
  ['sport/+', 'sport', false],
  ['a/#', 'a', true], // '#' also matches the parent level [MQTT-4.7.1-2]
  ['a/+/#', 'a/b', true],
  ['a/#', 'a/b/c', true],
  ['a/#', 'ab/c', false],
  ['#', 'x/y/z', true],
  ['#', '/', true],
  ['A/b', 'a/b', false], // case-sensitive
  ['a/b', 'a/b/', false],
  ['a/b/', 'a/b', false],
  // [MQTT-4.7.2-1] wildcards at the first level never match topics starting with '$'
  ['#', '$dev/x', false],
  ['+/x', '$dev/x', false],
  ['+/#', '$dev/x', false],
  ['$dev/#', '$dev/x', true],
  ['$dev/+', '$dev/x', true],
  ['$dev/x', '$dev/x', true],
  ['+/x', '$app/x', false],
]

for (const { name, pv } of VERSIONS) {
  test(`${name}: CONNECT is answered by a successful CONNACK and the client is listed`, async (t) => {
    const kit = await brokerKit(t)
    const raw = await kit.raw({ protocolVersion: pv })
    const clientId = uid('c')
    const connack = await raw.connect({ clientId, keepalive: 30 }, pv)
    assert.equal(connack.cmd, 'connack')
    assert.equal(connackCode(connack), 0)
    assert.equal((connack as { sessionPresent: boolean }).sessionPresent, false)
    const live = kit.server.app.broker.connections().find((c) => c.clientId === clientId)
    assert.ok(live, 'the connection is listed')
    assert.equal(live.protocolVersion, pv)
    assert.equal(live.requestedKeepaliveSec, 30)
  })

  test(`${name}: PUBLISH at every QoS reaches subscribers at min(publish QoS, subscription QoS)`, async (t) => {
    const kit = await brokerKit(t)
    const topic = uid('q/')
    const subs = await Promise.all(([0, 1, 2] as const).map(async (subQos) => {
      const c = await kit.mqtt(proto(pv))
      const log = new MessageLog(c)
      await c.subscribeAsync(topic, { qos: subQos })
      return { subQos, log }
    }))
    const pub = await kit.mqtt(proto(pv))
    for (const pubQos of [0, 1, 2] as const) {
      // publishAsync resolves after the whole flow: PUBACK for QoS 1, PUBREC/PUBREL/PUBCOMP for QoS 2
      await pub.publishAsync(topic, `qos${pubQos}`, { qos: pubQos })
    }
    for (const { subQos, log } of subs) {
      const got = await log.waitForCount(topic, 3)
      assert.deepEqual(
        got.map((m) => [m.payload.toString(), m.packet.qos]),
        [0, 1, 2].map((pubQos) => [`qos${pubQos}`, Math.min(pubQos, subQos)]),
        `subscriber at QoS ${subQos}`,
      )
    }
  })

  test(`${name}: QoS 1 and QoS 2 acknowledgement flows, byte level, both directions`, async (t) => {
    const kit = await brokerKit(t)
    const topic = uid('flow/')
    const sub = await kit.raw({ protocolVersion: pv })
    await sub.connect({ clientId: uid('s') }, pv)
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 2 }] }, pv)
    const suback = await sub.nextPacket('suback')
    assert.equal(suback.messageId, 1)
    assert.deepEqual((suback as { granted: number[] }).granted, [2])

    const pub = await kit.raw({ protocolVersion: pv })
    await pub.connect({ clientId: uid('p') }, pv)

    // client -> server, QoS 1: PUBLISH, PUBACK (the DUP flag the client sets is not passed on [MQTT-3.3.1-3])
    pub.send({ cmd: 'publish', topic, payload: Buffer.from('one'), qos: 1, messageId: 10, dup: true }, pv)
    const puback = await pub.nextPacket('puback')
    assert.equal(puback.messageId, 10)
    // server -> client, QoS 1 (subscription QoS 2, message QoS 1)
    const out1 = await sub.nextPacket('publish')
    assert.equal((out1 as { qos: number }).qos, 1)
    assert.equal((out1 as { payload: Buffer }).payload.toString(), 'one')
    assert.equal((out1 as { dup: boolean }).dup, false)
    assert.ok(typeof out1.messageId === 'number' && out1.messageId > 0)
    sub.send({ cmd: 'puback', messageId: out1.messageId }, pv)

    // client -> server, QoS 2: PUBLISH, PUBREC, PUBREL, PUBCOMP
    pub.send({ cmd: 'publish', topic, payload: Buffer.from('two'), qos: 2, messageId: 11 }, pv)
    const pubrec = await pub.nextPacket('pubrec')
    assert.equal(pubrec.messageId, 11)
    pub.send({ cmd: 'pubrel', messageId: 11 }, pv)
    const pubcomp = await pub.nextPacket('pubcomp')
    assert.equal(pubcomp.messageId, 11)

    // server -> client, QoS 2: PUBLISH, PUBREC, PUBREL, PUBCOMP
    const out2 = await sub.nextPacket('publish')
    assert.equal((out2 as { qos: number }).qos, 2)
    assert.equal((out2 as { payload: Buffer }).payload.toString(), 'two')
    sub.send({ cmd: 'pubrec', messageId: out2.messageId }, pv)
    const pubrel = await sub.nextPacket('pubrel')
    assert.equal(pubrel.messageId, out2.messageId)
    sub.send({ cmd: 'pubcomp', messageId: out2.messageId }, pv)

    // the same QoS 2 packet id, reused after PUBCOMP, is a new message: delivered again
    pub.send({ cmd: 'publish', topic, payload: Buffer.from('three'), qos: 2, messageId: 11 }, pv)
    assert.equal((await pub.nextPacket('pubrec')).messageId, 11)
    pub.send({ cmd: 'pubrel', messageId: 11 }, pv)
    assert.equal((await pub.nextPacket('pubcomp')).messageId, 11)
    const out3 = await sub.nextPacket('publish')
    assert.equal((out3 as { payload: Buffer }).payload.toString(), 'three')
    assert.ok(sub.isOpen && pub.isOpen)
  })

  test(`${name}: a QoS 2 PUBLISH resent before PUBREL is delivered once [MQTT-4.3.3-2]`, async (t) => {
    const kit = await brokerKit(t)
    const topic = uid('dup2/')
    const { log, sync } = await pubSub(kit, pv, { [topic]: 2 })
    const raw = await kit.raw({ protocolVersion: pv })
    await raw.connect({ clientId: uid('p') }, pv)
    const publish = { cmd: 'publish', topic, payload: Buffer.from('once'), qos: 2, messageId: 42 } as const
    raw.send(publish, pv)
    assert.equal((await raw.nextPacket('pubrec')).messageId, 42)
    raw.send({ ...publish, dup: true }, pv)
    assert.equal((await raw.nextPacket('pubrec')).messageId, 42)
    raw.send({ cmd: 'pubrel', messageId: 42 }, pv)
    assert.equal((await raw.nextPacket('pubcomp')).messageId, 42)
    await sync()
    assert.equal(log.on(topic).length, 1)
  })

  test(`${name}: topic filters with + and #, and the $ rule, for live and retained messages`, async (t) => {
    const kit = await brokerKit(t)
    const pub = await kit.mqtt(proto(pv))
    for (const [filter, topic, delivered] of WILDCARD_CASES) {
      await t.test(`${filter} ${delivered ? 'matches' : 'does not match'} ${topic}`, async () => {
        const retained = uid('r')
        const live = uid('l')
        // the router (live) and the retained store (on subscribe) match filters separately: check both
        await pub.publishAsync(topic, retained, { qos: 1, retain: true })
        const sub = await kit.mqtt(proto(pv))
        try {
          const log = new MessageLog(sub)
          const bar = uid('bar/')
          await sub.subscribeAsync({ [filter]: { qos: 0 }, [bar]: { qos: 1 } })
          await pub.publishAsync(topic, live, { qos: 1 })
          await barrier(pub, log, bar)
          const got = log.messages
            .filter((m) => [retained, live].includes(m.payload.toString()))
            .map((m) => [m.topic, m.payload.toString(), m.packet.retain])
          assert.deepEqual(got, delivered ? [[topic, retained, true], [topic, live, false]] : [])
        } finally {
          sub.end(true)
          await pub.publishAsync(topic, '', { qos: 1, retain: true }) // clear it for the next case
        }
      })
    }
  })

  test(`${name}: overlapping subscriptions deliver at the highest QoS [MQTT-3.3.5-1]`, async (t) => {
    const kit = await brokerKit(t)
    const root = uid('ov')
    const { log, pub } = await pubSub(kit, pv, { [`${root}/#`]: 0, [`${root}/+`]: 1 })
    await pub.publishAsync(`${root}/x`, 'both', { qos: 1 })
    const m = await log.waitFor((m) => m.topic === `${root}/x` && m.packet.qos === 1)
    assert.equal(m.payload.toString(), 'both')
  })

  test(`${name}: SUBSCRIBE to an existing filter replaces it: its new QoS, one copy [MQTT-3.8.4-3]`, async (t) => {
    const kit = await brokerKit(t)
    const topic = uid('rep/')
    const { sub, log, pub, sync } = await pubSub(kit, pv, { [topic]: 0 })
    await sub.subscribeAsync(topic, { qos: 2 })
    await pub.publishAsync(topic, 'once', { qos: 2 })
    await sync()
    assert.deepEqual(log.on(topic).map((m) => [m.payload.toString(), m.packet.qos]), [['once', 2]])
  })

  test(`${name}: UNSUBSCRIBE is acknowledged and stops delivery`, async (t) => {
    const kit = await brokerKit(t)
    const root = uid('u')
    const { sub, log, pub, sync } = await pubSub(kit, pv, { [`${root}/#`]: 1 })
    await pub.publishAsync(`${root}/1`, 'before', { qos: 1 })
    await log.waitFor((m) => m.topic === `${root}/1`)
    const unsuback = await sub.unsubscribeAsync(`${root}/#`)
    assert.equal(unsuback?.cmd, 'unsuback')
    await pub.publishAsync(`${root}/1`, 'after', { qos: 1 })
    await sync()
    assert.deepEqual(log.on(`${root}/1`).map((m) => m.payload.toString()), ['before'])
  })

  test(`${name}: SUBACK grants the requested QoS per filter, in order`, async (t) => {
    const kit = await brokerKit(t)
    const raw = await kit.raw({ protocolVersion: pv })
    await raw.connect({ clientId: uid('s') }, pv)
    raw.send({
      cmd: 'subscribe',
      messageId: 7,
      subscriptions: [{ topic: 'g/0', qos: 0 }, { topic: 'g/2', qos: 2 }, { topic: 'g/+/1', qos: 1 }],
    }, pv)
    const suback = await raw.nextPacket('suback')
    assert.equal(suback.messageId, 7)
    assert.deepEqual((suback as { granted: number[] }).granted, [0, 2, 1])
  })

  test(`${name}: retained messages are set, replaced, cleared by an empty payload, and sent on subscribe`, async (t) => {
    const kit = await brokerKit(t)
    const root = uid('ret')
    const pub = await kit.mqtt(proto(pv))
    // an existing subscriber sees live messages with RETAIN 0 [MQTT-3.3.1-9] (v5: Retain As Published is 0)
    const live = await pubSub(kit, pv, { [`${root}/#`]: 1 })

    /** What a new subscriber to `${root}/#` receives as retained messages, in topic order. */
    const retainedNow = async () => {
      const s = await pubSub(kit, pv, { [`${root}/#`]: 1 })
      await s.sync()
      const got = s.log.messages.filter((m) => m.topic.startsWith(`${root}/`))
      for (const m of got) assert.equal(m.packet.retain, true, 'sent on subscribe with RETAIN 1')
      s.sub.end(true)
      return got.map((m) => `${m.topic}=${m.payload.toString()}`).sort()
    }

    await pub.publishAsync(`${root}/a`, 'v1', { qos: 1, retain: true })
    await pub.publishAsync(`${root}/b`, 'b1', { qos: 1, retain: true })
    assert.deepEqual(await retainedNow(), [`${root}/a=v1`, `${root}/b=b1`])

    await pub.publishAsync(`${root}/a`, 'v2', { qos: 1, retain: true })
    assert.deepEqual(await retainedNow(), [`${root}/a=v2`, `${root}/b=b1`], 'replaced')

    await pub.publishAsync(`${root}/a`, '', { qos: 1, retain: true })
    assert.deepEqual(await retainedNow(), [`${root}/b=b1`], 'cleared by an empty payload [MQTT-3.3.1-10]')

    // a non-retained publish leaves the retained message alone
    await pub.publishAsync(`${root}/b`, 'not-kept', { qos: 1, retain: false })
    assert.deepEqual(await retainedNow(), [`${root}/b=b1`])

    await live.sync()
    const seen = live.log.messages.filter((m) => m.topic.startsWith(`${root}/`))
    assert.deepEqual(
      seen.map((m) => [m.topic, m.payload.toString(), m.packet.retain]),
      [
        [`${root}/a`, 'v1', false],
        [`${root}/b`, 'b1', false],
        [`${root}/a`, 'v2', false],
        [`${root}/a`, '', false], // the clearing publish is forwarded as normal
        [`${root}/b`, 'not-kept', false],
      ],
    )
  })

  test(`${name}: a retained message is sent at min(its QoS, the subscription QoS)`, async (t) => {
    const kit = await brokerKit(t)
    const pub = await kit.mqtt(proto(pv))
    const topic = uid('rq/')
    await pub.publishAsync(topic, 'r', { qos: 2, retain: true })
    for (const subQos of [0, 1, 2] as const) {
      const sub = await kit.mqtt(proto(pv))
      const log = new MessageLog(sub)
      await sub.subscribeAsync(topic, { qos: subQos })
      const m = await log.waitFor((m) => m.topic === topic)
      assert.equal(m.packet.qos, subQos)
      assert.equal(m.packet.retain, true)
    }
  })

  test(`${name}: re-subscribing to the same filter re-sends retained messages [MQTT-3.8.4-3]`, async (t) => {
    const kit = await brokerKit(t)
    const pub = await kit.mqtt(proto(pv))
    const root = uid('rs')
    await pub.publishAsync(`${root}/x`, 'r', { qos: 1, retain: true })
    const { sub, log, sync } = await pubSub(kit, pv, { [`${root}/#`]: 1 })
    await log.waitForCount(`${root}/x`, 1)
    await sub.subscribeAsync(`${root}/#`, { qos: 1 })
    await log.waitForCount(`${root}/x`, 2)
    await sync()
    assert.equal(log.on(`${root}/x`).length, 2)
  })

  test(`${name}: the Will is published on abnormal close, with its QoS and RETAIN`, async (t) => {
    const kit = await brokerKit(t)
    const topic = uid('will/')
    const watcher = await pubSub(kit, pv, { [topic]: 2 })
    const raw = await kit.raw({ protocolVersion: pv })
    const clientId = uid('w')
    await raw.connect({ clientId, will: { topic, payload: Buffer.from('gone'), qos: 1, retain: true } }, pv)
    const lost = waitForFailure(kit.server, (e) => e.clientId === clientId)
    raw.close() // socket dropped without DISCONNECT
    const failure = await lost
    assert.equal(failure.reason, 'connection_lost')
    const will = await watcher.log.waitFor((m) => m.topic === topic)
    assert.equal(will.payload.toString(), 'gone')
    assert.equal(will.packet.qos, 1)
    // retained: a later subscriber gets it too
    const late = await kit.mqtt(proto(pv))
    const lateLog = new MessageLog(late)
    await late.subscribeAsync(topic, { qos: 1 })
    const kept = await lateLog.waitFor((m) => m.topic === topic)
    assert.equal(kept.payload.toString(), 'gone')
    assert.equal(kept.packet.retain, true)
  })

  test(`${name}: the Will is not published after a clean DISCONNECT [MQTT-3.1.2-10]`, async (t) => {
    const kit = await brokerKit(t)
    const topic = uid('will/')
    const watcher = await pubSub(kit, pv, { [topic]: 1 })
    const clientId = uid('w')
    const client = await kit.mqtt({ ...proto(pv), clientId, will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } })
    const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === clientId)
    await client.endAsync()
    assert.equal((await gone).how, 'disconnect')
    await watcher.sync()
    assert.equal(watcher.log.on(topic).length, 0)
  })

  test(`${name}: the Will is published when the server closes the connection for a protocol error`, async (t) => {
    const kit = await brokerKit(t)
    const topic = uid('will/')
    const watcher = await pubSub(kit, pv, { [topic]: 1 })
    const raw = await kit.raw({ protocolVersion: pv })
    await raw.connect({ clientId: uid('w'), will: { topic, payload: Buffer.from('broken'), qos: 0, retain: false } }, pv)
    raw.sendBytes(Buffer.from([0x00, 0x00])) // packet type 0 is reserved: malformed
    await raw.closed()
    const will = await watcher.log.waitFor((m) => m.topic === topic)
    assert.equal(will.payload.toString(), 'broken')
  })

  test(`${name}: PINGREQ is answered by PINGRESP`, async (t) => {
    const kit = await brokerKit(t)
    const raw = await kit.raw({ protocolVersion: pv })
    await raw.connect({ clientId: uid('p'), keepalive: 10 }, pv)
    for (let i = 0; i < 3; i++) {
      raw.send({ cmd: 'pingreq' }, pv)
      assert.equal((await raw.nextPacket('pingresp')).cmd, 'pingresp')
    }
    assert.ok(raw.isOpen)
  })

  test(`${name}: DISCONNECT closes the connection and is not a failure`, async (t) => {
    const kit = await brokerKit(t)
    const raw = await kit.raw({ protocolVersion: pv })
    const clientId = uid('d')
    await raw.connect({ clientId }, pv)
    const failures: unknown[] = []
    const onFailure = (e: { clientId: string | null }) => e.clientId === clientId && failures.push(e)
    kit.server.app.broker.on('failure', onFailure)
    t.after(() => kit.server.app.broker.off('failure', onFailure))
    const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === clientId)
    raw.send({ cmd: 'disconnect' }, pv)
    await raw.closed()
    assert.equal((await gone).how, 'disconnect')
    assert.deepEqual(failures, [])
    assert.equal(kit.server.app.broker.connections().some((c) => c.clientId === clientId), false)
  })
}

// ---- CONNECT refusals (table: one line per case) ----

/** A valid CONNECT whose protocol level byte is replaced (mqtt-packet refuses to encode unknown levels). */
function connectWithLevel(level: number): Buffer {
  const bytes = Buffer.from(RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'lv' } as Packet))
  // fixed header (2 bytes), protocol name length (2) + 'MQTT' (4), then the level
  assert.equal(bytes[8], 4)
  bytes[8] = level
  return bytes
}

/** A CONNECT with an empty client id, built by hand (mqtt-packet refuses to encode these). */
function connectWithEmptyId(pv: 3 | 4, clean: boolean): Buffer {
  const name = pv === 3 ? 'MQIsdp' : 'MQTT'
  const variable = Buffer.concat([
    Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([pv, clean ? 0x02 : 0x00, 0, 0]),
  ])
  const payload = Buffer.from([0, 0]) // client id: zero-length string
  return Buffer.concat([Buffer.from([0x10, variable.length + payload.length]), variable, payload])
}

const REFUSALS: { name: string; pv: Version; send: (raw: RawClient) => void; codes: number[] }[] = [
  {
    // [MQTT-3.1.2-2] unsupported protocol level: 0x01 (a v5 server may answer 0x84 instead)
    name: 'protocol level 6 is refused as unacceptable protocol version',
    pv: 4,
    send: (raw) => raw.sendBytes(connectWithLevel(6)),
    codes: [1, 0x84],
  },
  {
    // [MQTT-3.1.3-8] empty client id with CleanSession 0: identifier rejected
    name: 'MQTT 3.1.1: an empty client id with clean session 0 is refused',
    pv: 4,
    send: (raw) => raw.sendBytes(connectWithEmptyId(4, false)),
    codes: [2],
  },
  {
    // MQTT 3.1: the client identifier is 1 to 23 characters
    name: 'MQTT 3.1: an empty client id is refused',
    pv: 3,
    send: (raw) => raw.sendBytes(connectWithEmptyId(3, true)),
    codes: [2],
  },
]

for (const { name, pv, send, codes } of REFUSALS) {
  test(`CONNECT refused: ${name}; the connection is closed and logged as connect_rejected`, async (t) => {
    const kit = await brokerKit(t)
    const raw = await kit.raw({ protocolVersion: pv })
    const rejected = waitForFailure(kit.server, (e) => e.reason === 'connect_rejected')
    send(raw)
    const connack = await raw.nextPacket('connack')
    assert.ok(codes.includes(connackCode(connack) ?? -1), `CONNACK code ${connackCode(connack)} in ${codes}`)
    await raw.closed()
    const failure = await rejected
    assert.equal(failure.phase, 'awaiting_connect')
    assert.ok(failure.detail.length > 0 && failure.hint.length > 0)
  })
}

test('MQTT 3.1.1: an empty client id with clean session 1 is accepted under a server-assigned id', async (t) => {
  const kit = await brokerKit(t)
  const raw = await kit.raw()
  const connected = waitForBrokerEvent(kit.server, 'connected')
  const connack = await raw.connect({ clientId: '', clean: true }, 4)
  assert.equal(connackCode(connack), 0)
  const { clientId } = await connected
  assert.ok(clientId.length > 0, 'the broker gave the session an id')
  // it works as a client: subscribe and receive
  const topic = uid('anon/')
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] })
  await raw.nextPacket('suback')
  const pub = await kit.mqtt()
  await pub.publishAsync(topic, 'hi', { qos: 1 })
  const p = await raw.nextPacket('publish')
  assert.equal((p as { payload: Buffer }).payload.toString(), 'hi')
})

test('MQTT 3.1.1 and 5.0 clients exchange messages with each other', async (t) => {
  const kit = await brokerKit(t)
  const v3 = await kit.mqtt({ protocolVersion: 3, protocolId: 'MQIsdp' })
  const v4 = await kit.mqtt({ protocolVersion: 4 })
  const v5 = await kit.mqtt({ protocolVersion: 5 })
  const logs = [v3, v4, v5].map((c) => new MessageLog(c))
  await Promise.all([v3, v4, v5].map((c) => c.subscribeAsync('mix/#', { qos: 1 })))
  await v3.publishAsync('mix/3', 'from3', { qos: 1 })
  await v4.publishAsync('mix/4', 'from4', { qos: 2 })
  await v5.publishAsync('mix/5', 'from5', { qos: 1 })
  for (const log of logs) {
    for (const n of [3, 4, 5]) {
      const m = await log.waitFor((m) => m.topic === `mix/${n}`)
      assert.equal(m.payload.toString(), `from${n}`)
    }
  }
})
