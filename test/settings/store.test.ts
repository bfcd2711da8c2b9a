// The versioned settings store on a real SQLite database: versions, validation, If-Match, rollback, history,
// change events, durability, and write failures that change nothing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import Sqlite from 'better-sqlite3'
import { openDatabase } from '../../src/db/open.ts'
import { createSettingsStore, type SettingsVersion } from '../../src/settings/store.ts'
import { DEFAULT_SETTINGS, SETTING_KEYS, type SettingsValues } from '../../src/settings/schema.ts'
import { tempDir } from '../helpers.ts'
import { httpStatusOf } from '../../src/errors.ts'

interface LogLine { level: 'info' | 'error'; obj: Record<string, unknown>; msg?: string }

function setup(t: { after(fn: () => void): void }, path = ':memory:') {
  const { db } = openDatabase(path, { busyTimeoutMs: 50 })
  t.after(() => db.close())
  const logs: LogLine[] = []
  const logger = {
    info: (obj: object, msg?: string) => { logs.push({ level: 'info', obj: obj as Record<string, unknown>, msg }) },
    error: (obj: object, msg?: string) => { logs.push({ level: 'error', obj: obj as Record<string, unknown>, msg }) },
  }
  const store = createSettingsStore(db, { logger })
  return { db, store, logs }
}

const rowCount = (db: Sqlite.Database) => db.prepare('SELECT count(*) FROM settings_versions').pluck().get() as number

type Coded = Error & { statusCode?: number; code?: string; fields?: Array<{ field: string; rule: string }> }
const coded = (statusCode: number, code: string, fields?: Array<[string, string]>) => (err: Coded) => {
  assert.equal(httpStatusOf(err), statusCode, err.message)
  assert.equal(err.code, code)
  if (fields) assert.deepEqual(err.fields?.map((f) => [f.field, f.rule]), fields)
  return true
}

test('first start seeds version 1 from the defaults; a second store on the same database does not reseed', (t) => {
  const { db, store } = setup(t)
  const v1 = store.current()
  assert.equal(v1.version, 1)
  assert.deepEqual(v1.values, DEFAULT_SETTINGS)
  assert.equal(v1.updatedBy, 'system')
  assert.ok(!Number.isNaN(Date.parse(v1.updatedAt)))
  assert.ok(Object.isFrozen(v1) && Object.isFrozen(v1.values))
  const again = createSettingsStore(db, { logger: { info() {}, error() {} } })
  assert.equal(again.current().version, 1)
  assert.equal(rowCount(db), 1)
  assert.deepEqual(store.defaults(), DEFAULT_SETTINGS)
})

test('update merges a partial change into a new full version, emits change before returning, logs one line', (t) => {
  const { store, logs } = setup(t)
  const seen: SettingsVersion[] = []
  store.on('change', (v) => seen.push(v))
  const v2 = store.update({ connectTimeoutMs: 300, keepaliveMultiplier: 2 }, { actor: 'alice', comment: '  slow links  ' })
  assert.equal(v2.version, 2)
  assert.deepEqual(v2.values, { ...DEFAULT_SETTINGS, connectTimeoutMs: 300, keepaliveMultiplier: 2 })
  assert.equal(v2.updatedBy, 'alice')
  assert.equal(v2.comment, 'slow links')
  assert.deepEqual(seen, [v2], 'listener ran synchronously, before update() returned')
  assert.equal(store.current(), v2)
  assert.deepEqual(store.get(2), v2)
  assert.equal(store.get(3), null)
  const info = logs.filter((l) => l.level === 'info')
  assert.equal(info.length, 1)
  assert.deepEqual(info[0].obj, { settingsVersion: 2, actor: 'alice', changed: ['connectTimeoutMs', 'keepaliveMultiplier'], comment: 'slow links' })
  assert.match(info[0].msg ?? '', /settings version 2 by alice: connectTimeoutMs, keepaliveMultiplier/)
})

test('a listener that throws is logged; the change stands and the other listeners still run', (t) => {
  const { store, logs } = setup(t)
  const after: number[] = []
  store.on('change', () => { throw new Error('listener broke') })
  store.on('change', (v) => after.push(v.version))
  const v = store.update({ maxConnections: 5 }, { actor: 'a' })
  assert.equal(v.version, 2)
  assert.deepEqual(after, [2])
  assert.equal(store.current().values.maxConnections, 5)
  assert.ok(logs.some((l) => l.level === 'error' && /listener failed/.test(l.msg ?? '')))
  const off = (x: SettingsVersion) => after.push(-x.version)
  store.on('change', off)
  store.off('change', off)
  store.update({ maxConnections: 6 }, { actor: 'a' })
  assert.deepEqual(after, [2, 3])
})

