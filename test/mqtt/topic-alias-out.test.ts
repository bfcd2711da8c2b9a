// Outbound topic aliases (MQTT 5): a client that announces a Topic Alias Maximum gets aliases for the topics it is
// sent, the first time with the topic, then with an empty topic; never more than it accepts, never to a client that
// announced none.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IPublishPacket } from 'mqtt-packet'
import { brokerKit, until, type RawClient } from '../helpers.ts'

const publishes = (c: RawClient) => c.packets.filter((p): p is IPublishPacket => p.cmd === 'publish')

test('MQTT 5: the broker assigns topic aliases up to the client\'s Topic Alias Maximum; a client without one gets none', async (t) => {
  const kit = await brokerKit(t)
  const aliased = await kit.raw({ protocolVersion: 5 })
  await aliased.connect({ clientId: 'aliased', properties: { topicAliasMaximum: 2 } }, 5)
  const plain = await kit.raw({ protocolVersion: 5 })
  await plain.connect({ clientId: 'plain' }, 5)
  for (const c of [aliased, plain]) {
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'very/long/topic/name/#', qos: 1 }] }, 5)
    await c.nextPacket('suback')
  }
  const pub = await kit.raw()
  await pub.connect({ clientId: 'alias-pub' })
  const sends: Array<[string, 0 | 1]> = [['a', 0], ['a', 1], ['a', 0], ['b', 1], ['c', 0], ['b', 0]]
  sends.forEach(([leaf, qos], i) => pub.send({ cmd: 'publish', topic: `very/long/topic/name/${leaf}`, payload: Buffer.from(String(i)),
    qos, messageId: qos ? i + 1 : undefined, retain: false, dup: false }))
  await until(() => publishes(aliased).length === 6 && publishes(plain).length === 6, 'six each')

  const got = publishes(aliased).map((p) => [p.topic, p.properties?.topicAlias ?? null, p.payload.toString()])
  assert.deepEqual(got, [
    ['very/long/topic/name/a', 1, '0'], // a new alias comes with its topic
    ['', 1, '1'],
    ['', 1, '2'],
    ['very/long/topic/name/b', 2, '3'],
    ['very/long/topic/name/c', null, '4'], // the client accepts 2: no third alias
    ['', 2, '5'],
  ])
  for (const p of publishes(plain)) assert.equal(p.properties?.topicAlias, undefined)
  assert.ok(publishes(plain).every((p) => p.topic.startsWith('very/long/topic/name/')))
})
