// The $SYS/ topics through the real server and real MQTT.js clients: retained values on subscribe, changes on the
// next round (clients, failures by reason, the settings version), sysIntervalSec 0 and live changes of it, the ACL
// deciding who reads them, a `#` subscription never matching them [MQTT-4.7.2-1]; and, on the core alone, that only
// changed values are sent, that they are not counted as received messages, and that a failing round is logged.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import type { ISubackPacket } from 'mqtt-packet'
import { brokerKit, delay, MessageLog, RawClient, type TestServer, uniqueId, until, waitForFailure, apiCall } from '../helpers.ts'
import { Broker } from '../../src/mqtt/broker.ts'
import { SysPublisher } from '../../src/mqtt/sys.ts'
import { DEFAULT_SETTINGS } from '../../src/settings/schema.ts'
import { FAILURE_REASONS } from '../../src/contracts/failure.ts'
import type { Logger } from '../../src/contracts/logger.ts'
import type { Message } from '../../src/contracts/state.ts'

const PKG = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; version: string }
const SYS = '$SYS/broker/'

const api = apiCall

const patchSettings = async (server: TestServer, values: Record<string, unknown>): Promise<number> => {
  const res = await api(server, 'PATCH', '/api/settings', { values })
  assert.equal(res.status, 200, JSON.stringify(res.json))
  return res.json.version as number
}

/** The newest payload received on `topic`, as text. */
const latest = (log: MessageLog, topic: string): string | undefined => log.on(topic).at(-1)?.payload.toString()

/** Waits for a message on `SYS + name` whose payload is `value`. */
const sysValue = (log: MessageLog, name: string, value: string, timeoutMs = 3000) =>
  log.waitFor((m) => m.topic === SYS + name && m.payload.toString() === value, timeoutMs)

test('a $SYS/# subscriber gets every value at once (retained), then what changes on the next round', async (t) => {
  const kit = await brokerKit(t, { settings: { sysIntervalSec: 1 } })
  const { log } = await kit.watch({ '$SYS/#': { qos: 0 } })

  const version = await log.waitFor((m) => m.topic === `${SYS}version`)
  assert.equal(version.payload.toString(), `${PKG.name} version ${PKG.version}`)
  assert.equal(version.packet.retain, true, 'sent from the retained values on subscribe')
  assert.equal(version.packet.qos, 0)
  const expected = ['uptime', 'clients/connected', 'clients/disconnected', 'clients/total', 'messages/received',
    'messages/sent', 'messages/stored', 'retained messages/count', 'store/messages/count', 'subscriptions/count',
    'bytes/received', 'bytes/sent', 'settings/version', ...FAILURE_REASONS.map((r) => `failures/${r}`)]
  for (const name of expected) await log.waitFor((m) => m.topic === SYS + name)
  assert.match(latest(log, `${SYS}uptime`)!, /^\d+ seconds$/)
  for (const name of expected.filter((n) => n !== 'uptime')) assert.match(latest(log, SYS + name)!, /^\d+$/, name)

  // the watcher's two clients (subscriber, publisher) show up on the next round, with the subscriptions
  await sysValue(log, 'clients/connected', '2')
  await sysValue(log, 'clients/total', '2')
  assert.ok(Number(latest(log, `${SYS}subscriptions/count`)) >= 1)

  // a persistent session left behind is a disconnected client; a retained message is stored; a PUBLISH is received
  const durable = await kit.mqtt({ clientId: uniqueId('sys-durable-'), clean: false })
  await durable.subscribeAsync('sys-test/q', { qos: 1 })
  await durable.endAsync()
  const pub = await kit.mqtt()
  const received = Number(latest(log, `${SYS}messages/received`))
  await pub.publishAsync('sys-test/kept', 'x', { qos: 1, retain: true })
  await pub.publishAsync('sys-test/q', 'waits', { qos: 1 })
  await sysValue(log, 'clients/disconnected', '1')
  await sysValue(log, 'retained messages/count', '1')
  await sysValue(log, 'messages/stored', '1')
  await sysValue(log, 'store/messages/count', '1')
  await sysValue(log, 'messages/received', String(received + 2))
  // the uptime goes on every round, the other values only when they change
  const uptimes = log.on(`${SYS}uptime`).length
  const versions = log.on(`${SYS}version`).length
  await log.waitForCount(`${SYS}uptime`, uptimes + 1)
  assert.equal(log.on(`${SYS}version`).length, versions, 'an unchanged value is not sent again')
})

