// The SessionStore contract: what every implementation (in memory, SQLite, and any later one) must do, driven the
// way the core drives it (mutate the Session, then note the change). Run by test/state/contracts.test.ts against
// each; a durable implementation also shows that a new instance on the same storage reads back what was noted.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { newSession, NEVER_EXPIRES, type Outgoing, type Queued, type Session, type SessionStore, type Subscription } from '../../src/contracts/state.ts'
import { retained as message } from './retained-contract.ts'

export interface SessionImpl {
  open(): Promise<SessionStore> | SessionStore
  /** durable stores: flush, then a new instance on the same storage; `crashedAt` dates sessions held at the time */
  reopen?: (store: SessionStore, crashedAt: number) => Promise<SessionStore>
  /**
   * durable stores: how a reopened store takes up a session kept in its storage (default: get, as a store that loads
   * every session at start holds it already; a clustered store reads it from its bucket)
   */
  take?: (store: SessionStore, clientId: string) => Promise<Session | undefined>
  close(): void | Promise<void>
}

const sub = (clientId: string, filter: string, extra: Partial<Subscription> = {}): Subscription => ({
  clientId, filter, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionIds: [], ...extra,
})

/** What the core does: a session opened by a connection. */
function open(store: SessionStore, clientId: string, expirySec: number): Session {
  const s = newSession(clientId, expirySec)
  store.set(s)
  store.savedSession(s)
  return s
}

function subscribe(store: SessionStore, s: Session, x: Subscription): void {
  s.subscriptions.set(x.filter, x)
  store.savedSubscription(s, x.filter)
}

function enqueue(store: SessionStore, s: Session, topic: string, payload: string): Queued {
  const q: Queued = { seq: s.nextSeq++, message: message(topic, payload, { retain: false }), qos: 1, retain: false, subscriptionIds: [] }
  ;(s.queue ??= []).push(q)
  s.queuedBytes += q.message.payload.length
  store.savedEntry(s, q)
  return q
}

/** The head of the queue goes on the wire under `packetId`. */
function send(store: SessionStore, s: Session, packetId: number, qos: 1 | 2 = 1): Outgoing {
  const q = s.queue!.shift()!
  s.queuedBytes -= q.message.payload.length
  const o: Outgoing = { seq: q.seq, packetId, message: q.message, qos, retain: q.retain, dup: false,
    subscriptionIds: q.subscriptionIds, stage: 'publish', unsent: false }
  ;(s.inflight ??= new Map()).set(packetId, o)
  store.savedEntry(s, o)
  return o
}

function ack(store: SessionStore, s: Session, packetId: number): void {
  const o = s.inflight!.get(packetId)!
  s.inflight!.delete(packetId)
  store.droppedEntry(s, o)
}

