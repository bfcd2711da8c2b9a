// The JetStream stores of cluster mode (src/cluster/) as two nodes see them: two store instances on the same buckets
// (a random cluster name per test, its buckets deleted after it). Retained messages set or cleared on one node reach
// the other; a session written behind by one node is resumed intact by the other once the first forgets it; the
// write-behind coalesces; a NATS outage never throws into the caller. Needs NATS with JetStream at NATS_URL
// (default nats://127.0.0.1:4222).
import { after, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { destroyBuckets, openBuckets, unpackValue, type ClusterBuckets } from '../../src/cluster/buckets.ts'
import { entriesFilter, retainedKey, sessionKey } from '../../src/cluster/keys.ts'
import { JetStreamRetainedStore } from '../../src/cluster/retained.ts'
import { JetStreamSessionStore } from '../../src/cluster/sessions.ts'
import { MemoryRetainedStore } from '../../src/mqtt/retained.ts'
import { newSession, type Message, type Outgoing, type Queued, type Session, type SessionStore } from '../../src/contracts/state.ts'
import type { Logger } from '../../src/contracts/logger.ts'
import { until } from '../helpers.ts'

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222'
const NO_LIMIT = { maxMessages: 1_000_000, maxBytes: 1 << 30 }

let shared: Promise<NatsConnection> | null = null
const nats = () => (shared ??= connect({ servers: NATS_URL }))
after(async () => {
  if (shared !== null) await (await shared).close()
})

/** What a test opened, closed in reverse order when it ends: its stores, then its buckets. */
const closers = new WeakMap<TestContext, Array<() => Promise<unknown>>>()
function onEnd(t: TestContext, close: () => Promise<unknown>): void {
  let list = closers.get(t)
  if (list === undefined) {
    const fresh: Array<() => Promise<unknown>> = (list = [])
    closers.set(t, fresh)
    t.after(async () => {
      for (const c of fresh.reverse()) await c()
    })
  }
  list.push(close)
}

/** Fresh buckets of a random cluster, deleted when the test ends (after the stores it opened are closed). */
async function cluster(t: TestContext): Promise<ClusterBuckets> {
  const nc = await nats()
  const name = `stores_${randomBytes(6).toString('hex')}`
  const buckets = await openBuckets(nc, name)
  onEnd(t, () => destroyBuckets(nc, name))
  return buckets
}

const msg = (topic: string, payload: string, extra: Partial<Message> = {}): Message => ({
  topic, payload: Buffer.from(payload), qos: 1, retain: true, properties: null, expiresAt: 0, from: null, ...extra,
})

async function retainedNode(t: TestContext, b: ClusterBuckets, nodeId: string): Promise<JetStreamRetainedStore> {
  const store = await JetStreamRetainedStore.open(b, new MemoryRetainedStore(), { nodeId })
  onEnd(t, () => store.close())
  return store
}

function sessionNode(t: TestContext, b: ClusterBuckets, opts: ConstructorParameters<typeof JetStreamSessionStore>[1] = {}): JetStreamSessionStore {
  const store = new JetStreamSessionStore(b, opts)
  onEnd(t, () => store.close(500))
  return store
}

async function keysOf(b: ClusterBuckets, filter = '>'): Promise<string[]> {
  const out: string[] = []
  for await (const k of await b.sessions.keys(filter)) out.push(k)
  return out.sort()
}

const lastSeq = async (b: ClusterBuckets): Promise<number> => (await b.sessions.status()).streamInfo.state.last_seq

test('retained: a message set on one node is matched on the other; cleared, it disappears there', async (t) => {
  const b = await cluster(t)
  const a = await retainedNode(t, b, 'a')
  const other = await retainedNode(t, b, 'b')
  assert.ok(a.set(msg('dev/1/state', 'on', { properties: { contentType: 'text/plain', correlationData: Buffer.from([1, 2]) } }), NO_LIMIT))
  await until(() => other.get('dev/1/state') !== undefined, 'node b sees the message set on node a')
  const [m] = await other.match('dev/+/state', Date.now())
  assert.equal(m.payload.toString(), 'on')
  assert.deepEqual(m.properties, { contentType: 'text/plain', correlationData: Buffer.from([1, 2]) })
  assert.equal(other.size, 1)
  assert.ok(a.set(msg('dev/1/state', ''), NO_LIMIT))
  await until(() => other.get('dev/1/state') === undefined, 'the clear reaches node b')
  assert.equal(other.size, 0)
  // the other way, and deletePrefix
  other.set(msg('x/1', '1'), NO_LIMIT)
  other.set(msg('x/2', '2'), NO_LIMIT)
  await until(() => a.size === 2, 'node a sees both messages of node b')
  assert.equal(a.deletePrefix('x/'), 2)
  await until(() => other.size === 0, 'the deletes by prefix reach node b')
  // a node that starts later loads what the bucket holds; a topic too long for a key (hashed) works the same
  const long = `long/${'t'.repeat(3000)}`
  a.set(msg(long, 'L'), NO_LIMIT)
  a.set(msg('late/1', 'here'), NO_LIMIT)
  await a.flush()
  const late = await retainedNode(t, b, 'c')
  assert.equal(late.get('late/1')?.payload.toString(), 'here')
  assert.equal(late.get(long)?.payload.toString(), 'L')
  a.delete(long)
  await until(() => late.get(long) === undefined && other.get(long) === undefined, 'the clear of a hashed key reaches the others')
  assert.equal(a.stats.errors, 0)
})

test('retained: two nodes writing the same topics at once end with the same values, the bucket\'s', async (t) => {
  const b = await cluster(t)
  const a = await retainedNode(t, b, 'a')
  const other = await retainedNode(t, b, 'b')
  for (let i = 0; i < 200; i++) {
    a.set(msg(`race/${i % 5}`, `a${i}`), NO_LIMIT)
    other.set(msg(`race/${i % 5}`, `b${i}`), NO_LIMIT)
    if (i % 20 === 0) await new Promise((r) => setImmediate(r))
  }
  await Promise.all([a.flush(), other.flush()])
  const inBucket = async () => {
    const out: Record<string, string> = {}
    for (let i = 0; i < 5; i++) {
      const e = await b.retained.get(retainedKey(`race/${i}`))
      out[`race/${i}`] = e === null ? '' : unpackValue(e.value).payload.toString()
    }
    return out
  }
  const local = (s: JetStreamRetainedStore) => Object.fromEntries(s.list('race/', null, 10).items.map((m) => [m.topic, m.payload.toString()]))
  const expected = await inBucket()
  await until(() => JSON.stringify(local(a)) === JSON.stringify(expected) && JSON.stringify(local(other)) === JSON.stringify(expected),
    `both nodes converge on the bucket's values ${JSON.stringify(expected)}`)
})

/** What the core does with a persistent session: subscriptions, a Will, 3 QoS 1 queued, one QoS 2 in PUBREL. */
function populate(store: SessionStore, clientId: string): Session {
  const s = newSession(clientId, 3600)
  store.set(s)
  store.savedSession(s)
  s.subscriptions.set('cmd/#', { clientId, filter: 'cmd/#', qos: 1, noLocal: true, retainAsPublished: false, retainHandling: 1, subscriptionIds: [3] })
  store.savedSubscription(s, 'cmd/#')
  s.subscriptions.set('$share/g/jobs', { clientId, filter: '$share/g/jobs', qos: 2, noLocal: false, retainAsPublished: true, retainHandling: 0, subscriptionIds: [] })
  store.savedSubscription(s, '$share/g/jobs')
  s.will = { topic: `${clientId}/gone`, payload: Buffer.from('bye'), qos: 1, retain: false, properties: { userProperties: { why: 'test' } }, expirySec: undefined, delaySec: 10 }
  store.savedSession(s)
  const o: Outgoing = {
    seq: s.nextSeq++, packetId: 7, message: msg('jobs', 'q2', { qos: 2, retain: false, from: 'pub' }), qos: 2, retain: false, dup: true,
    subscriptionIds: [], stage: 'publish', unsent: false,
  }
  ;(s.inflight ??= new Map()).set(7, o)
  store.savedEntry(s, o)
  o.stage = 'pubrel'
  store.savedEntry(s, o)
  for (let i = 1; i <= 3; i++) {
    const q: Queued = { seq: s.nextSeq++, message: msg(`cmd/${i}`, `m${i}`, { retain: false, expiresAt: Date.now() + 60_000 }), qos: 1, retain: false, subscriptionIds: [3] }
    ;(s.queue ??= []).push(q)
    s.queuedBytes += q.message.payload.length
    store.savedEntry(s, q)
  }
  s.incomingQos2 = new Set([21])
  s.disconnectedAt = 1_700_000_000_000
  store.savedSession(s)
  return s
}

test('sessions: written by node A, resumed intact by node B once A forgets it; the claim hook is awaited first', async (t) => {
  const b = await cluster(t)
  // A writes only when asked (its interval is long): B reads what forget() wrote, so only if the hook was awaited
  const a = sessionNode(t, b, { nodeId: 'A', flushIntervalMs: 60_000 })
  const order: string[] = []
  const nodeB = sessionNode(t, b, {
    nodeId: 'B',
    beforeResume: async (clientId) => {
      order.push(`claim ${clientId}`)
      await new Promise((r) => setTimeout(r, 30))
      await a.forget(clientId)
      order.push('released')
    },
  })
  const original = populate(a, 'dev/7')
  assert.equal(await nodeB.peek('dev/7'), undefined, 'nothing written yet')
  const r = await nodeB.resume('dev/7')
  assert.deepEqual(order, ['claim dev/7', 'released'])
  assert.ok(r)
  assert.equal(a.get('dev/7'), undefined, 'A dropped it from memory')
  assert.equal(nodeB.get('dev/7'), r, 'B holds it now')
  assert.equal(await nodeB.resume('dev/7'), r, 'held: no second claim')
  assert.equal(order.length, 2)
  assert.deepEqual([...r.subscriptions.values()], [...original.subscriptions.values()])
  assert.deepEqual(r.will, original.will)
  assert.equal(r.disconnectedAt, 1_700_000_000_000)
  assert.equal(r.expiryIntervalSec, 3600)
  assert.deepEqual([...r.incomingQos2!], [21])
  assert.deepEqual(r.queue, original.queue)
  assert.equal(r.queuedBytes, 6)
  assert.deepEqual([...r.inflight!.entries()], [...original.inflight!.entries()])
  assert.equal(r.inflight!.get(7)!.stage, 'pubrel')
  assert.equal(r.nextSeq, original.nextSeq)
  assert.equal(r.nextPacketId, 8)
  // the record names the node that wrote it; peek reads without holding
  const peeked = await a.peek('dev/7')
  assert.equal(peeked?.queue?.length, 3)
  assert.equal(a.get('dev/7'), undefined)
  assert.equal(await nodeB.resume('nobody'), undefined)
})

test('sessions: delete removes every key of the session from the bucket', async (t) => {
  const b = await cluster(t)
  const a = sessionNode(t, b)
  populate(a, 'gone')
  populate(a, 'stays')
  await a.flush()
  assert.deepEqual((await keysOf(b, entriesFilter('gone'))).length, 4)
  a.delete('gone')
  await a.flush()
  assert.deepEqual(await keysOf(b, entriesFilter('gone')), [])
  assert.deepEqual(await keysOf(b, sessionKey('gone')), [])
  assert.equal(await a.peek('gone'), undefined)
  assert.equal((await keysOf(b)).length, 5, 'the other session keeps its record and 4 entries')
  // deleted on a node that does not hold it (a session left by a dead node): its keys go too
  const other = sessionNode(t, b)
  other.delete('stays')
  await other.flush()
  assert.deepEqual(await keysOf(b), [])
})

test('sessions: the write-behind coalesces per key (writes counted)', async (t) => {
  const b = await cluster(t)
  const store = sessionNode(t, b)
  const s = newSession('busy', 3600)
  store.set(s)
  store.savedSession(s)
  const entry = (i: number): Queued => ({ seq: s.nextSeq++, message: msg('t', `m${i}`, { retain: false }), qos: 1, retain: false, subscriptionIds: [] })
  const before = await lastSeq(b)
  // 1,000 messages queued and acknowledged within one interval: only the record is written
  for (let i = 0; i < 1000; i++) {
    const q = entry(i)
    store.savedEntry(s, q)
    store.droppedEntry(s, q)
  }
  await store.flush()
  assert.deepEqual({ puts: store.stats.puts, purges: store.stats.purges - 1 /* the new session's stale entries */ }, { puts: 1, purges: 0 })
  assert.equal(await lastSeq(b) - before, 1)
  assert.deepEqual(await keysOf(b), [sessionKey('busy')])
  // a steady flow with 10 in flight over ~20 batches: most entries are acknowledged before their batch is written
  const stats0 = { ...store.stats }
  const window: Queued[] = []
  for (let i = 0; i < 1000; i++) {
    const q = entry(i)
    window.push(q)
    store.savedEntry(s, q)
    if (window.length > 10) store.droppedEntry(s, window.shift()!)
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 25))
  }
  await store.flush()
  const writes = store.stats.puts - stats0.puts + store.stats.purges - stats0.purges
  const batches = store.stats.batches - stats0.batches
  t.diagnostic(`steady flow: 2,000 notes -> ${writes} KV writes in ${batches} batches`)
  assert.ok(writes <= batches * 21 + 20, `${writes} writes for ${batches} batches`)
  assert.deepEqual((await keysOf(b, entriesFilter('busy'))).length, 10, 'the 10 still queued are in the bucket')
  const peeked = (await store.peek('busy'))!
  assert.deepEqual(peeked.queue!.map((q) => q.seq), window.map((q) => q.seq))
  assert.equal(store.stats.errors, 0)
})

