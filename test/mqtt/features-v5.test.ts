// What only MQTT 5.0 has: CONNACK properties, reason codes and reason strings, Will Delay, topic aliases,
// message expiry, properties passed through, subscription options, shared subscriptions, Receive Maximum and
// Maximum Packet Size both ways. Real MQTT.js where the client's view is enough, raw ws + mqtt-packet for bytes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IClientOptions } from 'mqtt'
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, Packet } from 'mqtt-packet'
import {
  brokerKit as ownBrokerKit, delay, MessageLog, RawClient, sharedBrokerKit, uniqueId, waitForBrokerEvent, waitForFailure,
  type BrokerKit,
} from '../helpers.ts'
import { RECEIVE_MAXIMUM, TOPIC_ALIAS_MAXIMUM } from '../../src/mqtt/limits.ts'

const V5: IClientOptions = { protocolVersion: 5 }
// one server for the tests on default settings (each uses its own client ids and topics); others start their own
const brokerKit = sharedBrokerKit()
const asPublish = (p: Packet) => p as IPublishPacket
const payloadOf = (p: Packet) => (p as IPublishPacket).payload.toString()

/** A raw MQTT 5 client, connected with `fields`; returns it and its CONNACK. */
async function raw5(kit: BrokerKit, fields: Record<string, unknown> = {}) {
  const raw = await kit.raw({ protocolVersion: 5 })
  const connack = (await raw.connect({ clientId: uniqueId('r'), ...fields }, 5)) as IConnackPacket
  return { raw, connack }
}

/** Subscribes a raw client and waits for the SUBACK. */
async function rawSubscribe(raw: RawClient, subscriptions: { topic: string; qos: 0 | 1 | 2; nl?: boolean; rap?: boolean; rh?: number }[], properties?: object) {
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions, ...(properties ? { properties } : {}) } as Packet, 5)
  return (await raw.nextPacket('suback')) as Packet & { granted: number[] }
}

// ---- CONNECT / CONNACK ----

test('MQTT 5.0: CONNACK tells the broker limits: Receive Maximum, Maximum Packet Size, Topic Alias Maximum', async (t) => {
  const kit = await ownBrokerKit(t, { settings: { maxPacketSize: 4096 } })
  const { connack } = await raw5(kit)
  assert.equal(connack.reasonCode, 0)
  assert.equal(connack.sessionPresent, false)
  const p = connack.properties ?? {}
  assert.equal(p.maximumPacketSize, 4096, 'the maxPacketSize setting')
  assert.equal(p.receiveMaximum, RECEIVE_MAXIMUM)
  assert.equal(p.topicAliasMaximum, TOPIC_ALIAS_MAXIMUM)
  assert.notEqual(p.sharedSubscriptionAvailable, false)
  assert.notEqual(p.retainAvailable, false)
  assert.notEqual(p.wildcardSubscriptionAvailable, false)
  assert.equal(p.assignedClientIdentifier, undefined, 'the client sent an id')
})

// [name, server settings, what to do first, CONNECT fields, expected reason code]
const REFUSALS: { name: string; settings?: object; before?: (kit: BrokerKit) => Promise<unknown>; fields: Record<string, unknown>; code: number }[] = [
  {
    name: 'server full (maxConnections): 0x97 Quota exceeded',
    settings: { maxConnections: 1 },
    before: (kit) => raw5(kit),
    fields: {},
    code: 0x97,
  },
  {
    name: 'enhanced authentication asked for: 0x8C Bad authentication method',
    fields: { properties: { authenticationMethod: 'SCRAM-SHA-1' } },
    code: 0x8c,
  },
]

for (const { name, settings, before, fields, code } of REFUSALS) {
  test(`MQTT 5.0: CONNECT refused, ${name}, with a reason string`, async (t) => {
    const kit = settings ? await ownBrokerKit(t, { settings }) : await brokerKit(t)
    await before?.(kit)
    const rejected = waitForFailure(kit.server, (e) => e.reason === 'connect_rejected')
    const raw = await kit.raw({ protocolVersion: 5 })
    const connack = (await raw.connect({ clientId: uniqueId('x'), ...fields }, 5)) as IConnackPacket
    assert.equal(connack.reasonCode, code)
    assert.equal(typeof connack.properties?.reasonString, 'string')
    assert.ok(connack.properties!.reasonString!.length > 0)
    await raw.closed()
    const failure = await rejected
    assert.equal(failure.protocolVersion, 5)
  })
}

test('MQTT 3.1.1: the server-full refusal is return code 3 (server unavailable)', async (t) => {
  const kit = await ownBrokerKit(t, { settings: { maxConnections: 1 } })
  await raw5(kit)
  const raw = await kit.raw()
  const connack = await raw.connect({ clientId: uniqueId('x') }, 4)
  assert.equal((connack as { returnCode: number }).returnCode, 3)
  await raw.closed()
})

// ---- DISCONNECT reason codes ----

