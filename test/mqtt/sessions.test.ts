// Sessions: clean session / clean start and session expiry, the session present flag, subscriptions kept,
// redelivery of unacknowledged messages with DUP set, queued messages for offline persistent sessions (bounded),
// inbound QoS 2 state across reconnects, and take-over of a duplicate client id. Table-driven over versions.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IClientOptions, IConnackPacket, MqttClient } from 'mqtt'
import type { Packet } from 'mqtt-packet'
import { PROTOCOL_VERSIONS, type ProtocolVersion,
  barrier, brokerKit as ownBrokerKit, delay, MessageLog, protocolOptions, RawClient, sharedBrokerKit, uniqueId,
  waitForBrokerEvent, waitForFailure, type BrokerKit,
} from '../helpers.ts'
import { DEFAULT_SETTINGS } from '../../src/settings/schema.ts'

const MAX_QUEUED = DEFAULT_SETTINGS.maxQueuedMessages

type Version = ProtocolVersion
const VERSIONS = PROTOCOL_VERSIONS
type Kit = BrokerKit
// one server for the file: sessions are keyed by client id, and every test uses its own ids and topics
const brokerKit = sharedBrokerKit()

/** A session that outlives its connection: v3 CleanSession 0; v5 Clean Start 0 with a Session Expiry Interval. */
const persistent = (pv: Version, clientId: string): IClientOptions => ({
  ...protocolOptions(pv),
  clientId,
  clean: false,
  ...(pv === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
})
/** The same, as raw CONNECT fields. */
const persistentRaw = (pv: Version, clientId: string) => ({
  clientId,
  clean: false,
  ...(pv === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
})

/** The session present flag of a resumed session: MQTT 3.1's CONNACK has none (that byte is reserved, 0). */
const resumed = (pv: Version) => pv !== 3
const sessionPresent = (connack: Packet) => (connack as { sessionPresent: boolean }).sessionPresent
const payloadOf = (p: Packet) => (p as { payload: Buffer }).payload.toString()

/** Connects an MQTT.js client; `present` is its CONNACK's session present flag. */
async function session(kit: Kit, opts: IClientOptions, onClient?: (c: MqttClient) => void) {
  let connack: IConnackPacket | undefined
  const client = await kit.mqtt(opts, undefined, (c) => {
    c.once('connect', (p) => (connack = p))
    onClient?.(c)
  })
  assert.ok(connack)
  return Object.assign(client, { present: connack.sessionPresent })
}

/** Opens a raw client in `pv`, connects with `fields`, returns it with its CONNACK. */
async function rawSession(kit: Kit, pv: Version, fields: Record<string, unknown>) {
  const raw = await kit.raw({ protocolVersion: pv })
  const connack = await raw.connect(fields, pv)
  assert.equal((connack as { returnCode?: number; reasonCode?: number }).returnCode ?? (connack as { reasonCode?: number }).reasonCode, 0)
  return { raw, connack }
}

/** A raw persistent session of `clientId` subscribed to `topic` at `qos`, and an MQTT.js publisher beside it. */
async function persistentSubscriber(kit: Kit, pv: Version, clientId: string, topic: string, qos: 1 | 2) {
  const a = await rawSession(kit, pv, persistentRaw(pv, clientId))
  a.raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] }, pv)
  await a.raw.nextPacket('suback')
  const pub = await session(kit, protocolOptions(pv))
  return { a, pub }
}

/** Drops a raw client's socket and waits until the broker has seen it go (a connection_lost failure). */
async function drop(kit: Kit, raw: RawClient, clientId: string) {
  const lost = waitForFailure(kit.server, (e) => e.clientId === clientId && e.reason === 'connection_lost')
  raw.close()
  await lost
}

/** Ends an MQTT.js client with DISCONNECT and waits until the broker has processed it. */
async function disconnect(kit: Kit, client: Awaited<ReturnType<Kit['mqtt']>>) {
  const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === client.options.clientId)
  await client.endAsync()
  await gone
}