test('sessions and retained: a NATS outage never throws into the caller; writes are kept and retried', async (t) => {
  const nc = await connect({ servers: NATS_URL })
  onEnd(t, () => nc.close())
  const name = `outage_${randomBytes(6).toString('hex')}`
  const b = await openBuckets(nc, name)
  onEnd(t, async () => destroyBuckets(await nats(), name))
  const errors: unknown[] = []
  const logger: Logger = { debug() {}, info() {}, warn() {}, error: (o) => void errors.push(o) }
  const retained = await JetStreamRetainedStore.open(b, new MemoryRetainedStore(), { logger, retryMs: 50 })
  const sessions = new JetStreamSessionStore(b, { logger, retryMs: 50, forgetTimeoutMs: 200 })
  onEnd(t, () => retained.close(100))
  onEnd(t, () => sessions.close(100))
  await nc.close()
  // the broker goes on: every call returns as before
  assert.ok(retained.set(msg('a/b', 'kept'), NO_LIMIT))
  assert.equal(retained.get('a/b')?.payload.toString(), 'kept')
  const s = populate(sessions, 'offline')
  assert.equal(sessions.get('offline'), s)
  await retained.flush()
  await sessions.flush()
  await until(() => retained.stats.errors >= 2 && sessions.stats.errors >= 2, 'the writes failed and were tried again')
  assert.ok(retained.pending > 0 && sessions.pending > 0, 'the changes are still pending')
  assert.ok(errors.length >= 2, 'the failures were logged')
  // what must reach NATS says so, as a rejection: a resume the core answers with Server Unavailable, a forget that keeps it
  await assert.rejects(async () => sessions.resume('elsewhere'))
  await assert.rejects(sessions.forget('offline'), /could not be written/)
  assert.equal(sessions.get('offline'), s, 'kept here')
})