// client -> server: the Will is dropped only on 0x00 [MQTT-3.1.2-8] [MQTT-3.14.4-3]
const CLIENT_DISCONNECTS: [number, string, boolean][] = [
  [0x00, 'Normal disconnection', false],
  [0x04, 'Disconnect with Will Message', true],
  [0x80, 'Unspecified error', true],
]

for (const [reasonCode, label, willSent] of CLIENT_DISCONNECTS) {
  test(`MQTT 5.0: client DISCONNECT 0x${reasonCode.toString(16).padStart(2, '0')} (${label}) ${willSent ? 'publishes' : 'discards'} the Will`, async (t) => {
    const kit = await brokerKit(t)
    const topic = uniqueId('dw/')
    const w = await kit.watch({ [topic]: { qos: 1 } }, V5)
    const clientId = uniqueId('d')
    const { raw } = await raw5(kit, { clientId, will: { topic, payload: Buffer.from('will'), qos: 1, retain: false } })
    const failures: unknown[] = []
    const onFailure = (e: { clientId: string | null }) => e.clientId === clientId && failures.push(e)
    kit.server.app.broker.on('failure', onFailure)
    t.after(() => kit.server.app.broker.off('failure', onFailure))
    const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === clientId)
    raw.send({ cmd: 'disconnect', reasonCode }, 5)
    assert.equal((await gone).how, 'disconnect', 'a DISCONNECT is a normal end')
    await raw.closed()
    if (willSent) {
      const m = await w.log.waitFor((m) => m.topic === topic)
      assert.equal(m.payload.toString(), 'will')
    } else {
      await w.sync()
      assert.equal(w.log.on(topic).length, 0)
    }
    assert.deepEqual(failures, [])
  })
}

// server -> client: a broken rule closes the connection with a DISCONNECT carrying a reason code and string
const SERVER_DISCONNECTS: { name: string; code: number; reason: string; settings?: object; send: (raw: RawClient) => void }[] = [
  {
    name: 'topic alias 0',
    code: 0x94,
    reason: 'protocol_error',
    send: (r) => r.send({ cmd: 'publish', topic: 'ta/x', payload: Buffer.from('x'), qos: 0, properties: { topicAlias: 0 } } as Packet, 5),
  },
  {
    name: 'topic alias above the Topic Alias Maximum',
    code: 0x94,
    reason: 'protocol_error',
    send: (r) => r.send({ cmd: 'publish', topic: 'ta/x', payload: Buffer.from('x'), qos: 0, properties: { topicAlias: TOPIC_ALIAS_MAXIMUM + 1 } } as Packet, 5),
  },
  {
    name: 'an empty topic with a topic alias never set',
    code: 0x82,
    reason: 'protocol_error',
    send: (r) => r.send({ cmd: 'publish', topic: '', payload: Buffer.from('x'), qos: 0, properties: { topicAlias: 3 } } as Packet, 5),
  },
  {
    name: 'PUBLISH to a topic name with a wildcard',
    code: 0x90,
    reason: 'protocol_error',
    send: (r) => r.send({ cmd: 'publish', topic: 'a/+', payload: Buffer.from('x'), qos: 0 } as Packet, 5),
  },
  {
    name: 'a second CONNECT',
    code: 0x82,
    reason: 'protocol_error',
    send: (r) => r.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: 'again' } as Packet, 5),
  },
  {
    name: 'No Local on a shared subscription',
    code: 0x82,
    reason: 'protocol_error',
    send: (r) => r.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/x', qos: 0, nl: true }] } as Packet, 5),
  },
  {
    name: 'a PUBLISH carrying a Subscription Identifier',
    code: 0x82,
    reason: 'protocol_error',
    send: (r) => r.send({ cmd: 'publish', topic: 'x', payload: Buffer.from('x'), qos: 0, properties: { subscriptionIdentifier: 5 } } as Packet, 5),
  },
  {
    name: 'DISCONNECT giving a session expiry to a session opened without one',
    code: 0x82,
    reason: 'protocol_error',
    send: (r) => r.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } } as Packet, 5),
  },
  {
    name: 'a packet over maxPacketSize',
    code: 0x95,
    reason: 'packet_too_large',
    settings: { maxPacketSize: 1024 },
    send: (r) => r.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(2000, 1), qos: 0 } as Packet, 5),
  },
  {
    name: `more QoS 2 PUBLISHes awaiting PUBREL than the Receive Maximum (${RECEIVE_MAXIMUM})`,
    code: 0x93,
    reason: 'protocol_error',
    send: (r) => r.sendBytes(Buffer.concat(Array.from({ length: RECEIVE_MAXIMUM + 1 }, (_, i) =>
      RawClient.encode({ cmd: 'publish', topic: 'rm/in', payload: Buffer.from('x'), qos: 2, messageId: i + 1 } as Packet, 5)))),
  },
]