for (const { name, pv } of VERSIONS) {
  test(`${name}: a persistent session is resumed with session present and its subscriptions`, async (t) => {
    const kit = await brokerKit(t)
    const clientId = uniqueId('ps')
    const first = await session(kit, persistent(pv, clientId))
    assert.equal(first.present, false, 'no session existed [MQTT-3.2.2-3]')
    const root = uniqueId('keep')
    await first.subscribeAsync({ [`${root}/+`]: { qos: 1 } })
    await disconnect(kit, first)

    const again = await session(kit, persistent(pv, clientId))
    assert.equal(again.present, resumed(pv), 'the session was resumed [MQTT-3.2.2-2]')
    const log = new MessageLog(again)
    const pub = await session(kit, protocolOptions(pv))
    await pub.publishAsync(`${root}/a`, 'still subscribed', { qos: 1 })
    const m = await log.waitFor((m) => m.topic === `${root}/a`)
    assert.equal(m.payload.toString(), 'still subscribed')
    assert.equal(m.packet.qos, 1)
  })

  test(`${name}: a clean session discards the previous session and is itself discarded at disconnect`, async (t) => {
    const kit = await brokerKit(t)
    const clientId = uniqueId('cs')
    const first = await session(kit, persistent(pv, clientId))
    const root = uniqueId('gone')
    await first.subscribeAsync(`${root}/+`, { qos: 1 })
    await disconnect(kit, first)

    const clean = await session(kit, { ...protocolOptions(pv), clientId, clean: true })
    assert.equal(clean.present, false, '[MQTT-3.2.2-1] clean start: session present 0')
    const log = new MessageLog(clean)
    await clean.subscribeAsync(`${root}-bar`, { qos: 1 })
    const pub = await session(kit, protocolOptions(pv))
    await pub.publishAsync(`${root}/a`, 'old subscription', { qos: 1 })
    await barrier(pub, log, `${root}-bar`)
    assert.equal(log.on(`${root}/a`).length, 0, 'the old subscription went with the old session')
    await disconnect(kit, clean)

    // the clean session ended with its connection: a persistent connect finds nothing
    const after = await session(kit, persistent(pv, clientId))
    assert.equal(after.present, false)
  })

  test(`${name}: unacknowledged QoS 1 messages are redelivered on reconnect with DUP set, before queued ones`, async (t) => {
    const kit = await brokerKit(t)
    const clientId = uniqueId('rd')
    const topic = uniqueId('rd/')
    const { a, pub } = await persistentSubscriber(kit, pv, clientId, topic, 1)
    await pub.publishAsync(topic, 'unacked', { qos: 1 })
    const first = await a.raw.nextPacket('publish')
    assert.equal((first as { dup: boolean }).dup, false)
    await drop(kit, a.raw, clientId) // never acknowledged
    await pub.publishAsync(topic, 'queued', { qos: 1 }) // while offline

    const b = await rawSession(kit, pv, persistentRaw(pv, clientId))
    assert.equal(sessionPresent(b.connack), resumed(pv))
    const again = await b.raw.nextPacket('publish')
    // [MQTT-4.4.0-1] resent first, with the same packet id and DUP 1 [MQTT-3.3.1-1]
    assert.equal(payloadOf(again), 'unacked')
    assert.equal((again as { dup: boolean }).dup, true)
    assert.equal(again.messageId, first.messageId)
    assert.equal((again as { qos: number }).qos, 1)
    // then what was queued while offline: a first delivery, DUP 0, another packet id
    const queued = await b.raw.nextPacket('publish')
    assert.equal(payloadOf(queued), 'queued')
    assert.equal((queued as { dup: boolean }).dup, false)
    assert.notEqual(queued.messageId, again.messageId)
    b.raw.send({ cmd: 'puback', messageId: again.messageId }, pv)
    b.raw.send({ cmd: 'puback', messageId: queued.messageId }, pv)

    // acknowledged now: not sent a third time
    const c0 = b.raw
    c0.close()
    const c = await rawSession(kit, pv, persistentRaw(pv, clientId))
    c.raw.send({ cmd: 'pingreq' }, pv)
    await c.raw.nextPacket('pingresp')
    assert.equal(c.raw.packets.filter((p) => p.cmd === 'publish').length, 0)
  })

  test(`${name}: a QoS 2 message is resumed at its stage: PUBLISH (DUP) before PUBREC, PUBREL after`, async (t) => {
    const kit = await brokerKit(t)
    const clientId = uniqueId('q2')
    const topic = uniqueId('q2/')
    const { a, pub } = await persistentSubscriber(kit, pv, clientId, topic, 2)
    await pub.publishAsync(topic, 'm1', { qos: 2 })
    await pub.publishAsync(topic, 'm2', { qos: 2 })
    const m1 = await a.raw.nextPacket('publish')
    const m2 = await a.raw.nextPacket('publish')
    assert.deepEqual([payloadOf(m1), payloadOf(m2)], ['m1', 'm2'])
    // m1 reaches the PUBREL stage; m2 stays unacknowledged
    a.raw.send({ cmd: 'pubrec', messageId: m1.messageId }, pv)
    assert.equal((await a.raw.nextPacket('pubrel')).messageId, m1.messageId)
    await drop(kit, a.raw, clientId)

    const b = await rawSession(kit, pv, persistentRaw(pv, clientId))
    assert.equal(sessionPresent(b.connack), resumed(pv))
    // [MQTT-4.4.0-1] PUBREL for m1 and PUBLISH (DUP) for m2, each with its packet id
    const rel = await b.raw.nextPacket('pubrel')
    assert.equal(rel.messageId, m1.messageId)
    const again = await b.raw.nextPacket('publish')
    assert.equal(again.messageId, m2.messageId)
    assert.equal((again as { dup: boolean }).dup, true)
    assert.equal(payloadOf(again), 'm2')
    assert.equal(b.raw.packets.filter((p) => p.cmd === 'publish').length, 0, 'm1 is not sent again')
    b.raw.send({ cmd: 'pubcomp', messageId: m1.messageId }, pv)
    b.raw.send({ cmd: 'pubrec', messageId: m2.messageId }, pv)
    assert.equal((await b.raw.nextPacket('pubrel')).messageId, m2.messageId)
    b.raw.send({ cmd: 'pubcomp', messageId: m2.messageId }, pv)
    b.raw.send({ cmd: 'pingreq' }, pv)
    await b.raw.nextPacket('pingresp')
    assert.equal(b.raw.packets.filter((p) => p.cmd === 'publish' || p.cmd === 'pubrel').length, 0)
  })

  test(`${name}: an inbound QoS 2 message awaiting PUBREL survives a reconnect and is delivered once`, async (t) => {
    const kit = await brokerKit(t)
    const watcher = await session(kit, protocolOptions(pv))
    const log = new MessageLog(watcher)
    const topic = uniqueId('in2/')
    await watcher.subscribeAsync({ [topic]: { qos: 2 }, [`${topic}-bar`]: { qos: 1 } })
    const clientId = uniqueId('i2')
    const a = await rawSession(kit, pv, persistentRaw(pv, clientId))
    const publish = { cmd: 'publish', topic, payload: Buffer.from('exactly once'), qos: 2, messageId: 5 } as const
    a.raw.send(publish, pv)
    assert.equal((await a.raw.nextPacket('pubrec')).messageId, 5)
    await drop(kit, a.raw, clientId)

    const b = await rawSession(kit, pv, persistentRaw(pv, clientId))
    assert.equal(sessionPresent(b.connack), resumed(pv))
    // the client resends its PUBLISH with DUP (it never saw PUBREC arrive, as far as it knows)
    b.raw.send({ ...publish, dup: true }, pv)
    assert.equal((await b.raw.nextPacket('pubrec')).messageId, 5)
    b.raw.send({ cmd: 'pubrel', messageId: 5 }, pv)
    assert.equal((await b.raw.nextPacket('pubcomp')).messageId, 5)
    const pub = await session(kit, protocolOptions(pv))
    await barrier(pub, log, `${topic}-bar`)
    assert.deepEqual(log.on(topic).map((m) => m.payload.toString()), ['exactly once'])
  })

  test(`${name}: messages published while a persistent session is offline are queued and delivered in order`, async (t) => {
    const kit = await brokerKit(t)
    const clientId = uniqueId('oq')
    const topic = uniqueId('oq/')
    const first = await session(kit, persistent(pv, clientId))
    await first.subscribeAsync({ [topic]: { qos: 2 } })
    await disconnect(kit, first)

    const pub = await session(kit, protocolOptions(pv))
    const sent: [string, 1 | 2][] = [['a', 1], ['b', 2], ['c', 1], ['d', 2]]
    for (const [payload, qos] of sent) await pub.publishAsync(topic, payload, { qos })

    let log!: MessageLog // listening before CONNECT: queued messages may follow CONNACK in the same frame
    const again = await session(kit, persistent(pv, clientId), (c) => (log = new MessageLog(c)))
    const got = await log.waitForCount(topic, sent.length)
    assert.equal(again.present, resumed(pv))
    // [MQTT-4.6.0-6] in order per topic and QoS (MQTT.js hands a QoS 2 message over at PUBREL, so across QoS
    // levels its order is the client's)
    for (const qos of [1, 2]) {
      assert.deepEqual(
        got.filter((m) => m.packet.qos === qos).map((m) => m.payload.toString()),
        sent.filter(([, q]) => q === qos).map(([p]) => p),
        `QoS ${qos} messages in order, at their QoS`,
      )
    }
    assert.equal(got.length, sent.length)
  })

  test(`${name}: a clean connection does not get messages queued for the old persistent session`, async (t) => {
    const kit = await brokerKit(t)
    const clientId = uniqueId('oc')
    const topic = uniqueId('oc/')
    const first = await session(kit, persistent(pv, clientId))
    await first.subscribeAsync(topic, { qos: 1 })
    await disconnect(kit, first)
    const pub = await session(kit, protocolOptions(pv))
    await pub.publishAsync(topic, 'queued', { qos: 1 })

    let log!: MessageLog
    const clean = await session(kit, { ...protocolOptions(pv), clientId, clean: true }, (c) => (log = new MessageLog(c)))
    await clean.subscribeAsync(`${topic}-bar`, { qos: 1 })
    await barrier(pub, log, `${topic}-bar`)
    assert.equal(log.on(topic).length, 0)
  })

  test(`${name}: a duplicate client id takes over: the old connection is closed and logged as taken_over`, async (t) => {
    const kit = await brokerKit(t)
    const clientId = uniqueId('to')
    const old = await rawSession(kit, pv, { clientId })
    const takenOver = waitForFailure(kit.server, (e) => e.reason === 'taken_over' && e.clientId === clientId)
    const fresh = await rawSession(kit, pv, { clientId })
    if (pv === 5) {
      // [MQTT-3.1.4-3] v5: DISCONNECT with 0x8E (Session taken over) first
      const d = await old.raw.nextPacket('disconnect')
      assert.equal((d as { reasonCode: number }).reasonCode, 0x8e)
    }
    await old.raw.closed()
    const failure = await takenOver
    assert.equal(failure.clientId, clientId)
    assert.equal(failure.phase, 'connected')
    // the new connection works
    fresh.raw.send({ cmd: 'pingreq' }, pv)
    await fresh.raw.nextPacket('pingresp')
    const live = kit.server.app.broker.connections().filter((c) => c.clientId === clientId)
    assert.equal(live.length, 1)
  })

  test(`${name}: a take-over with a persistent session keeps the session`, async (t) => {
    const kit = await brokerKit(t)
    const clientId = uniqueId('tp')
    const topic = uniqueId('tp/')
    const old = await session(kit, persistent(pv, clientId))
    await old.subscribeAsync(topic, { qos: 1 })
    const fresh = await session(kit, persistent(pv, clientId))
    assert.equal(fresh.present, resumed(pv))
    const log = new MessageLog(fresh)
    const pub = await session(kit, protocolOptions(pv))
    await pub.publishAsync(topic, 'to the new connection', { qos: 1 })
    const m = await log.waitFor((m) => m.topic === topic)
    assert.equal(m.payload.toString(), 'to the new connection')
  })
}