test('replace (PUT) needs every key and replaces the values', (t) => {
  const { store } = setup(t)
  const all: SettingsValues = { ...DEFAULT_SETTINGS, maxPacketSize: 4096, serverKeepaliveSec: 30 }
  const v = store.update(all, { actor: 'a', replace: true })
  assert.deepEqual(v.values, all)
  const { maxPacketSize: _, ...missingOne } = all
  assert.throws(() => store.update(missingOne, { actor: 'a', replace: true }), coded(400, 'INVALID_INPUT', [['maxPacketSize', 'required']]))
})

test('bad values are refused with the field and the rule, and nothing is stored or emitted', async (t) => {
  const { db, store } = setup(t)
  let events = 0
  store.on('change', () => { events++ })
  const cases: Array<[string, unknown, Array<[string, string]>]> = [
    ['unknown key', { connectTimeoutMS: 5000 }, [['connectTimeoutMS', 'unknown key']]],
    ['string for an integer', { connectTimeoutMs: '5000' }, [['connectTimeoutMs', 'type integer']]],
    ['fraction for an integer', { maxConnections: 1.5 }, [['maxConnections', 'type integer']]],
    ['below minimum', { connectTimeoutMs: 99 }, [['connectTimeoutMs', 'minimum 100']]],
    ['above maximum', { connectTimeoutMs: 600001 }, [['connectTimeoutMs', 'maximum 600000']]],
    ['multiplier below 1', { keepaliveMultiplier: 0.5 }, [['keepaliveMultiplier', 'minimum 1']]],
    ['number for a boolean', { allowZeroKeepalive: 0 }, [['allowZeroKeepalive', 'type boolean']]],
    ['zero for nullable', { serverKeepaliveSec: 0 }, [['serverKeepaliveSec', 'null or minimum 1']]],
    ['string for nullable', { serverKeepaliveSec: '30' }, [['serverKeepaliveSec', 'null or type integer']]],
    ['null for a non-nullable', { maxPacketSize: null }, [['maxPacketSize', 'type integer']]],
    ['empty change', {}, [['values', 'minProperties 1']]],
    ['not an object', [1, 2], [['values', 'type object']]],
    ['several at once', { connectTimeoutMs: 0, bogus: true }, [['bogus', 'unknown key'], ['connectTimeoutMs', 'minimum 100']]],
    ['nullable above maximum', { serverKeepaliveSec: 70000 }, [['serverKeepaliveSec', 'null or maximum 65535']]],
  ]
  for (const [name, patch, fields] of cases) {
    await t.test(name, () => {
      assert.throws(() => store.update(patch as Partial<SettingsValues>, { actor: 'a' }), coded(400, 'INVALID_INPUT', fields))
    })
  }
  assert.equal(rowCount(db), 1)
  assert.equal(events, 0)
  assert.equal(store.current().version, 1)
})

test('cross-field rule serverKeepaliveSec <= maxKeepaliveSec, whichever side the change touches', (t) => {
  const { db, store } = setup(t)
  store.update({ maxKeepaliveSec: 60 }, { actor: 'a' })
  assert.throws(
    () => store.update({ serverKeepaliveSec: 61 }, { actor: 'a' }),
    coded(400, 'INVALID_INPUT', [['serverKeepaliveSec', 'serverKeepaliveSec <= maxKeepaliveSec']]),
  )
  store.update({ serverKeepaliveSec: 60 }, { actor: 'a' })
  assert.throws(
    () => store.update({ maxKeepaliveSec: 59 }, { actor: 'a' }),
    coded(400, 'INVALID_INPUT', [['maxKeepaliveSec', 'serverKeepaliveSec <= maxKeepaliveSec']]),
  )
  assert.equal(rowCount(db), 3)
  // both in one change is fine
  const v = store.update({ maxKeepaliveSec: 20, serverKeepaliveSec: 10 }, { actor: 'a' })
  assert.equal(v.version, 4)
  assert.equal(store.update({ serverKeepaliveSec: null }, { actor: 'a' }).values.serverKeepaliveSec, null)
})