export function sessionStoreContract(name: string, impl: SessionImpl): void {
  const withStore = (title: string, body: (s: SessionStore) => Promise<void>) =>
    test(`${name}: ${title}`, async (t) => {
      t.after(() => impl.close())
      await body(await impl.open())
    })

  withStore('holds the working sessions: set, get, resume, all, size, delete', async (store) => {
    const a = open(store, 'a', 60)
    const b = open(store, 'b', 0)
    assert.equal(store.get('a'), a)
    assert.equal(await store.resume('b'), b)
    assert.equal(await store.resume('nobody'), undefined)
    assert.equal(store.size, 2)
    assert.deepEqual([...store.all()].map((s) => s.clientId).sort(), ['a', 'b'])
    subscribe(store, a, sub('a', 'x/#'))
    enqueue(store, a, 'x/1', 'p')
    store.delete('a')
    assert.equal(store.get('a'), undefined)
    assert.equal(store.size, 1)
    await store.flush()
  })

  if (impl.reopen === undefined) return
  const reopen = impl.reopen
  const take = impl.take ?? ((store: SessionStore, clientId: string) => Promise.resolve(store.get(clientId)))

  withStore('durable: subscriptions with their v5 options, queue in order, in-flight both ways, Will, expiry', async (store) => {
    const s = open(store, 'dev/1', 3600)
    subscribe(store, s, sub('dev/1', 'cfg/#', { qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2, subscriptionIds: [7] }))
    subscribe(store, s, sub('dev/1', '$share/g/jobs/+'))
    subscribe(store, s, sub('dev/1', 'temporary'))
    s.subscriptions.delete('temporary')
    store.savedSubscription(s, 'temporary')
    for (let i = 1; i <= 5; i++) enqueue(store, s, `cfg/${i}`, `m${i}`)
    send(store, s, 11)                      // m1 in flight, waiting PUBACK
    const o2 = send(store, s, 12, 2)        // m2 QoS 2, PUBREC received
    o2.stage = 'pubrel'
    store.savedEntry(s, o2)
    send(store, s, 13)
    ack(store, s, 13)                       // m3 done
    s.incomingQos2 = new Set([4, 9])
    s.will = { topic: 'dev/1/status', payload: Buffer.from('gone'), qos: 1, retain: true, properties: { contentType: 'text/plain' },
      expirySec: 30, delaySec: 5 }
    s.disconnectedAt = 1_700_000_000_000
    store.savedSession(s)

    const next = await reopen(store, 1_800_000_000_000)
    const r = (await take(next, 'dev/1'))!
    assert.equal(r.expiryIntervalSec, 3600)
    assert.equal(r.disconnectedAt, 1_700_000_000_000)
    assert.deepEqual([...r.subscriptions.keys()].sort(), ['$share/g/jobs/+', 'cfg/#'])
    assert.deepEqual(r.subscriptions.get('cfg/#'), sub('dev/1', 'cfg/#', { qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2, subscriptionIds: [7] }))
    assert.deepEqual(r.queue!.map((q) => q.message.payload.toString()), ['m4', 'm5'])
    assert.equal(r.queuedBytes, 4)
    assert.deepEqual([...r.inflight!.values()].map((o) => [o.packetId, o.message.payload.toString(), o.qos, o.stage]),
      [[11, 'm1', 1, 'publish'], [12, 'm2', 2, 'pubrel']])
    assert.ok(r.nextSeq > Math.max(...r.queue!.map((q) => q.seq)), 'new entries get new seqs')
    assert.deepEqual([...r.incomingQos2!].sort(), [4, 9])
    assert.equal(r.will?.topic, 'dev/1/status')
    assert.equal(r.will?.payload.toString(), 'gone')
    assert.deepEqual(r.will?.properties, { contentType: 'text/plain' })
    assert.equal(r.will?.delaySec, 5)
    assert.equal(r.will?.expirySec, 30)
  })

  withStore('durable: a session held by a connection at the crash is dated from crashedAt', async (store) => {
    const s = open(store, 'online', NEVER_EXPIRES)
    assert.equal(s.disconnectedAt, null)
    const next = await reopen(store, 1_234_567)
    const online = await take(next, 'online')
    assert.equal(online?.disconnectedAt, 1_234_567)
    assert.equal(online?.expiryIntervalSec, NEVER_EXPIRES)
  })

  withStore('durable: a session that ends with its connection is kept only for its Will', async (store) => {
    const clean = open(store, 'clean', 0)
    subscribe(store, clean, sub('clean', 'a'))
    const withWill = open(store, 'will', 0)
    withWill.will = { topic: 'w', payload: Buffer.from('x'), qos: 0, retain: false, properties: null, expirySec: undefined, delaySec: 0 }
    store.savedSession(withWill)
    subscribe(store, withWill, sub('will', 'b'))
    let next = await reopen(store, Date.now())
    assert.equal(await take(next, 'clean'), undefined)
    const w = (await take(next, 'will'))!
    assert.equal(w.will?.topic, 'w')
    assert.equal(w.subscriptions.size, 0)
    // the connection ended normally: the Will is discarded and the session with it
    w.will = null
    next.savedSession(w)
    next.delete('will')
    next = await reopen(next, Date.now())
    assert.equal(await take(next, 'will'), undefined)
    assert.equal(next.size, 0)
  })

  withStore('durable: a deleted session leaves nothing; a new one under the same id starts empty', async (store) => {
    const old = open(store, 'same', 60)
    subscribe(store, old, sub('same', 'old/#'))
    enqueue(store, old, 'old/1', 'x')
    let next = await reopen(store, Date.now())
    assert.ok(await take(next, 'same'))
    next.delete('same')
    const fresh = open(next, 'same', 60)
    subscribe(next, fresh, sub('same', 'new/#'))
    next = await reopen(next, Date.now())
    const r = (await take(next, 'same'))!
    assert.deepEqual([...r.subscriptions.keys()], ['new/#'])
    assert.equal(r.queue, null)
  })

  withStore('durable: entries acknowledged after they were written are deleted; the rest stay in order', async (store) => {
    const s = open(store, 'q', 60)
    for (let i = 1; i <= 4; i++) enqueue(store, s, 't', `m${i}`)
    let next = await reopen(store, Date.now())
    const r = (await take(next, 'q'))!
    assert.deepEqual(r.queue!.map((q) => q.message.payload.toString()), ['m1', 'm2', 'm3', 'm4'])
    send(next, r, 1)
    send(next, r, 2)
    ack(next, r, 1)
    enqueue(next, r, 't', 'm5')
    next = await reopen(next, Date.now())
    const r2 = (await take(next, 'q'))!
    assert.deepEqual([...r2.inflight!.values()].map((o) => o.message.payload.toString()), ['m2'])
    assert.deepEqual(r2.queue!.map((q) => q.message.payload.toString()), ['m3', 'm4', 'm5'])
  })
}