test('a client id that is already connected may take over even when the broker is full (maxConnections)', async (t) => {
  const kit = await ownBrokerKit(t, { settings: { maxConnections: 1 } })
  const clientId = uniqueId('full')
  const old = await rawSession(kit, 4, { clientId })
  const fresh = await rawSession(kit, 4, { clientId }) // replaces itself: the count does not grow
  await old.raw.closed()
  fresh.raw.send({ cmd: 'pingreq' })
  await fresh.raw.nextPacket('pingresp')
  // another id is still refused
  const other = await kit.raw()
  const connack = await other.connect({ clientId: uniqueId('other') }, 4)
  assert.equal((connack as { returnCode: number }).returnCode, 3)
})

// ---- the offline queue is bounded ----

for (const pv of [4, 5] as const) {
  test(`MQTT ${pv === 4 ? '3.1.1' : '5.0'}: the offline queue holds at most MAX_QUEUED (${MAX_QUEUED}) messages, the rest are dropped`, async (t) => {
    const kit = await ownBrokerKit(t) // its own server: it reads the broker's dropped-messages counter
    const clientId = uniqueId('qb')
    const topic = uniqueId('qb/')
    const a = await rawSession(kit, pv, persistentRaw(pv, clientId))
    a.raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] }, pv)
    await a.raw.nextPacket('suback')
    const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === clientId)
    a.raw.send({ cmd: 'disconnect' }, pv)
    await gone

    const dropsBefore = kit.server.app.broker.stats.messagesDropped
    const extra = 5
    const total = MAX_QUEUED + extra
    const pub = await rawSession(kit, pv, { clientId: uniqueId('qp') })
    pub.raw.sendBytes(Buffer.concat(Array.from({ length: total }, (_, i) =>
      RawClient.encode({ cmd: 'publish', topic, payload: Buffer.from(String(i)), qos: 1, messageId: i + 1 }, pv))))
    for (let i = 0; i < total; i++) await pub.raw.nextPacket('puback')
    assert.equal(kit.server.app.broker.stats.messagesDropped - dropsBefore, extra)

    const b = await rawSession(kit, pv, persistentRaw(pv, clientId))
    const got: string[] = []
    for (let i = 0; i < MAX_QUEUED; i++) {
      const p = await b.raw.nextPacket('publish')
      got.push(payloadOf(p))
      b.raw.send({ cmd: 'puback', messageId: p.messageId }, pv)
    }
    // the oldest are kept, in order; the newest, past the bound, were dropped
    assert.deepEqual(got, Array.from({ length: MAX_QUEUED }, (_, i) => String(i)))
    // nothing else was waiting: the next message is a fresh one
    pub.raw.send({ cmd: 'publish', topic, payload: Buffer.from('fresh'), qos: 1, messageId: 1 }, pv)
    assert.equal(payloadOf(await b.raw.nextPacket('publish')), 'fresh')
  })
}