for (const { name, code, reason, settings, send } of SERVER_DISCONNECTS) {
  test(`MQTT 5.0: ${name} gets DISCONNECT 0x${code.toString(16)} with a reason string, logged as ${reason}`, async (t) => {
    const kit = settings ? await ownBrokerKit(t, { settings }) : await brokerKit(t)
    const { raw } = await raw5(kit)
    const other = await raw5(kit) // the broker keeps serving others
    const failed = waitForFailure(kit.server, (e) => e.reason === reason)
    send(raw)
    const d = (await raw.nextPacket('disconnect')) as IDisconnectPacket
    assert.equal(d.reasonCode, code)
    assert.ok((d.properties?.reasonString ?? '').length > 0, 'a reason string says why')
    await raw.closed()
    const failure = await failed
    assert.equal(failure.phase, 'connected')
    other.raw.send({ cmd: 'pingreq' }, 5)
    await other.raw.nextPacket('pingresp')
  })
}

test('MQTT 5.0: PUBREL for an unknown packet id gets PUBCOMP 0x92 and the connection stays', async (t) => {
  const kit = await brokerKit(t)
  const { raw } = await raw5(kit)
  raw.send({ cmd: 'pubrel', messageId: 77 }, 5)
  const comp = await raw.nextPacket('pubcomp')
  assert.equal(comp.messageId, 77)
  assert.equal((comp as { reasonCode?: number }).reasonCode, 0x92)
  assert.ok(raw.isOpen)
})

test('MQTT 5.0: UNSUBACK has a reason code per filter: 0x00 removed, 0x11 no subscription existed', async (t) => {
  const u = uniqueId('u')
  const kit = await brokerKit(t)
  const { raw } = await raw5(kit)
  await rawSubscribe(raw, [{ topic: `${u}us/a`, qos: 1 }])
  raw.send({ cmd: 'unsubscribe', messageId: 9, unsubscriptions: [`${u}us/a`, `${u}us/none`] }, 5)
  const unsuback = await raw.nextPacket('unsuback')
  assert.equal(unsuback.messageId, 9)
  assert.deepEqual((unsuback as { granted: number[] }).granted, [0x00, 0x11])
})

test('SUBACK refuses an invalid filter alone: MQTT 5.0 0x8F, MQTT 3.1.1 0x80; the valid ones are granted', async (t) => {
  const kit = await brokerKit(t)
  for (const [pv, failure] of [[5, 0x8f], [4, 0x80]] as const) {
    const raw = await kit.raw({ protocolVersion: pv })
    await raw.connect({ clientId: uniqueId('sf') }, pv)
    raw.send({
      cmd: 'subscribe',
      messageId: 3,
      subscriptions: [{ topic: 'ok/+', qos: 1 }, { topic: 'a/#/b', qos: 1 }, { topic: 'a+', qos: 0 }, { topic: '$share/g', qos: 0 }],
    } as Packet, pv)
    const suback = await raw.nextPacket('suback')
    assert.deepEqual((suback as { granted: number[] }).granted, [1, failure, failure, failure], `v${pv}`)
    assert.ok(raw.isOpen)
  }
})

// ---- Will Delay Interval ----

