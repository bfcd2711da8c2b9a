// The in-memory router remembers the route of each published topic; a remembered route must always be the route the
// trie gives now: every subscription added, replaced or removed is seen at the next message, shared groups still take
// turns, and a client's overlapping subscriptions are still merged.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { QoS } from 'mqtt-packet'
import { MemoryRouter } from '../../src/mqtt/router.ts'
import type { Subscription } from '../../src/contracts/state.ts'

const sub = (clientId: string, filter: string, qos: QoS = 0, subscriptionIds: number[] = []): Subscription =>
  ({ clientId, filter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionIds })

const targets = (r: MemoryRouter, topic: string) => r.match(topic).map((m) => `${m.clientId}@${m.qos}`).sort()

test('a remembered route follows every change of the subscriptions', () => {
  const r = new MemoryRouter()
  r.add(sub('a', 'x/+'))
  assert.deepEqual(targets(r, 'x/1'), ['a@0'])
  assert.deepEqual(targets(r, 'x/1'), ['a@0'], 'the same again, from memory')
  r.add(sub('b', 'x/#', 1))
  assert.deepEqual(targets(r, 'x/1'), ['a@0', 'b@1'], 'a new subscription')
  r.add(sub('a', 'x/+', 2))
  assert.deepEqual(targets(r, 'x/1'), ['a@2', 'b@1'], 'a replaced subscription')
  r.remove('b', 'x/#')
  assert.deepEqual(targets(r, 'x/1'), ['a@2'], 'a removed subscription')
  r.remove('a', 'x/+')
  assert.deepEqual(targets(r, 'x/1'), [], 'nobody')
  r.add(sub('c', 'x/1'))
  assert.deepEqual(targets(r, 'x/1'), ['c@0'], 'a topic with no route before')
})

test('shared groups still take turns and overlapping subscriptions are still merged, message after message', () => {
  const r = new MemoryRouter()
  r.add(sub('m1', '$share/g/s/#'))
  r.add(sub('m2', '$share/g/s/#'))
  const picks = Array.from({ length: 4 }, () => r.match('s/t').map((m) => m.clientId).join())
  assert.deepEqual(picks, ['m1', 'm2', 'm1', 'm2'])
  r.add(sub('o', 'o/+', 0, [1]))
  r.add(sub('o', 'o/#', 1, [2]))
  for (let i = 0; i < 2; i++) {
    const [m] = r.match('o/t')
    assert.equal(r.match('o/t').length, 1)
    assert.equal(m.qos, 1)
    assert.deepEqual([...m.subscriptionIds].sort(), [1, 2])
  }
})

test('many topics: routes stay right past the number remembered', () => {
  const r = new MemoryRouter()
  r.add(sub('all', 'm/#'))
  r.add(sub('even', 'm/+/even'))
  for (let i = 0; i < 12_000; i++) {
    const topic = `m/${i}/${i % 2 === 0 ? 'even' : 'odd'}`
    assert.deepEqual(targets(r, topic), i % 2 === 0 ? ['all@0', 'even@0'] : ['all@0'])
  }
  assert.deepEqual(targets(r, 'm/0/even'), ['all@0', 'even@0'])
})
