// The RetainedStore contract: what every implementation (in memory, SQLite, and any later one) must do. Run by
// test/state/contracts.test.ts against each; an implementation that keeps its state also runs the durable part
// (what was written is what a new instance on the same file reads).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Message, RetainedLimits, RetainedStore } from '../../src/contracts/state.ts'

export interface RetainedImpl {
  /** a fresh, empty store */
  open(): Promise<RetainedStore> | RetainedStore
  /** for durable stores: write what is pending, then a new instance on the same storage */
  reopen?: (store: RetainedStore) => Promise<RetainedStore>
  close(): void | Promise<void>
}

const NO_LIMIT: RetainedLimits = { maxMessages: 1_000_000, maxBytes: 1 << 30 }

export const retained = (topic: string, payload: string | Buffer, extra: Partial<Message> = {}): Message => ({
  topic,
  payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
  qos: 1,
  retain: true,
  properties: null,
  expiresAt: 0,
  from: null,
  ...extra,
})

const topics = async (store: RetainedStore, filter: string, now = Date.now()) =>
  (await store.match(filter, now)).map((m) => m.topic).sort()

export function retainedStoreContract(name: string, impl: RetainedImpl): void {
  const withStore = (title: string, body: (s: RetainedStore) => Promise<void>) =>
    test(`${name}: ${title}`, async (t) => {
      t.after(() => impl.close())
      await body(await impl.open())
    })

  withStore('set replaces per topic, an empty payload clears, counts and bytes follow', async (s) => {
    assert.ok(s.set(retained('a/b', 'one'), NO_LIMIT))
    assert.ok(s.set(retained('a/b', 'three'), NO_LIMIT))
    assert.ok(s.set(retained('a/c', 'x'), NO_LIMIT))
    assert.equal(s.size, 2)
    assert.equal(s.bytes, 'three'.length + 3 + 1 + 3)
    assert.equal(s.get('a/b')?.payload.toString(), 'three')
    assert.ok(s.set(retained('a/b', ''), NO_LIMIT))
    assert.equal(s.get('a/b'), undefined)
    assert.equal(s.size, 1)
    assert.equal(s.bytes, 1 + 3)
  })

  withStore('limits refuse a new topic, never a replacement or a clear', async (s) => {
    const limits = { maxMessages: 2, maxBytes: 100 }
    assert.ok(s.set(retained('x/1', 'a'), limits))
    assert.ok(s.set(retained('x/2', 'b'), limits))
    assert.equal(s.set(retained('x/3', 'c'), limits), false)
    assert.equal(s.get('x/3'), undefined)
    assert.ok(s.set(retained('x/1', 'replaced'), limits))
    assert.ok(s.set(retained('x/2', ''), limits))
    assert.ok(s.set(retained('x/3', 'c'), limits))
    assert.equal(s.set(retained('big', Buffer.alloc(200)), { maxMessages: 10, maxBytes: 100 }), false)
  })

  withStore('match: + and # through levels, # matches its parent, wildcards skip $ topics', async (s) => {
    for (const t of ['a', 'a/b', 'a/b/c', 'a/x/c', 'b/b', '$SYS/x', '$own/y']) s.set(retained(t, t), NO_LIMIT)
    assert.deepEqual(await topics(s, 'a/+/c'), ['a/b/c', 'a/x/c'])
    assert.deepEqual(await topics(s, 'a/#'), ['a', 'a/b', 'a/b/c', 'a/x/c'])
    assert.deepEqual(await topics(s, '#'), ['a', 'a/b', 'a/b/c', 'a/x/c', 'b/b'])
    assert.deepEqual(await topics(s, '+/b'), ['a/b', 'b/b'])
    assert.deepEqual(await topics(s, '$own/#'), ['$own/y'])
    assert.deepEqual(await topics(s, 'a'), ['a'])
    assert.deepEqual(await topics(s, 'nothing/#'), [])
  })

  withStore('match drops expired messages and forgets them', async (s) => {
    const now = Date.now()
    s.set(retained('e/old', 'x', { expiresAt: now - 1 }), NO_LIMIT)
    s.set(retained('e/new', 'y', { expiresAt: now + 60_000 }), NO_LIMIT)
    assert.deepEqual(await topics(s, 'e/#', now), ['e/new'])
    assert.equal(s.size, 1)
  })

  withStore('list by prefix, ordered by topic, in pages; delete one and by prefix', async (s) => {
    for (let i = 0; i < 25; i++) s.set(retained(`dev/${String(i).padStart(2, '0')}/cfg`, `v${i}`), NO_LIMIT)
    s.set(retained('devices', 'other'), NO_LIMIT)
    s.set(retained('other/1', 'z'), NO_LIMIT)
    const seen: string[] = []
    let after: string | null = null
    for (let pages = 0; pages < 10; pages++) {
      const page = s.list('dev/', after, 10)
      seen.push(...page.items.map((m) => m.topic))
      if (page.next === null) break
      after = page.next
    }
    assert.equal(seen.length, 25)
    assert.deepEqual(seen, [...seen].sort())
    assert.deepEqual(s.list('dev', null, 100).items.length, 26) // a plain string prefix: `devices` too
    assert.deepEqual(s.list('', null, 100).items.length, 27)
    assert.ok(s.delete('dev/00/cfg'))
    assert.equal(s.delete('dev/00/cfg'), false)
    assert.equal(s.deletePrefix('dev/1'), 10)
    assert.equal(s.size, 27 - 11)
    assert.deepEqual(await topics(s, 'dev/1+/#'.replace('1+', '+')), s.list('dev/', null, 100).items.map((m) => m.topic).sort())
  })

  if (impl.reopen === undefined) return
  const reopen = impl.reopen
  withStore('durable: what was set, replaced and cleared is what a new instance reads, properties and all', async (s) => {
    const now = Date.now()
    s.set(retained('keep/1', Buffer.from([0, 1, 2, 255]), {
      qos: 2,
      properties: {
        contentType: 'application/octet-stream', responseTopic: 'r/t', payloadFormatIndicator: false,
        correlationData: Buffer.from([9, 8, 7]), userProperties: { b64: 'not a buffer', k: ['a', 'b'] },
      },
      expiresAt: now + 3_600_000,
    }), NO_LIMIT)
    s.set(retained('keep/2', 'first'), NO_LIMIT)
    s.set(retained('keep/2', 'second'), NO_LIMIT)
    s.set(retained('gone/1', 'x'), NO_LIMIT)
    s.set(retained('gone/1', ''), NO_LIMIT)
    s.set(retained('gone/2', 'y'), NO_LIMIT)
    s.delete('gone/2')
    // (already past its expiry when written: the store holds it until a lookup drops it, a new instance never loads it)
    s.set(retained('expired', 'z', { expiresAt: now - 1 }), NO_LIMIT)
    assert.ok(s.get('expired'))
    const next = await reopen(s)
    assert.deepEqual(next.list('', null, 10).items.map((m) => m.topic), ['keep/1', 'keep/2'])
    assert.equal(next.get('expired'), undefined, 'an expired message is not loaded')
    const one = next.get('keep/1')!
    assert.deepEqual([...one.payload], [0, 1, 2, 255])
    assert.equal(one.qos, 2)
    assert.equal(one.expiresAt, now + 3_600_000)
    assert.deepEqual(one.properties, {
      contentType: 'application/octet-stream', responseTopic: 'r/t', payloadFormatIndicator: false,
      correlationData: Buffer.from([9, 8, 7]), userProperties: { b64: 'not a buffer', k: ['a', 'b'] },
    })
    assert.equal(next.get('keep/2')?.payload.toString(), 'second')
    assert.equal(next.bytes, 4 + 6 + 6 + 6)
    const third = await reopen(next)
    assert.deepEqual(await topics(third, 'keep/+'), ['keep/1', 'keep/2'])
  })
}
