// Correctness on resume: unacknowledged messages are sent again within the new connection's Receive Maximum and
// Maximum Packet Size; a shared subscription does not pick an offline member while online members exist.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IPublishPacket } from 'mqtt-packet'
import { brokerKit, delay, RawClient, until } from '../helpers.ts'

const publishes = (c: RawClient) => c.packets.filter((p): p is IPublishPacket => p.cmd === 'publish')


test('MQTT 5: re-delivery on reconnect respects the new Receive Maximum and Maximum Packet Size', async (t) => {
  const kit = await brokerKit(t)
  const first = await kit.raw({ protocolVersion: 5 })
  await first.connect({ clientId: 'resume', clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 10 } }, 5)
  first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rd/#', qos: 1 }] }, 5)
  await first.nextPacket('suback')
  const pub = await kit.raw()
  await pub.connect({ clientId: 'rd-pub' })
  // five small messages and one large one, none acknowledged by the subscriber
  for (let i = 0; i < 5; i++) pub.send({ cmd: 'publish', topic: 'rd/t', payload: Buffer.from(`m${i}`), qos: 1, messageId: i + 1, retain: false, dup: false })
  pub.send({ cmd: 'publish', topic: 'rd/big', payload: Buffer.alloc(500, 0x62), qos: 1, messageId: 6, retain: false, dup: false })
  await until(() => publishes(first).length === 6, 'six in flight')
  first.close()
  await until(() => kit.server.app.broker.stats.clientsConnected === 1, 'offline')

  // back with a window of 2 and packets of at most 100 bytes
  const again = await kit.raw({ protocolVersion: 5 })
  await again.connect({ clientId: 'resume', clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 2, maximumPacketSize: 100 } }, 5)
  await until(() => publishes(again).length === 2, 'two re-sent')
  await delay(150)
  const sent = publishes(again)
  assert.equal(sent.length, 2, 'no more than the Receive Maximum before an acknowledgement')
  assert.ok(sent.every((p) => p.dup), 'sent again with DUP')
  assert.deepEqual(sent.map((p) => p.payload.toString()), ['m0', 'm1'])
  const originalIds = publishes(first).map((p) => p.messageId)
  assert.deepEqual(sent.map((p) => p.messageId), originalIds.slice(0, 2), 'under their original packet ids')

  // each acknowledgement lets one more through; the large one never comes (over the client's Maximum Packet Size)
  const received: string[] = sent.map((p) => p.payload.toString())
  for (let k = 0; k < 10 && received.length < 5; k++) {
    const p = publishes(again)[k]
    if (p === undefined) break
    again.send({ cmd: 'puback', messageId: p.messageId }, 5)
    await until(() => publishes(again).length >= Math.min(k + 3, 5), `${k + 3} delivered`)
    received.splice(0, received.length, ...publishes(again).map((x) => x.payload.toString()))
    assert.ok(publishes(again).length - (k + 1) <= 2, 'never more than 2 unacknowledged')
  }
  for (const p of publishes(again).slice(-2)) again.send({ cmd: 'puback', messageId: p.messageId }, 5)
  await delay(150)
  assert.deepEqual(publishes(again).map((p) => p.payload.toString()), ['m0', 'm1', 'm2', 'm3', 'm4'])
  assert.equal(kit.server.app.broker.sessions.get('resume')?.inflight?.size ?? 0, 0, 'the large one was discarded as if delivered')
})

test('a shared subscription passes over an offline member while an online one exists', async (t) => {
  const kit = await brokerKit(t)
  const offline = await kit.raw()
  await offline.connect({ clientId: 'share-off', clean: false })
  offline.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/sh/t', qos: 1 }] })
  await offline.nextPacket('suback')
  offline.close()
  const online = await kit.raw()
  await online.connect({ clientId: 'share-on' })
  online.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/sh/t', qos: 1 }] })
  await online.nextPacket('suback')
  await until(() => kit.server.app.broker.stats.clientsConnected === 1, 'one member offline')

  const pub = await kit.raw()
  await pub.connect({ clientId: 'share-pub' })
  for (let i = 0; i < 6; i++) pub.send({ cmd: 'publish', topic: 'sh/t', payload: Buffer.from(String(i)), qos: 1, messageId: i + 1, retain: false, dup: false })
  await until(() => publishes(online).length === 6, 'all six to the online member')
  assert.equal(kit.server.app.broker.sessions.get('share-off')?.queue?.length ?? 0, 0, 'nothing queued for the offline member')
})
