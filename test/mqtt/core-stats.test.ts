// The broker's gauges are read from what they count: they follow the stores even where the stores change on
// their own (an expired retained message is dropped when a subscribe finds it).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Broker } from '../../src/mqtt/broker.ts'
import { newSession } from '../../src/mqtt/session.ts'
import { DEFAULT_SETTINGS } from '../../src/settings/schema.ts'

test('retained and subscription gauges follow their stores', async (t) => {
  const broker = new Broker({ settings: { version: 1, values: DEFAULT_SETTINGS } })
  t.after(() => broker.close())
  const message = { payload: Buffer.from('x'), qos: 0 as const, retain: true, properties: null, from: null }
  broker.publish({ ...message, topic: 'kept', expiresAt: 0 })
  broker.publish({ ...message, topic: 'stale', expiresAt: Date.now() - 1 })
  assert.equal(broker.stats.retainedMessages, 2)
  assert.equal(broker.stats.messagesPublished, 2)
  // a subscriber's lookup drops the expired one from the store, and the gauge with it
  assert.deepEqual((await broker.retained.match('#', Date.now())).map((m) => m.topic), ['kept'])
  assert.equal(broker.stats.retainedMessages, 1)

  const state = newSession('c', 0)
  const sub = { clientId: 'c', filter: 'a/#', qos: 0 as const, noLocal: false, retainAsPublished: false,
    retainHandling: 0, subscriptionIds: [] }
  assert.ok(broker.subscribe(state, sub))
  assert.ok(broker.subscribe(state, { ...sub, filter: '$share/g/b' }))
  assert.equal(broker.stats.subscriptions, 2)
  assert.ok(broker.unsubscribe(state, 'a/#'))
  assert.equal(broker.stats.subscriptions, 1)
  assert.equal(broker.stats.connectionsOpen, 0)
  assert.equal(broker.stats.clientsConnected, 0)
})