test('If-Match: the current version passes, a stale one gets 412 and changes nothing', (t) => {
  const { db, store } = setup(t)
  store.update({ maxConnections: 10 }, { actor: 'a', ifMatch: 1 })
  let events = 0
  store.on('change', () => { events++ })
  assert.throws(() => store.update({ maxConnections: 20 }, { actor: 'b', ifMatch: 1 }), coded(412, 'STALE_VERSION', [['If-Match', 'the current version ("2")']]))
  assert.equal(store.current().values.maxConnections, 10)
  assert.equal(rowCount(db), 2)
  assert.equal(events, 0)
  assert.equal(store.update({ maxConnections: 20 }, { actor: 'b', ifMatch: [7, 2] }).version, 3)
})

test('rollback makes a new version equal to the old one; a missing version is a 404 naming the field', (t) => {
  const { db, store } = setup(t)
  store.update({ connectTimeoutMs: 1000 }, { actor: 'a' })
  store.update({ connectTimeoutMs: 2000, maxConnections: 3 }, { actor: 'a' })
  const r = store.rollback(2, { actor: 'bob' })
  assert.equal(r.version, 4)
  assert.deepEqual(r.values, store.get(2)?.values)
  assert.equal(r.comment, 'rollback to version 2')
  assert.equal(r.updatedBy, 'bob')
  assert.equal(store.rollback(1, { actor: 'bob', comment: 'back to defaults' }).comment, 'back to defaults')
  assert.deepEqual(store.current().values, DEFAULT_SETTINGS)
  for (const missing of [0, 6, 99, -1, 1.5]) {
    assert.throws(() => store.rollback(missing, { actor: 'a' }), coded(404, 'VERSION_NOT_FOUND', [['version', 'an existing version (1..5)']]))
  }
  assert.equal(rowCount(db), 5)
})

test('history: newest first, each with its diff to the previous version, paged by cursor', (t) => {
  const { store } = setup(t)
  store.update({ connectTimeoutMs: 1000 }, { actor: 'a', comment: 'one' })
  store.update({ keepaliveMultiplier: 3, allowZeroKeepalive: false }, { actor: 'b' })
  store.rollback(1, { actor: 'c' })
  const all = store.history()
  assert.deepEqual(all.items.map((v) => v.version), [4, 3, 2, 1])
  assert.equal(all.nextCursor, null)
  assert.deepEqual(all.items[0].diff, [
    { key: 'connectTimeoutMs', from: 1000, to: 5000 },
    { key: 'keepaliveMultiplier', from: 3, to: 1.5 },
    { key: 'allowZeroKeepalive', from: false, to: true },
  ])
  assert.deepEqual(all.items[1].diff, [
    { key: 'keepaliveMultiplier', from: 1.5, to: 3 },
    { key: 'allowZeroKeepalive', from: true, to: false },
  ])
  assert.deepEqual(all.items[3].diff, [])

  const page1 = store.history({ limit: 2 })
  assert.deepEqual(page1.items.map((v) => v.version), [4, 3])
  assert.equal(page1.nextCursor, 3)
  assert.deepEqual(page1.items[1].diff, all.items[1].diff, 'the oldest item of a page still has its diff')
  const page2 = store.history({ limit: 2, before: page1.nextCursor ?? undefined })
  assert.deepEqual(page2.items.map((v) => v.version), [2, 1])
  assert.equal(page2.nextCursor, null)
})

test('many changes in a row never lose a field: each version differs from the one before by its own change only', (t) => {
  const { store } = setup(t)
  const changes: Array<Partial<SettingsValues>> = []
  for (let i = 0; i < 30; i++) {
    changes.push(i % 3 === 0 ? { connectTimeoutMs: 1000 + i } : i % 3 === 1 ? { maxConnections: 100 + i } : { maxPacketSize: 1000 + i })
  }
  for (const c of changes) store.update(c, { actor: 'a' })
  const { items } = store.history({ limit: 100 })
  assert.equal(items.length, 31)
  items.slice(0, 30).reverse().forEach((v, i) => {
    assert.deepEqual(v.diff.map((d) => [d.key, d.to]), Object.entries(changes[i]))
  })
  assert.deepEqual(store.current().values, { ...DEFAULT_SETTINGS, connectTimeoutMs: 1027, maxConnections: 128, maxPacketSize: 1029 })
})

