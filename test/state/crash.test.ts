// After a kill -9 of a real broker process: in-flight QoS 2 state both ways, session expiry counted from the
// disconnect, and the Wills of the clients that were connected at the crash (with and without a Will Delay).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IConnackPacket, IPublishPacket, Packet } from 'mqtt-packet'
import { connectMqtt, delay, RawClient, until } from '../helpers.ts'
import { end, recorder, setup } from './processes.ts'

test('kill -9: QoS 2 state both ways survives; a completed flow is never delivered again, a half-done one resumes at PUBREL', async (t) => {
  const broker = setup(t)
  await broker.start()
  const sub = await RawClient.open(broker.wsUrl)
  assert.equal((await sub.connect({ clientId: 'q2-sub', clean: false })).cmd, 'connack')
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2/#', qos: 2 }] })
  await sub.nextPacket('suback')
  const pub = await RawClient.open(broker.wsUrl)
  await pub.connect({ clientId: 'q2-pub', clean: false })

  // message A: the publisher never sends PUBREL; the subscriber completes its side (PUBREC, PUBREL, PUBCOMP)
  pub.send({ cmd: 'publish', topic: 'q2/a', payload: Buffer.from('A'), qos: 2, messageId: 7, retain: false, dup: false })
  assert.equal((await pub.nextPacket('pubrec')).messageId, 7)
  const a = await sub.nextPacket('publish') as IPublishPacket
  assert.equal(a.payload.toString(), 'A')
  sub.send({ cmd: 'pubrec', messageId: a.messageId })
  assert.equal((await sub.nextPacket('pubrel')).messageId, a.messageId)
  sub.send({ cmd: 'pubcomp', messageId: a.messageId })
  // message B: the subscriber sends PUBREC and stops there
  pub.send({ cmd: 'publish', topic: 'q2/b', payload: Buffer.from('B'), qos: 2, messageId: 8, retain: false, dup: false })
  await pub.nextPacket('pubrec')
  const b = await sub.nextPacket('publish') as IPublishPacket
  sub.send({ cmd: 'pubrec', messageId: b.messageId })
  assert.equal((await sub.nextPacket('pubrel')).messageId, b.messageId)
  await delay(200) // past the write-behind window
  await broker.crash()
  sub.close()
  pub.close()

  await broker.start()
  const sub2 = await RawClient.open(broker.wsUrl)
  t.after(() => sub2.close())
  assert.equal((await sub2.connect({ clientId: 'q2-sub', clean: false }) as IConnackPacket).sessionPresent, true)
  // B resumes where it stood: PUBREL, not the message again [MQTT-4.4.0-1]
  assert.equal((await sub2.nextPacket()).cmd, 'pubrel')
  sub2.send({ cmd: 'pubcomp', messageId: b.messageId })
  // the publisher sends A again (DUP): the broker knows it already routed it and only answers PUBREC
  const pub2 = await RawClient.open(broker.wsUrl)
  t.after(() => pub2.close())
  assert.equal((await pub2.connect({ clientId: 'q2-pub', clean: false }) as IConnackPacket).sessionPresent, true)
  pub2.send({ cmd: 'publish', topic: 'q2/a', payload: Buffer.from('A'), qos: 2, messageId: 7, retain: false, dup: true })
  assert.equal((await pub2.nextPacket('pubrec')).messageId, 7)
  pub2.send({ cmd: 'pubrel', messageId: 7 })
  assert.equal((await pub2.nextPacket('pubcomp')).messageId, 7)
  await delay(300)
  assert.deepEqual(sub2.packets.filter((p: Packet) => p.cmd === 'publish'), [], 'nothing delivered twice')
})