test('MQTT 5.0: a Will with a delay is published after the delay', async (t) => {
  const kit = await brokerKit(t)
  const topic = uniqueId('wd/')
  const w = await kit.watch({ [topic]: { qos: 1 } }, V5)
  const clientId = uniqueId('wd')
  const { raw } = await raw5(kit, {
    clientId,
    properties: { sessionExpiryInterval: 60 },
    will: { topic, payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
  })
  const lost = waitForFailure(kit.server, (e) => e.clientId === clientId)
  raw.close()
  await lost
  const closedAt = Date.now()
  const m = await w.log.waitFor((m) => m.topic === topic, 4000)
  const waited = Date.now() - closedAt
  assert.equal(m.payload.toString(), 'late')
  assert.ok(waited >= 900, `published ${waited} ms after the close, not before the 1 s delay`)
})

test('MQTT 5.0: a Will Delay longer than one Node timer holds (30 days) is not published after 1 ms', async (t) => {
  const kit = await brokerKit(t)
  const topic = uniqueId('wl/')
  const w = await kit.watch({ [topic]: { qos: 1 } }, V5)
  const clientId = uniqueId('wl')
  const { raw } = await raw5(kit, {
    clientId,
    properties: { sessionExpiryInterval: 0xffffffff }, // never expires: the Will waits its whole delay
    will: { topic, payload: Buffer.from('a month later'), qos: 1, retain: false, properties: { willDelayInterval: 30 * 86_400 } },
  })
  const lost = waitForFailure(kit.server, (e) => e.clientId === clientId)
  raw.close()
  await lost
  await delay(300) // setTimeout clamps a delay over 2^31-1 ms to 1 ms: a naive timer has fired by now
  await w.sync()
  assert.equal(w.log.on(topic).length, 0)
})

test('MQTT 5.0: a Will with a delay is not published when the client reconnects within it', async (t) => {
  const kit = await brokerKit(t)
  const topic = uniqueId('wr/')
  const w = await kit.watch({ [topic]: { qos: 1 } }, V5)
  const clientId = uniqueId('wr')
  const connect = {
    clientId,
    clean: false,
    properties: { sessionExpiryInterval: 60 },
    will: { topic, payload: Buffer.from('should not'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
  }
  const first = await raw5(kit, connect)
  const lost = waitForFailure(kit.server, (e) => e.clientId === clientId)
  first.raw.close()
  await lost
  await raw5(kit, { ...connect, will: undefined }) // back within the delay [MQTT-3.1.3-9]
  await delay(1300)
  await w.sync()
  assert.equal(w.log.on(topic).length, 0)
})

test('MQTT 5.0: a delayed Will is published when the session ends first (expiry shorter than the delay)', async (t) => {
  const kit = await brokerKit(t)
  const topic = uniqueId('we/')
  const w = await kit.watch({ [topic]: { qos: 1 } }, V5)
  const clientId = uniqueId('we')
  const { raw } = await raw5(kit, {
    clientId,
    properties: { sessionExpiryInterval: 1 },
    will: { topic, payload: Buffer.from('session over'), qos: 1, retain: false, properties: { willDelayInterval: 600 } },
  })
  raw.close()
  const m = await w.log.waitFor((m) => m.topic === topic, 4000)
  assert.equal(m.payload.toString(), 'session over')
})

// A connection with Clean Start 1 ends the old session, and a session's end sends its pending Will [MQTT-3.1.3-9]
for (const how of ['after the old connection dropped', 'taking over the old connection'] as const) {
  test(`MQTT 5.0: a pending delayed Will is published when Clean Start 1 ends its session (${how})`, async (t) => {
    const kit = await brokerKit(t)
    const topic = uniqueId('wc/')
    const w = await kit.watch({ [topic]: { qos: 1 } }, V5)
    const clientId = uniqueId('wc')
    const first = await raw5(kit, {
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
      will: { topic, payload: Buffer.from('session ended'), qos: 1, retain: false, properties: { willDelayInterval: 600 } },
    })
    if (how === 'after the old connection dropped') {
      const lost = waitForFailure(kit.server, (e) => e.clientId === clientId)
      first.raw.close()
      await lost
    }
    const again = await raw5(kit, { clientId, clean: true })
    assert.equal(again.connack.sessionPresent, false)
    const m = await w.log.waitFor((m) => m.topic === topic)
    assert.equal(m.payload.toString(), 'session ended')
  })
}

test('MQTT 5.0: a take-over publishes the old connection\'s Will (no delay) [MQTT-3.1.4-3]', async (t) => {
  const kit = await brokerKit(t)
  const topic = uniqueId('wt/')
  const w = await kit.watch({ [topic]: { qos: 1 } }, V5)
  const clientId = uniqueId('wt')
  const old = await raw5(kit, { clientId, will: { topic, payload: Buffer.from('replaced'), qos: 0, retain: false } })
  await raw5(kit, { clientId })
  const d = (await old.raw.nextPacket('disconnect')) as IDisconnectPacket
  assert.equal(d.reasonCode, 0x8e)
  const m = await w.log.waitFor((m) => m.topic === topic)
  assert.equal(m.payload.toString(), 'replaced')
})

// ---- topic aliases (client -> server) ----

test('MQTT 5.0: topic aliases from the client are set, used and re-mapped; subscribers get full topic names', async (t) => {
  const u = uniqueId('u')
  const kit = await brokerKit(t)
  const { raw: sub } = await raw5(kit) // Topic Alias Maximum 0: the broker must not send it aliases
  await rawSubscribe(sub, [{ topic: `${u}ta/#`, qos: 0 }])
  const { raw: pub, connack } = await raw5(kit)
  assert.ok((connack.properties?.topicAliasMaximum ?? 0) >= 2)
  const sends: [string, number, string][] = [
    [`${u}ta/one`, 1, 'a'], // set alias 1
    ['', 1, 'b'], // use it
    [`${u}ta/two`, 2, 'c'],
    [`${u}ta/three`, 1, 'd'], // re-map alias 1
    ['', 1, 'e'],
    ['', 2, 'f'],
  ]
  for (const [topic, topicAlias, payload] of sends) {
    pub.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, properties: { topicAlias } } as Packet, 5)
  }
  const got: [string, string, unknown][] = []
  for (let i = 0; i < sends.length; i++) {
    const p = asPublish(await sub.nextPacket('publish'))
    got.push([p.topic, p.payload.toString(), p.properties?.topicAlias])
  }
  assert.deepEqual(got, [
    [`${u}ta/one`, 'a', undefined],
    [`${u}ta/one`, 'b', undefined],
    [`${u}ta/two`, 'c', undefined],
    [`${u}ta/three`, 'd', undefined],
    [`${u}ta/three`, 'e', undefined],
    [`${u}ta/two`, 'f', undefined],
  ])
})

test('MQTT 5.0: MQTT.js with autoAssignTopicAlias publishes through aliases', async (t) => {
  const u = uniqueId('u')
  const kit = await brokerKit(t)
  const w = await kit.watch({ [`${u}auto/#`]: { qos: 1 } }, V5)
  const pub = await kit.mqtt({ ...V5, autoAssignTopicAlias: true })
  for (let i = 0; i < 3; i++) await pub.publishAsync(`${u}auto/alias`, `m${i}`, { qos: 1 })
  const got = await w.log.waitForCount(`${u}auto/alias`, 3)
  assert.deepEqual(got.map((m) => m.payload.toString()), ['m0', 'm1', 'm2'])
})

// ---- message expiry ----

test('MQTT 5.0: Message Expiry: expired messages are not delivered from an offline queue or as retained; the remaining interval is forwarded', async (t) => {
  const u = uniqueId('u')
  const kit = await brokerKit(t)
  const clientId = uniqueId('mx')
  const persistent = { ...V5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
  const first = await kit.mqtt(persistent)
  await first.subscribeAsync(`${u}mx/#`, { qos: 1 })
  const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === clientId)
  await first.endAsync()
  await gone

  const pub = await kit.mqtt(V5)
  const publishedAt = Date.now()
  await pub.publishAsync(`${u}mx/short`, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } })
  await pub.publishAsync(`${u}mx/long`, 'long', { qos: 1, properties: { messageExpiryInterval: 30 } })
  await pub.publishAsync(`${u}mx/none`, 'none', { qos: 1 })
  await pub.publishAsync(`${u}mxr/short`, 'short', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } })
  await pub.publishAsync(`${u}mxr/long`, 'long', { qos: 1, retain: true, properties: { messageExpiryInterval: 30 } })

  // live: the subscriber gets the interval (nearly) as sent
  const live = await kit.watch({ [`${u}mxl/#`]: { qos: 1 } }, V5)
  await live.pub.publishAsync(`${u}mxl/x`, 'live', { qos: 1, properties: { messageExpiryInterval: 30 } })
  const l = await live.log.waitFor((m) => m.topic === `${u}mxl/x`)
  assert.ok([29, 30].includes(l.packet.properties?.messageExpiryInterval ?? -1), `live: ${l.packet.properties?.messageExpiryInterval}`)

  await delay(1300 - (Date.now() - publishedAt))
  let log!: MessageLog
  await kit.mqtt(persistent, undefined, (c) => (log = new MessageLog(c)))
  const none = await log.waitFor((m) => m.topic === `${u}mx/none`)
  assert.equal(none.packet.properties?.messageExpiryInterval, undefined, 'no expiry: none forwarded')
  const long = await log.waitFor((m) => m.topic === `${u}mx/long`)
  const remaining = long.packet.properties?.messageExpiryInterval ?? -1
  // [MQTT-3.3.2-6] the received interval minus the time spent waiting in the broker
  assert.ok(remaining >= 27 && remaining <= 29, `remaining interval ${remaining} s`)
  assert.equal(log.on(`${u}mx/short`).length, 0, 'expired while queued [MQTT-3.3.2-5]')

  const r = await kit.watch({ [`${u}mxr/#`]: { qos: 1 } }, V5)
  await r.sync()
  const retained = r.log.messages.filter((m) => m.topic.startsWith(`${u}mxr/`))
  assert.deepEqual(retained.map((m) => m.topic), [`${u}mxr/long`], 'the expired retained message is gone')
  const rr = retained[0].packet.properties?.messageExpiryInterval ?? -1
  assert.ok(rr >= 27 && rr <= 29, `retained remaining interval ${rr} s`)
  assert.equal(log.on(`${u}mx/short`).length, 0)
})