test('settings survive closing and reopening the file', (t) => {
  const { dir, cleanup } = tempDir('settings-store-')
  t.after(cleanup)
  const path = join(dir, 'broker.db')
  {
    const { db } = openDatabase(path)
    const store = createSettingsStore(db, { logger: { info() {}, error() {} } })
    store.update({ connectTimeoutMs: 12345, serverKeepaliveSec: 20 }, { actor: 'a', comment: 'keep me' })
    db.close()
  }
  const { db } = openDatabase(path)
  t.after(() => db.close())
  const store = createSettingsStore(db, { logger: { info() {}, error() {} } })
  const v = store.current()
  assert.equal(v.version, 2)
  assert.equal(v.values.connectTimeoutMs, 12345)
  assert.equal(v.values.serverKeepaliveSec, 20)
  assert.equal(v.comment, 'keep me')
})

test('a row written by an older build (a key missing) gets that key\'s default; an invalid row stops start-up', (t) => {
  const { db } = openDatabase(':memory:')
  t.after(() => db.close())
  const { connectTimeoutMs: _, ...older } = { ...DEFAULT_SETTINGS, maxConnections: 7 }
  db.prepare('INSERT INTO settings_versions VALUES (1, ?, ?, ?, NULL)').run(JSON.stringify({ ...older, retired: 1 }), new Date().toISOString(), 'system')
  const store = createSettingsStore(db, { logger: { info() {}, error() {} } })
  assert.deepEqual(store.current().values, { ...DEFAULT_SETTINGS, maxConnections: 7 })
  assert.deepEqual(Object.keys(store.current().values), SETTING_KEYS)

  db.prepare('INSERT INTO settings_versions VALUES (2, ?, ?, ?, NULL)').run(JSON.stringify({ ...DEFAULT_SETTINGS, connectTimeoutMs: -5 }), new Date().toISOString(), 'sqlite3 cli')
  assert.throws(() => createSettingsStore(db, { logger: { info() {}, error() {} } }), (err: Coded) => {
    assert.equal(err.code, 'SETTINGS_CORRUPT')
    assert.match(err.message, /settings version 2 stored in the database is invalid \(connectTimeoutMs: minimum 100\)/)
    return true
  })
})

test('database locked by another program: 503, nothing stored, nothing emitted; works again once released', (t) => {
  const { dir, cleanup } = tempDir('settings-lock-')
  t.after(cleanup)
  const path = join(dir, 'broker.db')
  const { db, store, logs } = setup(t, path)
  let events = 0
  store.on('change', () => { events++ })
  // another program (a second connection, as the sqlite3 shell would) holds the write lock
  const other = new Sqlite(path)
  t.after(() => other.close())
  other.exec('BEGIN EXCLUSIVE')
  assert.throws(() => store.update({ connectTimeoutMs: 777 }, { actor: 'a' }), (err: Coded) => {
    assert.equal(httpStatusOf(err), 503)
    assert.equal(err.code, 'STORE_UNAVAILABLE')
    assert.match(err.message, /could not be written \(SQLITE_BUSY: database is locked\); nothing was changed, the broker keeps running on version 1/)
    return true
  })
  assert.equal(events, 0)
  assert.equal(store.current().version, 1)
  assert.ok(logs.some((l) => l.level === 'error'))
  other.exec('ROLLBACK')
  assert.equal(rowCount(db), 1)
  assert.equal(store.update({ connectTimeoutMs: 777 }, { actor: 'a' }).version, 2)
  assert.equal(events, 1)
})

test('disk full (SQLite page limit reached): 503 and the last good version stays in force', (t) => {
  const { db, store } = setup(t)
  // the file may not grow by a single page: SQLite answers SQLITE_FULL exactly as on a full disk
  db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`)
  let lastGood = store.current()
  let failure: Coded | null = null
  for (let i = 0; i < 50 && failure === null; i++) {
    try {
      lastGood = store.update({ connectTimeoutMs: 1000 + i }, { actor: 'a', comment: 'x'.repeat(500) })
    } catch (err) {
      failure = err as Coded
    }
  }
  assert.ok(failure, 'the page limit was reached')
  assert.equal(httpStatusOf(failure), 503)
  assert.match(failure.message, /SQLITE_FULL/)
  assert.equal(store.current(), lastGood)
  assert.equal(rowCount(db), lastGood.version)
})