test('kill -9: session expiry counts from the disconnect, and the Wills of clients connected at the crash are published', async (t) => {
  const broker = setup(t)
  await broker.start()
  // D: a Will Delay and a Session Expiry longer than a restart takes on this machine (measured by the first start),
  // so that "counted from the crash / the disconnect" and "counted from the restart" give different answers
  const D = Math.min(30, Math.max(4, Math.ceil((broker.startMs * 2.5) / 1000) + 1))
  t.diagnostic(`first start ${broker.startMs} ms: Will Delay and short expiry ${D} s`)
  const v5 = { protocolVersion: 5 as const }
  // offline sessions: one expires D s after its disconnect, one in 10 minutes
  for (const [clientId, expiry] of [['exp-short', D], ['exp-long', 600]] as const) {
    const c = await connectMqtt(broker.wsUrl, { ...v5, clientId, clean: false, properties: { sessionExpiryInterval: expiry } })
    await c.subscribeAsync('x/#')
    await end(c)
  }
  const disconnectedAt = Date.now()
  // a watcher of Wills, offline with a QoS 1 subscription
  const watch = await recorder(broker.wsUrl, { clientId: 'will-watch', clean: false })
  await watch.client.subscribeAsync({ 'wills/#': { qos: 1 } })
  await end(watch.client)
  // connected at the crash: a Will without delay; two with a delay of D, one of whose clients comes back in time
  const will = (topic: string, delaySec: number) => ({ topic, payload: Buffer.from(topic), qos: 1 as const, retain: false,
    properties: delaySec > 0 ? { willDelayInterval: delaySec } : undefined })
  const clients = [
    await connectMqtt(broker.wsUrl, { clientId: 'crash-now', will: will('wills/now', 0) }),
    await connectMqtt(broker.wsUrl, { ...v5, clientId: 'crash-back', clean: false, properties: { sessionExpiryInterval: 600 }, will: will('wills/back', D) }),
    await connectMqtt(broker.wsUrl, { ...v5, clientId: 'crash-gone', clean: false, properties: { sessionExpiryInterval: 600 }, will: will('wills/gone', D) }),
  ]
  for (const c of clients) c.on('error', () => {})
  await delay(100)
  const crashedAt = await broker.crash()
  for (const c of clients) c.end(true)

  await broker.start()
  t.diagnostic(`restarted ${Date.now() - crashedAt} ms after the crash`)
  // back within its Will Delay: its Will is not published
  const back = await connectMqtt(broker.wsUrl, { ...v5, clientId: 'crash-back', clean: false, properties: { sessionExpiryInterval: 600 } })
  t.after(() => back.end(true))
  const watch2 = await recorder(broker.wsUrl, { clientId: 'will-watch', clean: false })
  t.after(() => watch2.client.end(true))
  await until(() => watch2.got.some((m) => m.topic === 'wills/now'), 'the undelayed Will', 3000)
  assert.ok(!watch2.got.some((m) => m.topic === 'wills/gone'), 'a delayed Will waits for its delay')
  await until(() => watch2.got.some((m) => m.topic === 'wills/gone'), 'the delayed Will of the client that did not come back',
    crashedAt + D * 1000 + 3000 - Date.now())
  // due D s after the crash (a second of slack: the crash is dated by the last write, at most 1 s before it)
  assert.ok(Date.now() - crashedAt >= D * 1000 - 1100, `published ${Date.now() - crashedAt} ms after the crash, before its delay`)
  await delay(300)
  assert.deepEqual(watch2.got.map((m) => m.topic).sort(), ['wills/gone', 'wills/now'])

  // D s after the disconnect (whatever the restart took), the short session is gone and the long one is there
  await delay(Math.max(0, disconnectedAt + D * 1000 + 300 - Date.now()))
  for (const [clientId, present] of [['exp-short', false], ['exp-long', true]] as const) {
    const c = await recorder(broker.wsUrl, { ...v5, clientId, clean: false, properties: { sessionExpiryInterval: 60 } })
    t.after(() => c.client.end(true))
    assert.equal(c.connack().sessionPresent, present, clientId)
  }
})