// ---- properties passed through ----

const PROPS = {
  payloadFormatIndicator: true,
  contentType: 'application/json; charset=utf-8',
  responseTopic: 'reply/to/me',
  correlationData: Buffer.from([1, 2, 3, 250]),
  userProperties: { a: '1', repeated: ['x', 'y', 'z'], 'ünï': 'cödé' },
}

/** The forwarded properties of a received message, in PROPS' shape. */
const forwarded = (p: IPublishPacket) => {
  const props = p.properties ?? {}
  return {
    payloadFormatIndicator: props.payloadFormatIndicator,
    contentType: props.contentType,
    responseTopic: props.responseTopic,
    correlationData: props.correlationData,
    // the parser builds user properties on a null prototype: compare the entries
    userProperties: props.userProperties && { ...props.userProperties },
  }
}

test('MQTT 5.0: user properties, content type, payload format, response topic and correlation data pass through (live, retained, queued)', async (t) => {
  const u = uniqueId('u')
  const kit = await brokerKit(t)
  const clientId = uniqueId('pp')
  const persistent = { ...V5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
  const offline = await kit.mqtt(persistent)
  await offline.subscribeAsync(`${u}pp/queued`, { qos: 1 })
  const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === clientId)
  await offline.endAsync()
  await gone

  const w = await kit.watch({ [`${u}pp/live`]: { qos: 1 } }, V5)
  await w.pub.publishAsync(`${u}pp/live`, '{"n":1}', { qos: 1, properties: PROPS })
  await w.pub.publishAsync(`${u}pp/retained`, '{"n":2}', { qos: 1, retain: true, properties: PROPS })
  await w.pub.publishAsync(`${u}pp/queued`, '{"n":3}', { qos: 1, properties: PROPS })

  const live = await w.log.waitFor((m) => m.topic === `${u}pp/live`)
  assert.deepEqual(forwarded(live.packet), PROPS, 'live')

  const r = await kit.mqtt(V5)
  const rlog = new MessageLog(r)
  await r.subscribeAsync(`${u}pp/retained`, { qos: 1 })
  assert.deepEqual(forwarded((await rlog.waitFor((m) => m.topic === `${u}pp/retained`)).packet), PROPS, 'retained')

  let qlog!: MessageLog
  await kit.mqtt(persistent, undefined, (c) => (qlog = new MessageLog(c)))
  assert.deepEqual(forwarded((await qlog.waitFor((m) => m.topic === `${u}pp/queued`)).packet), PROPS, 'queued')
})

