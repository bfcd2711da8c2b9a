// The broker's own encoders for its hottest packets give exactly the bytes mqtt-packet's generate() gives
// (or, for MQTT 5 acknowledgements, the short form the spec allows, which mqtt-packet parses back the same).
// Plus the topic matching rules, one line per case.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqttPacket, { type IPublishPacket, type Packet, type QoS } from 'mqtt-packet'
import { encodeAck, encodePlainPublish, encodePublish, PINGRESP } from '../../src/mqtt/outgoing.ts'
import { isValidTopicFilter, isValidTopicName, parseSharedFilter, TopicTrie, topicMatches } from '../../src/mqtt/topics.ts'
import type { Message } from '../../src/mqtt/message.ts'

function parseOne(buf: Buffer, protocolVersion: number): Packet {
  const parser = mqttPacket.parser({ protocolVersion })
  const got: Packet[] = []
  parser.on('packet', (p: Packet) => got.push(p))
  parser.on('error', (err: Error) => assert.fail(err))
  parser.parse(buf)
  assert.equal(got.length, 1)
  return got[0]
}

const PUBLISH_CASES: Array<{ topic: string; payload: number; qos: QoS; retain: boolean; dup: boolean; id: number }> = [
  { topic: 'a', payload: 0, qos: 0, retain: false, dup: false, id: 0 },
  { topic: 'sensors/kitchen/temp', payload: 64, qos: 0, retain: true, dup: false, id: 0 },
  { topic: 'x/y', payload: 200, qos: 1, retain: false, dup: true, id: 1 },
  { topic: 'ünïcødé/トピック', payload: 10, qos: 2, retain: true, dup: false, id: 65535 },
  { topic: 'big', payload: 20_000, qos: 1, retain: false, dup: false, id: 300 },
  { topic: 'huge', payload: 2_100_000, qos: 0, retain: false, dup: false, id: 0 },
]

for (const c of PUBLISH_CASES) {
  for (const v of [4, 5]) {
    test(`PUBLISH v${v} "${c.topic}" ${c.payload} B qos ${c.qos}${c.retain ? ' retain' : ''}${c.dup ? ' dup' : ''} encodes like mqtt-packet`, () => {
      const payload = Buffer.alloc(c.payload, 0x5a)
      const ours = encodePlainPublish(c.topic, payload, c.qos, c.retain, c.dup, c.id, v === 5)
      const packet: IPublishPacket = { cmd: 'publish', topic: c.topic, payload, qos: c.qos, retain: c.retain, dup: c.dup }
      if (c.qos > 0) packet.messageId = c.id
      assert.ok(ours.equals(mqttPacket.generate(packet, { protocolVersion: v })))
    })
  }
}

test('PUBLISH with v5 properties goes through mqtt-packet and keeps them', () => {
  const msg: Message = {
    topic: 't/1', payload: Buffer.from('hi'), qos: 1, retain: false, from: null,
    properties: { contentType: 'text/plain', userProperties: { a: 'b' } }, expiresAt: 1_000_000 + 9_500,
  }
  const buf = encodePublish(msg, { qos: 1, retain: false, packetId: 7, dup: false, subscriptionIds: [3] }, 5, 1_000_000)
  const p = parseOne(buf, 5) as IPublishPacket
  assert.equal(p.properties?.contentType, 'text/plain')
  assert.deepEqual({ ...p.properties?.userProperties }, { a: 'b' })
  assert.equal(p.properties?.messageExpiryInterval, 9, 'remaining 9.5 s rounds down')
  assert.equal(p.properties?.subscriptionIdentifier, 3)
  assert.equal(p.messageId, 7)
  // the same message to a 3.1.1 client: no properties, plain encoding
  const v4 = encodePublish(msg, { qos: 1, retain: false, packetId: 7, dup: false, subscriptionIds: [3] }, 4, 1_000_000)
  assert.ok(v4.equals(encodePlainPublish('t/1', Buffer.from('hi'), 1, false, false, 7, false)))
})