// ---- MQTT 5.0 session expiry ----

test('MQTT 5.0: Clean Start 0 without a Session Expiry Interval: the session ends with the connection', async (t) => {
  const kit = await brokerKit(t)
  const clientId = uniqueId('se0')
  const first = await session(kit, { protocolVersion: 5, clientId, clean: false })
  await first.subscribeAsync(uniqueId('se0/'), { qos: 1 })
  await disconnect(kit, first)
  const again = await session(kit, { protocolVersion: 5, clientId, clean: false })
  assert.equal(again.present, false, 'expiry 0 (absent): the session ended at close')
})

test('MQTT 5.0: a session is gone once its Session Expiry Interval has elapsed', async (t) => {
  const kit = await brokerKit(t)
  const clientId = uniqueId('se1')
  const first = await session(kit, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 1 } })
  await disconnect(kit, first)
  // within the interval: present
  const within = await session(kit, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 1 } })
  assert.equal(within.present, true)
  await disconnect(kit, within)
  await delay(1300)
  const after = await session(kit, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 1 } })
  assert.equal(after.present, false, 'expired after 1 s')
})

test('MQTT 5.0: the Session Expiry Interval in DISCONNECT replaces the one from CONNECT', async (t) => {
  const kit = await brokerKit(t)
  const clientId = uniqueId('sed')
  const first = await session(kit, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } })
  const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === clientId)
  await first.endAsync({ reasonCode: 0, properties: { sessionExpiryInterval: 0 } })
  await gone
  const again = await session(kit, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } })
  assert.equal(again.present, false)
})