test('MQTT 5.0: a Will carries its properties (content type, user properties)', async (t) => {
  const kit = await brokerKit(t)
  const topic = uniqueId('wp/')
  const w = await kit.watch({ [topic]: { qos: 1 } }, V5)
  const { raw } = await raw5(kit, {
    will: {
      topic, payload: Buffer.from('{}'), qos: 1, retain: false,
      properties: { contentType: 'application/json', userProperties: { why: 'lost' }, responseTopic: 'r/t' },
    },
  })
  raw.close()
  const m = await w.log.waitFor((m) => m.topic === topic)
  assert.equal(m.packet.properties?.contentType, 'application/json')
  assert.deepEqual({ ...m.packet.properties?.userProperties }, { why: 'lost' })
  assert.equal(m.packet.properties?.responseTopic, 'r/t')
})

test('MQTT 5.0 -> MQTT 3.1.1: the message arrives without properties', async (t) => {
  const u = uniqueId('u')
  const kit = await brokerKit(t)
  const w = await kit.watch({ [`${u}x35/#`]: { qos: 1 } }, { protocolVersion: 4 })
  const pub5 = await kit.mqtt(V5)
  await pub5.publishAsync(`${u}x35/a`, 'to a 3.1.1 client', { qos: 1, properties: PROPS })
  const m = await w.log.waitFor((m) => m.topic === `${u}x35/a`)
  assert.equal(m.payload.toString(), 'to a 3.1.1 client')
  assert.equal(m.packet.properties, undefined)
})

// ---- subscription options ----

for (const nl of [true, false]) {
  test(`MQTT 5.0: No Local ${nl ? '1: a client does not get its own messages' : '0: a client gets its own messages'}`, async (t) => {
    const u = uniqueId('u')
    const kit = await brokerKit(t)
    const self = await kit.mqtt(V5)
    const log = new MessageLog(self)
    await self.subscribeAsync(`${u}nl/t`, { qos: 1, nl })
    await self.publishAsync(`${u}nl/t`, 'mine', { qos: 1 })
    const other = await kit.mqtt(V5)
    await other.publishAsync(`${u}nl/t`, 'theirs', { qos: 1 })
    await log.waitFor((m) => m.payload.toString() === 'theirs')
    assert.deepEqual(log.on(`${u}nl/t`).map((m) => m.payload.toString()), nl ? ['theirs'] : ['mine', 'theirs'])
  })
}

for (const rap of [true, false]) {
  test(`MQTT 5.0: Retain As Published ${rap ? 1 : 0}: a live retained message is forwarded with RETAIN ${rap ? 1 : 0}`, async (t) => {
    const u = uniqueId('u')
    const kit = await brokerKit(t)
    const sub = await kit.mqtt(V5)
    const log = new MessageLog(sub)
    await sub.subscribeAsync(`${u}rap/t`, { qos: 1, rap })
    const pub = await kit.mqtt(V5)
    await pub.publishAsync(`${u}rap/t`, 'kept', { qos: 1, retain: true })
    await pub.publishAsync(`${u}rap/t`, 'plain', { qos: 1, retain: false })
    const got = await log.waitForCount(`${u}rap/t`, 2)
    assert.deepEqual(got.map((m) => [m.payload.toString(), m.packet.retain]), [['kept', rap], ['plain', false]])
  })
}

// Retain Handling: [rh, retained messages sent on the first subscribe, on a re-subscribe to the same filter]
const RETAIN_HANDLING: [0 | 1 | 2, number, number][] = [
  [0, 1, 1], // at every subscribe
  [1, 1, 0], // only when the subscription is new
  [2, 0, 0], // never
]
for (const [rh, first, again] of RETAIN_HANDLING) {
  test(`MQTT 5.0: Retain Handling ${rh}: retained sent ${first} time(s) on subscribe, ${again} on re-subscribe`, async (t) => {
    const u = uniqueId('u')
    const kit = await brokerKit(t)
    const w = await kit.watch({}, V5)
    await w.pub.publishAsync(`${u}rh/t`, 'r', { qos: 1, retain: true })
    await w.sub.subscribeAsync(`${u}rh/t`, { qos: 1, rh })
    await w.sync()
    assert.equal(w.log.on(`${u}rh/t`).length, first, 'first subscribe')
    await w.sub.subscribeAsync(`${u}rh/t`, { qos: 1, rh })
    await w.sync()
    assert.equal(w.log.on(`${u}rh/t`).length, first + again, 're-subscribe')
    for (const m of w.log.on(`${u}rh/t`)) assert.equal(m.packet.retain, true)
  })
}