for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const) {
  test(`${cmd.toUpperCase()} encodes like mqtt-packet (v4) and parses back as Success (v5)`, () => {
    const ours = encodeAck(cmd, 0x1234)
    assert.ok(ours.equals(mqttPacket.generate({ cmd, messageId: 0x1234 } as Packet, { protocolVersion: 4 })))
    const p = parseOne(ours, 5) as { cmd: string; messageId: number; reasonCode: number }
    assert.deepEqual([p.cmd, p.messageId, p.reasonCode], [cmd, 0x1234, 0])
  })
}

test('PINGRESP encodes like mqtt-packet', () => {
  assert.ok(PINGRESP.equals(mqttPacket.generate({ cmd: 'pingresp' })))
})

const MATCH_CASES: Array<[filter: string, topic: string, matches: boolean]> = [
  ['a/b', 'a/b', true],
  ['a/b', 'a/c', false],
  ['a/+', 'a/b', true],
  ['a/+', 'a/b/c', false],
  ['a/+', 'a/', true],
  ['+/b', '/b', true],
  ['a/#', 'a', true],
  ['a/#', 'a/b/c', true],
  ['a/#', 'ab', false],
  ['#', 'a/b', true],
  ['+/#', 'a', true],
  ['+/+', 'a', false],
  ['#', '$SYS/x', false],
  ['+/x', '$SYS/x', false],
  ['$SYS/#', '$SYS/x', true],
  ['$SYS/+', '$SYS/x', true],
  ['a/+/c', 'a/b/c', true],
  ['a/+/c', 'a/b/d', false],
  ['/#', '/a', true],
]

for (const [filter, topic, expected] of MATCH_CASES) {
  test(`filter "${filter}" ${expected ? 'matches' : 'does not match'} "${topic}" (pairwise and trie)`, () => {
    assert.equal(topicMatches(filter, topic), expected)
    const trie = new TopicTrie<string>()
    trie.set(filter, 'c', filter)
    const seen: string[] = []
    trie.match(topic, (v) => seen.push(v))
    assert.deepEqual(seen, expected ? [filter] : [])
  })
}

test('topic names and filters: validity, one line per case', () => {
  for (const [name, ok] of [['a/b', true], ['', false], ['a/+', false], ['a/#', false], ['a\u0000b', false], ['/', true]] as const) {
    assert.equal(isValidTopicName(name), ok, `name "${name}"`)
  }
  for (const [filter, ok] of [['a/#', true], ['#', true], ['a#', false], ['a/#/b', false], ['a/+/b', true], ['a+', false], ['+', true], ['', false]] as const) {
    assert.equal(isValidTopicFilter(filter), ok, `filter "${filter}"`)
  }
  assert.deepEqual(parseSharedFilter('$share/g/a/+'), { group: 'g', filter: 'a/+' })
  assert.equal(parseSharedFilter('a/b'), null)
  assert.equal(parseSharedFilter('$share//a'), undefined)
  assert.equal(parseSharedFilter('$share/g'), undefined)
  assert.equal(parseSharedFilter('$share/g+/a'), undefined)
})

test('the trie forgets a filter once its last subscriber leaves', () => {
  const trie = new TopicTrie<number>()
  trie.set('a/b/c', 'x', 1)
  trie.set('a/b/c', 'y', 2)
  trie.set('a/#', 'x', 3)
  const seen: number[] = []
  trie.match('a/b/c', (v) => seen.push(v))
  assert.deepEqual(seen.sort(), [1, 2, 3])
  assert.ok(trie.delete('a/b/c', 'x'))
  assert.ok(trie.delete('a/b/c', 'y'))
  assert.ok(!trie.delete('a/b/c', 'y'))
  assert.equal(trie.size, 1)
  const after: number[] = []
  trie.match('a/b/c', (v) => after.push(v))
  assert.deepEqual(after, [3])
})