test('$SYS/broker/failures/<reason> counts failures by reason; settings/version follows a PATCH', async (t) => {
  const kit = await brokerKit(t, { settings: { sysIntervalSec: 1 } })
  const { log } = await kit.watch({ '$SYS/#': { qos: 0 } })
  await sysValue(log, 'failures/protocol_error', '0')

  const failed = waitForFailure(kit.server, (e) => e.reason === 'protocol_error')
  const bad = await kit.raw()
  bad.send({ cmd: 'pingreq' }) // the first packet must be CONNECT
  await failed
  await sysValue(log, 'failures/protocol_error', '1')
  assert.equal(latest(log, `${SYS}failures/connect_timeout`), '0')

  const version = await patchSettings(kit.server, { connectTimeoutMs: 7000 })
  await sysValue(log, 'settings/version', String(version))
})

test('sysIntervalSec 0 stops the rounds; a live change of it takes effect at once', async (t) => {
  const kit = await brokerKit(t, { settings: { sysIntervalSec: 1 } })
  const { log, sync } = await kit.watch({ '$SYS/#': { qos: 0 } })
  await log.waitForCount(`${SYS}uptime`, 2)

  await patchSettings(kit.server, { sysIntervalSec: 0 })
  await sync() // whatever a round sent before the PATCH has arrived
  const seen = log.messages.filter((m) => m.topic.startsWith('$SYS/')).length
  await delay(1500)
  assert.equal(log.messages.filter((m) => m.topic.startsWith('$SYS/')).length, seen, 'nothing over 1.5 s of what was a 1 s interval')

  // back on, and longer than this test waits: a round goes at once, and the next one only after the new interval
  const started = Date.now()
  const uptimes = log.on(`${SYS}uptime`).length
  await patchSettings(kit.server, { sysIntervalSec: 60 })
  await log.waitForCount(`${SYS}uptime`, uptimes + 1, 1000)
  await delay(1200)
  assert.equal(log.on(`${SYS}uptime`).length, uptimes + 1)
  await patchSettings(kit.server, { sysIntervalSec: 1 })
  await log.waitForCount(`${SYS}uptime`, uptimes + 3, 2500)
  assert.ok(Date.now() - started < 5000)
})

test('the ACL decides who reads $SYS: with aclDefault deny only the user a rule allows gets the values', async (t) => {
  const kit = await brokerKit(t, { settings: { sysIntervalSec: 1 } })
  const server = kit.server
  for (const username of ['ops', 'dev']) {
    assert.equal((await api(server, 'POST', '/api/mqtt-users', { username, password: `${username}-pw-123` })).status, 201)
  }
  assert.equal((await api(server, 'POST', '/api/acl', { username: 'ops', topic: '$SYS/#', action: 'subscribe', permission: 'allow' })).status, 201)
  await patchSettings(server, { aclDefault: 'deny' })

  const subscribe = async (username: string): Promise<RawClient> => {
    const c = await kit.raw({ protocolVersion: 5 })
    await c.connect({ clientId: uniqueId(`${username}-`), username, password: Buffer.from(`${username}-pw-123`) }, 5)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$SYS/#', qos: 0 }] }, 5)
    return c
  }
  const dev = await subscribe('dev')
  assert.deepEqual((await dev.nextPacket('suback') as ISubackPacket).granted, [0x87], 'dev is refused')
  const ops = await subscribe('ops')
  assert.deepEqual((await ops.nextPacket('suback') as ISubackPacket).granted, [0])
  const uptimes = () => ops.packets.filter((p) => p.cmd === 'publish' && p.topic === `${SYS}uptime`).length
  await until(() => uptimes() >= 1, 'ops gets the retained uptime')
  assert.ok(ops.packets.some((p) => p.cmd === 'publish' && p.topic === `${SYS}version`))
  await until(() => uptimes() >= 3, 'ops gets two more rounds')
  await delay(50)
  assert.deepEqual(dev.packets.filter((p) => p.cmd === 'publish'), [], 'dev got nothing')
})

test('a # or +/... subscription does not receive $SYS topics [MQTT-4.7.2-1]', async (t) => {
  const kit = await brokerKit(t, { settings: { sysIntervalSec: 1 } })
  const { log: wide, pub, sync } = await kit.watch({ '#': { qos: 0 }, '+/broker/uptime': { qos: 0 } })
  let sys!: MessageLog
  const watcher = await kit.mqtt({}, undefined, (c) => (sys = new MessageLog(c)))
  await watcher.subscribeAsync('$SYS/broker/uptime')
  const seen = sys.on(`${SYS}uptime`).length
  await sys.waitForCount(`${SYS}uptime`, seen + 2)
  await pub.publishAsync('plain/topic', 'x')
  await sync()
  assert.ok(wide.messages.some((m) => m.topic === 'plain/topic'), '# matches the other topics')
  assert.deepEqual(wide.messages.filter((m) => m.topic.startsWith('$')), [])
})