test('MQTT 5.0: a Subscription Identifier comes back on the messages it matched', async (t) => {
  const u = uniqueId('u')
  const kit = await brokerKit(t)
  const sub = await kit.mqtt(V5)
  const log = new MessageLog(sub)
  await sub.subscribeAsync(`${u}sid/+`, { qos: 1, properties: { subscriptionIdentifier: 42 } })
  const pub = await kit.mqtt(V5)
  await pub.publishAsync(`${u}sid/a`, 'x', { qos: 1 })
  const m = await log.waitFor((m) => m.topic === `${u}sid/a`)
  assert.deepEqual([m.packet.properties?.subscriptionIdentifier].flat(), [42])

  // overlapping subscriptions: one copy carries every matching identifier [MQTT-3.3.4-4]
  await sub.subscribeAsync(`${u}sid/#`, { qos: 1, properties: { subscriptionIdentifier: 7 } })
  await pub.publishAsync(`${u}sid/b`, 'y', { qos: 1 })
  const both = await log.waitFor((m) => m.topic === `${u}sid/b`)
  assert.deepEqual([both.packet.properties?.subscriptionIdentifier].flat().sort(), [42, 7].sort())
  await pub.publishAsync(`${u}sid/c/d`, 'z', { qos: 1 }) // only `sid/#` matches
  const one = await log.waitFor((m) => m.topic === `${u}sid/c/d`)
  assert.deepEqual([one.packet.properties?.subscriptionIdentifier].flat(), [7])
})

// ---- shared subscriptions ----

test('MQTT 5.0: $share/group/filter gives each message to one member of each group', async (t) => {
  const u = uniqueId('u')
  const kit = await brokerKit(t)
  const member = async (filter: string) => {
    const c = await kit.mqtt(V5)
    const log = new MessageLog(c)
    await c.subscribeAsync(filter, { qos: 1 })
    return { c, log }
  }
  const a = await member(`$share/g1/${u}sh/+`)
  const b = await member(`$share/g1/${u}sh/+`)
  const other = await member(`$share/g2/${u}sh/#`)
  const plain = await member(`${u}sh/+`)
  const pub = await kit.mqtt(V5)
  const n = 10
  for (let i = 0; i < n; i++) await pub.publishAsync(`${u}sh/t`, `m${i}`, { qos: 1 })
  await plain.log.waitForCount(`${u}sh/t`, n)
  await other.log.waitForCount(`${u}sh/t`, n)
  const all = Array.from({ length: n }, (_, i) => `m${i}`)
  const g1 = [...a.log.on(`${u}sh/t`), ...b.log.on(`${u}sh/t`)].map((m) => m.payload.toString()).sort()
  assert.deepEqual(g1, [...all].sort(), 'group g1: every message exactly once')
  assert.deepEqual(other.log.on(`${u}sh/t`).map((m) => m.payload.toString()), all, 'group g2, a single member: all')
  assert.deepEqual(plain.log.on(`${u}sh/t`).map((m) => m.payload.toString()), all, 'a plain subscription: all')
  // the load is spread: both members of g1 got some
  assert.ok(a.log.on(`${u}sh/t`).length > 0 && b.log.on(`${u}sh/t`).length > 0)
  for (const m of a.log.on(`${u}sh/t`)) assert.equal(m.topic, `${u}sh/t`, 'the topic name, not the $share filter')

  // a member that leaves gets no more; the other takes everything
  await a.c.unsubscribeAsync(`$share/g1/${u}sh/+`)
  const before = a.log.on(`${u}sh/t`).length
  for (let i = 0; i < 4; i++) await pub.publishAsync(`${u}sh/t`, `late${i}`, { qos: 1 })
  await b.log.waitFor((m) => m.payload.toString() === 'late3')
  assert.equal(a.log.on(`${u}sh/t`).length, before)
  assert.deepEqual(b.log.on(`${u}sh/t`).filter((m) => m.payload.toString().startsWith('late')).length, 4)
})

// ---- Receive Maximum ----