test('MQTT 5.0: an empty client id gets an Assigned Client Identifier that can resume its session', async (t) => {
  const kit = await brokerKit(t)
  const a = await rawSession(kit, 5, { clientId: '', clean: true, properties: { sessionExpiryInterval: 300 } })
  const assigned = (a.connack as { properties?: { assignedClientIdentifier?: string } }).properties?.assignedClientIdentifier
  assert.equal(typeof assigned, 'string')
  assert.ok(assigned!.length > 0)
  const b = await rawSession(kit, 5, { clientId: '', clean: true })
  const other = (b.connack as { properties?: { assignedClientIdentifier?: string } }).properties?.assignedClientIdentifier
  assert.ok(other && other !== assigned, 'each connection gets its own id')
  assert.ok(kit.server.app.broker.connections().some((c) => c.clientId === assigned))

  a.raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: uniqueId('aci/'), qos: 1 }] }, 5)
  await a.raw.nextPacket('suback')
  const gone = waitForBrokerEvent(kit.server, 'disconnected', (e) => e.clientId === assigned)
  a.raw.send({ cmd: 'disconnect', reasonCode: 0 }, 5)
  await gone
  const c = await rawSession(kit, 5, persistentRaw(5, assigned!))
  assert.equal(sessionPresent(c.connack), true)
  const given = (c.connack as { properties?: { assignedClientIdentifier?: string } }).properties?.assignedClientIdentifier
  assert.equal(given, undefined, 'no Assigned Client Identifier when the client sent one')
})

test('MQTT 5.0: a persistent session outlives a clean connection of another client id', async (t) => {
  // sessions are per client id: one client's clean start does not touch another's session
  const kit = await brokerKit(t)
  const a = uniqueId('pa')
  const first = await session(kit, persistent(5, a))
  await first.subscribeAsync(uniqueId('iso/'), { qos: 1 })
  await disconnect(kit, first)
  await session(kit, { protocolVersion: 5, clientId: uniqueId('pb'), clean: true })
  const again = await session(kit, persistent(5, a))
  assert.equal(again.present, true)
})