// ---- the core alone ----

const message = (topic: string): Message => ({ topic, payload: Buffer.from('x'), qos: 0, retain: false, properties: null, expiresAt: 0, from: null })

test('core: a round sends only the values that changed (and the uptime); the messages are not counted as received', async (t) => {
  const broker = new Broker({ settings: { version: 1, values: { ...DEFAULT_SETTINGS, sysIntervalSec: 0 } } })
  const sys = new SysPublisher(broker, { version: 'test version 1', startedAt: 0 })
  t.after(() => {
    sys.stop()
    return broker.close()
  })
  const all = sys.values(0).length
  assert.equal(all, 14 + FAILURE_REASONS.length)
  assert.equal(sys.tick(5000), all, 'the first round sends every topic')
  assert.equal(broker.stats.messagesPublished, 0, 'the broker\'s own messages are not PUBLISHes received')
  assert.equal(sys.tick(6000), 1, 'only the uptime')
  broker.publish(message('a/b'))
  assert.equal(broker.stats.messagesPublished, 1)
  assert.equal(sys.tick(7000), 2, 'the uptime and messages/received')
  const stored = await broker.retainedFor('$SYS/broker/#', Date.now())
  const byTopic = new Map(stored.map((m) => [m.topic, m.payload.toString()]))
  assert.equal(byTopic.get(`${SYS}uptime`), '7 seconds')
  assert.equal(byTopic.get(`${SYS}messages/received`), '1')
  assert.equal(byTopic.get(`${SYS}version`), 'test version 1')
  assert.equal(broker.retained.size, 0, 'kept apart from the retained store')
})

test('core: a round that throws is logged and the timer goes on; stop() ends the rounds', async (t) => {
  const errors: string[] = []
  const noop = () => {}
  const logger: Logger = { debug: noop, info: noop, warn: noop, error: (_o, msg) => errors.push(msg ?? '') }
  let calls = 0
  class FailingBroker extends Broker {
    override publishSys(): void {
      calls++
      throw new Error('store broke')
    }
  }
  const broker = new FailingBroker({ settings: { version: 1, values: { ...DEFAULT_SETTINGS, sysIntervalSec: 1 } }, logger })
  const sys = new SysPublisher(broker, { version: 'v' })
  t.after(() => broker.close())
  assert.deepEqual(errors, ['publishing the $SYS topics failed'], 'the first round (at start) failed and was logged')
  assert.equal(broker.stats.messagesPublished, 0)
  await until(() => errors.length === 2, 'the next round tried again', 2500)
  sys.stop()
  const after = calls
  await delay(1200)
  assert.equal(calls, after, 'no round after stop()')
  broker.applySettings({ version: 2, values: { ...DEFAULT_SETTINGS, sysIntervalSec: 2 } })
  assert.equal(calls, after, 'a settings change does not restart a stopped publisher')
  assert.equal(sys.intervalSec, 0)
})

test('core: the retained $SYS values are found by $SYS filters, never by # [MQTT-4.7.2-1]', async (t) => {
  const broker = new Broker({ settings: { version: 1, values: { ...DEFAULT_SETTINGS, sysIntervalSec: 0 } } })
  const sys = new SysPublisher(broker, { version: 'v' })
  t.after(() => {
    sys.stop()
    return broker.close()
  })
  sys.tick()
  assert.equal((await broker.retainedFor('#', Date.now())).length, 0)
  assert.equal((await broker.retainedFor('$SYS/#', Date.now())).length, sys.values().length)
})

test('clients cannot write to $SYS: a PUBLISH there is refused (v5 0x87 with aclRevealDenials) and the real value stays', async (t) => {
  const kit = await brokerKit(t, { settings: { sysIntervalSec: 1, aclRevealDenials: true } })
  const raw = await kit.raw({ protocolVersion: 5 })
  await raw.connect({ clientId: uniqueId('sys-writer') }, 5)
  raw.send({ cmd: 'publish', topic: `${SYS}version`, payload: Buffer.from('fake'), qos: 1, messageId: 3, retain: true, dup: false }, 5)
  const ack = await raw.nextPacket('puback') as { reasonCode?: number }
  assert.equal(ack.reasonCode, 0x87)
  const reader = await kit.raw({ protocolVersion: 5 })
  await reader.connect({ clientId: uniqueId('sys-reader') }, 5)
  reader.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${SYS}version`, qos: 0 }] }, 5)
  await reader.nextPacket('suback')
  const value = await reader.nextPacket('publish') as { payload: Buffer }
  assert.equal(value.payload.toString(), `${PKG.name} version ${PKG.version}`)
})
