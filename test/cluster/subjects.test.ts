// The mapping of MQTT topics and filters to NATS subjects (src/cluster/subjects.ts) and the frame of a message between
// nodes (src/cluster/envelope.ts), without a server: every filter's subjects must cover exactly the topics MQTT says
// it matches (a receiving node then matches the exact topic), and a frame must carry every field back.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { escapeLevel, queueOf, subjectsOf } from '../../src/cluster/subjects.ts'
import { decodeEnvelope, encodeEnvelope, sizeOf } from '../../src/cluster/envelope.ts'
import type { Message } from '../../src/contracts/state.ts'

const s = subjectsOf('c1')

/** NATS subject matching: `*` one token, `>` one or more at the end. */
function natsMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.')
  const t = subject.split('.')
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return t.length > i
    if (i >= t.length) return false
    if (p[i] !== '*' && p[i] !== t[i]) return false
  }
  return p.length === t.length
}

/** MQTT topic matching for filters without $-topic rules (the receiver applies those). */
function mqttMatches(filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

test('a level is one token, escaped one-to-one', () => {
  assert.equal(escapeLevel('sensor-1_a'), 'sensor-1_a')
  assert.equal(escapeLevel(''), '%')
  assert.equal(escapeLevel('a.b'), 'a%2Eb')
  assert.equal(escapeLevel('*'), '%2A')
  assert.equal(escapeLevel('>'), '%3E')
  assert.equal(escapeLevel('%'), '%25')
  assert.equal(escapeLevel('a b'), 'a%20b')
  assert.equal(escapeLevel('ü'), '%C3%BC')
  const levels = ['', '%', '%25', 'a.b', 'a%2Eb', '*', '>', 'x y', 'ü', 'plain']
  assert.equal(new Set(levels.map(escapeLevel)).size, levels.length, 'no two levels share a token')
  assert.ok(levels.every((l) => !/[.\s*>]/.test(escapeLevel(l)) || escapeLevel(l) === '%'))
  assert.equal(queueOf('g.1'), 'gg%2E1')
})

test('each filter\'s subjects cover exactly the topics MQTT matches, at both QoS classes', () => {
  const topics = ['a', 'a/b', 'a/b/c', 'a//c', '/a', 'a/', 'x/b', 'a/b.c', 'a/*', 'a/>', 'ü/b']
  const filters = ['a', 'a/b', 'a/+', 'a/#', '#', '+', '+/b', 'a/+/c', '/+', 'a/', '+/+', 'a/b.c', 'a/*', 'ü/#']
  for (const f of filters) {
    const subjects = s.filter(f)
    for (const topic of topics) {
      for (const qos of [0, 1]) {
        const subject = s.topic(topic, qos)
        const hits = subjects.filter((p) => natsMatches(p, subject)).length
        assert.equal(hits > 0, mqttMatches(f, topic), `${f} vs ${topic} (${subjects.join(' | ')} vs ${subject})`)
        assert.ok(hits <= 1, `${f} vs ${topic}: one subject, not two (a message would come twice)`)
      }
    }
  }
  assert.deepEqual(s.filter('a/#'), ['c1.m.*.a.>', 'c1.m.*.a'])
  assert.deepEqual(s.filter('#'), ['c1.m.*.>'])
  assert.equal(s.topic('a/b', 0), 'c1.m.0.a.b')
  assert.equal(s.topic('a/b', 2), 'c1.m.1.a.b')
})

test('QoS 1 and 2 go on the subjects the kept stream captures, QoS 0 never', () => {
  for (const qos of [0, 1, 2]) {
    for (const topic of ['a/b', 'x'.repeat(3000)]) {
      const kept = s.kept.some((p) => natsMatches(p, s.topic(topic, qos)))
      assert.equal(kept, qos > 0, `${topic.slice(0, 10)} at QoS ${qos}`)
    }
  }
})

test('a topic too long for a subject goes on the overflow subject every node listens to', () => {
  const long = Array.from({ length: 400 }, (_, i) => `level${i}`).join('/')
  assert.equal(s.topic(long, 0), 'c1.x.0')
  assert.ok(natsMatches(s.overflow, s.topic(long, 1)))
  // a filter that long is cut to its first levels plus `>`: broader, never narrower (and the topics it matches are
  // that long too: they come on the overflow subject)
  const [broad] = s.filter(long)
  assert.ok(broad.endsWith('.>') && broad.length <= 2100, broad.slice(-20))
  const kept = broad.split('.').slice(3, -1)
  assert.ok(kept.length > 100)
  assert.deepEqual(kept, long.split('/').slice(0, kept.length))
})

test('a frame carries every field of its messages back, in order, with their cluster ids; a QoS 0 payload is a view, a kept one a copy', () => {
  const m: Message = {
    topic: 'a/ü/c', payload: Buffer.from('hello'), qos: 1, retain: true, expiresAt: 1_900_000_000_000, from: 'client-ü',
    properties: { contentType: 'text/plain', correlationData: Buffer.from([1, 2, 3]), userProperties: { k: ['v1', 'v2'] }, payloadFormatIndicator: true, responseTopic: 'r/t' },
  }
  const frame = encodeEnvelope('node-1#abc', 42, [sizeOf(m)])
  const e = decodeEnvelope(frame)!
  assert.equal(e.origin, 'node-1#abc')
  assert.equal(e.seq, 42)
  assert.equal(e.messages.length, 1)
  assert.deepEqual({ ...e.messages[0], payload: e.messages[0].payload.toString() }, { ...m, payload: 'hello', id: 'node-1#abc/42' })
  assert.equal(e.messages[0].payload.buffer === frame.buffer, false, 'QoS 1: its own copy')

  // a run: three messages, one of them QoS 0 with no properties nor publisher, an empty payload, a large one
  const run: Message[] = [
    { ...m, qos: 0, retain: false, properties: null, from: null },
    { ...m, payload: Buffer.alloc(0), qos: 2 },
    { ...m, qos: 0, retain: false, payload: Buffer.alloc(100_000, 7) },
  ]
  const many = encodeEnvelope('n', 0xffffffff, run.map(sizeOf))
  const back = decodeEnvelope(many)!
  assert.deepEqual(back.messages.map((x) => [x.qos, x.retain, x.properties === null, x.from, x.payload.length, x.id]),
    [[0, false, true, null, 5, 'n/4294967295'], [2, true, false, 'client-ü', 0, 'n/0'], [0, false, false, 'client-ü', 100_000, 'n/1']])
  assert.equal(back.messages[2].payload.buffer, many.buffer, 'QoS 0: a view into the frame')

  assert.equal(decodeEnvelope(new Uint8Array([9, 9, 9])), null)
  assert.equal(decodeEnvelope(Buffer.concat([Buffer.from([1]), frame.subarray(1)])), null, 'another version')
  assert.equal(decodeEnvelope(frame.subarray(0, 20)), null, 'cut short')
  assert.equal(decodeEnvelope(Buffer.concat([frame, Buffer.from([0])])), null, 'bytes after the last message')
})