test('MQTT 5.0: the broker keeps at most the client\'s Receive Maximum QoS 1/2 messages unacknowledged', async (t) => {
  const u = uniqueId('u')
  const kit = await brokerKit(t)
  const receiveMaximum = 2
  const { raw: sub } = await raw5(kit, { properties: { receiveMaximum } })
  await rawSubscribe(sub, [{ topic: `${u}rm/t`, qos: 2 }, { topic: `${u}rm/mark`, qos: 0 }])
  const pub = await kit.mqtt(V5)
  const n = 5
  for (let i = 0; i < n; i++) await pub.publishAsync(`${u}rm/t`, `m${i}`, { qos: i % 2 === 0 ? 1 : 2 })
  await pub.publishAsync(`${u}rm/mark`, 'mark', { qos: 0 }) // QoS 0 is not held back by the window
  /** PUBLISHes on rm/t until the marker arrives. */
  const untilMark = async () => {
    const got: IPublishPacket[] = []
    for (;;) {
      const p = asPublish(await sub.nextPacket('publish'))
      if (p.topic === `${u}rm/mark`) return got
      got.push(p)
    }
  }
  const firstWindow = await untilMark()
  assert.deepEqual(firstWindow.map((p) => payloadOf(p)), ['m0', 'm1'], 'only Receive Maximum in flight [MQTT-3.3.4-7]')

  // acknowledging one (QoS 1 PUBACK) lets exactly one more through
  sub.send({ cmd: 'puback', messageId: firstWindow[0].messageId }, 5)
  assert.equal(payloadOf(await sub.nextPacket('publish')), 'm2')
  await pub.publishAsync(`${u}rm/mark`, 'mark', { qos: 0 })
  assert.deepEqual(await untilMark(), [], 'the window is full again')

  // QoS 2: the slot frees at PUBCOMP, not at PUBREC
  sub.send({ cmd: 'pubrec', messageId: firstWindow[1].messageId }, 5)
  await sub.nextPacket('pubrel')
  await pub.publishAsync(`${u}rm/mark`, 'mark', { qos: 0 })
  assert.deepEqual(await untilMark(), [], 'still full after PUBREC')
  sub.send({ cmd: 'pubcomp', messageId: firstWindow[1].messageId }, 5)
  assert.equal(payloadOf(await sub.nextPacket('publish')), 'm3')
})

test('MQTT 5.0: the Receive Maximum also paces what was queued while the client was offline', async (t) => {
  const kit = await brokerKit(t)
  const u = uniqueId('u')
  const clientId = uniqueId('rq')
  const connect = { clientId, clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 2 } }
  const first = await raw5(kit, connect)
  await rawSubscribe(first.raw, [{ topic: `${u}rq/t`, qos: 1 }, { topic: `${u}rq/mark`, qos: 0 }])
  const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === clientId)
  first.raw.send({ cmd: 'disconnect', reasonCode: 0 }, 5)
  await gone
  const pub = await kit.mqtt(V5)
  for (let i = 0; i < 5; i++) await pub.publishAsync(`${u}rq/t`, `q${i}`, { qos: 1 })

  const { raw: sub, connack } = await raw5(kit, connect)
  assert.equal(connack.sessionPresent, true)
  await pub.publishAsync(`${u}rq/mark`, 'mark', { qos: 0 })
  const seen: IPublishPacket[] = []
  for (;;) {
    const p = asPublish(await sub.nextPacket('publish'))
    if (p.topic === `${u}rq/mark`) break
    seen.push(p)
  }
  assert.deepEqual(seen.map((p) => payloadOf(p)), ['q0', 'q1'])
  for (const p of seen) sub.send({ cmd: 'puback', messageId: p.messageId }, 5)
  const rest = [asPublish(await sub.nextPacket('publish')), asPublish(await sub.nextPacket('publish'))]
  assert.deepEqual(rest.map((p) => payloadOf(p)), ['q2', 'q3'])
})

// ---- Maximum Packet Size ----

test('MQTT 5.0: a message larger than the client\'s Maximum Packet Size is not sent to it; others still get it', async (t) => {
  const u = uniqueId('u')
  const kit = await brokerKit(t)
  const { raw: small } = await raw5(kit, { properties: { maximumPacketSize: 128 } })
  await rawSubscribe(small, [{ topic: `${u}mps/#`, qos: 1 }])
  const big = await kit.watch({ [`${u}mps/#`]: { qos: 1 } }, V5)
  await big.pub.publishAsync(`${u}mps/big`, Buffer.alloc(500, 7), { qos: 1 })
  await big.pub.publishAsync(`${u}mps/small`, 'fits', { qos: 1 })
  const p = asPublish(await small.nextPacket('publish'))
  assert.equal(p.topic, `${u}mps/small`, 'the oversized one was skipped [MQTT-3.1.2-25]')
  small.send({ cmd: 'puback', messageId: p.messageId }, 5)
  const got = await big.log.waitForCount(`${u}mps/big`, 1)
  assert.equal(got[0].payload.length, 500)
  assert.ok(small.isOpen)
})

test('MQTT 3.1.1: a packet over maxPacketSize closes the connection (logged as packet_too_large)', async (t) => {
  const kit = await ownBrokerKit(t, { settings: { maxPacketSize: 1024 } })
  const raw = await kit.raw()
  await raw.connect({ clientId: uniqueId('big') }, 4)
  const failed = waitForFailure(kit.server, (e) => e.reason === 'packet_too_large')
  raw.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(2000, 1), qos: 0 } as Packet)
  await raw.closed()
  await failed
  // at the limit is fine
  const ok = await kit.raw()
  await ok.connect({ clientId: uniqueId('fit') }, 4)
  const fits = RawClient.encode({ cmd: 'publish', topic: 'fit', payload: Buffer.alloc(1016, 1), qos: 0 } as Packet)
  assert.equal(fits.length, 1024)
  ok.sendBytes(fits)
  ok.send({ cmd: 'pingreq' })
  await ok.nextPacket('pingresp')
})
