// The /api/settings HTTP contract through app.inject on the real app: shapes, ETag/If-Match, every bad input
// (table-driven) leaving the settings and history unchanged, history, rollback, defaults, schema, OpenAPI, races,
// durability across a restart, and a locked database answered with 503.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import Sqlite from 'better-sqlite3'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import { DEFAULT_SETTINGS, SETTING_KEYS } from '../../src/settings/schema.ts'
import { startServer, tempDir, TEST_TOKEN, type TestServer } from '../helpers.ts'

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }

async function server(t: { after(fn: () => Promise<void> | void): void }, opts: Parameters<typeof startServer>[0] = {}) {
  const s = await startServer(opts)
  t.after(() => s.close())
  return s
}

type Inject = { method: 'GET' | 'PATCH' | 'PUT' | 'POST'; url: string; payload?: unknown; headers?: Record<string, string> }
const call = (s: TestServer, r: Inject): Promise<LightMyRequestResponse> =>
  s.app.inject({ ...r, headers: { ...AUTH, ...r.headers } } as InjectOptions)

/** The version in force and the number of stored versions: what a refused request must leave as it was. */
async function state(s: TestServer) {
  const current = (await call(s, { method: 'GET', url: '/api/settings' })).json()
  const history = (await call(s, { method: 'GET', url: '/api/settings/history?limit=500' })).json()
  return { current, versions: history.items.length, broker: s.app.broker.settings.version }
}

test('GET /api/settings: the version in force with an ETag', async (t) => {
  const s = await server(t)
  const res = await call(s, { method: 'GET', url: '/api/settings' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers.etag, '"1"')
  assert.equal(res.headers['cache-control'], 'no-store')
  const body = res.json()
  assert.deepEqual(Object.keys(body).sort(), ['comment', 'updatedAt', 'updatedBy', 'values', 'version'])
  assert.equal(body.version, 1)
  assert.equal(body.updatedBy, 'system')
  assert.deepEqual(body.values, DEFAULT_SETTINGS)
})

test('PATCH changes some keys, answers the new version (same shape as GET), already in force', async (t) => {
  const s = await server(t)
  const res = await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 300, serverKeepaliveSec: 30 }, comment: 'slow links' } })
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.headers.etag, '"2"')
  const body = res.json()
  assert.equal(body.version, 2)
  assert.equal(body.updatedBy, 'admin')
  assert.equal(body.comment, 'slow links')
  assert.deepEqual(body.values, { ...DEFAULT_SETTINGS, connectTimeoutMs: 300, serverKeepaliveSec: 30 })
  // in force: the broker runs on it, and GET shows it
  assert.equal(s.app.broker.settings.version, 2)
  assert.deepEqual(s.app.broker.settings.values, body.values)
  assert.deepEqual((await call(s, { method: 'GET', url: '/api/settings' })).json(), body)
})

test('PUT replaces every key; GET /api/settings/defaults is a body PUT takes', async (t) => {
  const s = await server(t)
  await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { maxConnections: 5, allowZeroKeepalive: false } } })
  const defaults = await call(s, { method: 'GET', url: '/api/settings/defaults' })
  assert.equal(defaults.statusCode, 200)
  assert.deepEqual(defaults.json(), { values: DEFAULT_SETTINGS })
  const res = await call(s, { method: 'PUT', url: '/api/settings', payload: { ...(defaults.json() as object), comment: 'back to defaults' } })
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.json().version, 3)
  assert.deepEqual(res.json().values, DEFAULT_SETTINGS)
  assert.deepEqual(s.app.broker.settings.values, DEFAULT_SETTINGS)
})

// Every bad input: one line per case. Each gets a 4xx naming the field and the rule, and changes nothing.
const BAD: Array<{ name: string; req: Inject; status: number; code: string; fields: Array<[string, string]> }> = [
  { name: 'unknown key', req: { method: 'PATCH', url: '/api/settings', payload: { values: { conectTimeoutMs: 300 } } }, status: 400, code: 'INVALID_INPUT', fields: [['conectTimeoutMs', 'unknown key']] },
  { name: 'unknown top-level key', req: { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 300 }, why: 'x' } }, status: 400, code: 'INVALID_INPUT', fields: [['why', 'unknown key']] },
  { name: 'string for an integer', req: { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: '300' } } }, status: 400, code: 'INVALID_INPUT', fields: [['connectTimeoutMs', 'type integer']] },
  { name: 'fraction for an integer', req: { method: 'PATCH', url: '/api/settings', payload: { values: { maxPacketSize: 100.5 } } }, status: 400, code: 'INVALID_INPUT', fields: [['maxPacketSize', 'type integer']] },
  { name: 'string for a boolean', req: { method: 'PATCH', url: '/api/settings', payload: { values: { allowZeroKeepalive: 'false' } } }, status: 400, code: 'INVALID_INPUT', fields: [['allowZeroKeepalive', 'type boolean']] },
  { name: 'below minimum', req: { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 99 } } }, status: 400, code: 'INVALID_INPUT', fields: [['connectTimeoutMs', 'minimum 100']] },
  { name: 'above maximum', req: { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 600001 } } }, status: 400, code: 'INVALID_INPUT', fields: [['connectTimeoutMs', 'maximum 600000']] },
  { name: 'multiplier above 5', req: { method: 'PATCH', url: '/api/settings', payload: { values: { keepaliveMultiplier: 5.5 } } }, status: 400, code: 'INVALID_INPUT', fields: [['keepaliveMultiplier', 'maximum 5']] },
  { name: 'nullable out of range', req: { method: 'PATCH', url: '/api/settings', payload: { values: { serverKeepaliveSec: 0 } } }, status: 400, code: 'INVALID_INPUT', fields: [['serverKeepaliveSec', 'null or minimum 1']] },
  { name: 'two bad fields at once', req: { method: 'PATCH', url: '/api/settings', payload: { values: { maxConnections: 0, failureLogMaxRows: 10 } } }, status: 400, code: 'INVALID_INPUT', fields: [['maxConnections', 'minimum 1'], ['failureLogMaxRows', 'minimum 1000']] },
  { name: 'cross-field rule', req: { method: 'PATCH', url: '/api/settings', payload: { values: { maxKeepaliveSec: 60, serverKeepaliveSec: 120 } } }, status: 400, code: 'INVALID_INPUT', fields: [['serverKeepaliveSec', 'serverKeepaliveSec <= maxKeepaliveSec']] },
  { name: 'empty values', req: { method: 'PATCH', url: '/api/settings', payload: { values: {} } }, status: 400, code: 'INVALID_INPUT', fields: [['values', 'minProperties 1']] },
  { name: 'values missing', req: { method: 'PATCH', url: '/api/settings', payload: { comment: 'nothing' } }, status: 400, code: 'INVALID_INPUT', fields: [['values', 'required']] },
  { name: 'comment too long', req: { method: 'PATCH', url: '/api/settings', payload: { values: { maxConnections: 9 }, comment: 'x'.repeat(501) } }, status: 400, code: 'INVALID_INPUT', fields: [['comment', 'null or maxLength 500']] },
  { name: 'body is an array', req: { method: 'PATCH', url: '/api/settings', payload: [1] }, status: 400, code: 'INVALID_INPUT', fields: [['(body)', 'type object']] },
  { name: 'no body', req: { method: 'PATCH', url: '/api/settings' }, status: 400, code: 'INVALID_INPUT', fields: [['(body)', 'type object']] },
  { name: 'empty JSON body', req: { method: 'PATCH', url: '/api/settings', payload: '', headers: { 'content-type': 'application/json' } }, status: 400, code: 'INVALID_INPUT', fields: [['(body)', 'required']] },
  { name: 'malformed JSON', req: { method: 'PATCH', url: '/api/settings', payload: '{"values": {"connectTimeoutMs": 300', headers: { 'content-type': 'application/json' } }, status: 400, code: 'INVALID_JSON', fields: [['(body)', 'valid JSON']] },
  { name: '__proto__ in JSON', req: { method: 'PATCH', url: '/api/settings', payload: '{"values": {"__proto__": {"x": 1}}}', headers: { 'content-type': 'application/json' } }, status: 400, code: 'INVALID_JSON', fields: [['(body)', 'valid JSON']] },
  { name: 'PUT missing a key', req: { method: 'PUT', url: '/api/settings', payload: { values: { ...DEFAULT_SETTINGS, maxConnections: undefined } } }, status: 400, code: 'INVALID_INPUT', fields: [['maxConnections', 'required']] },
  { name: 'PUT out of range', req: { method: 'PUT', url: '/api/settings', payload: { values: { ...DEFAULT_SETTINGS, failureLogMaxAgeDays: 0 } } }, status: 400, code: 'INVALID_INPUT', fields: [['failureLogMaxAgeDays', 'minimum 1']] },
  { name: 'stale If-Match', req: { method: 'PATCH', url: '/api/settings', payload: { values: { maxConnections: 9 } }, headers: { 'if-match': '"7"' } }, status: 412, code: 'STALE_VERSION', fields: [['If-Match', 'the current version ("2")']] },
  { name: 'malformed If-Match', req: { method: 'PATCH', url: '/api/settings', payload: { values: { maxConnections: 9 } }, headers: { 'if-match': 'version two' } }, status: 400, code: 'INVALID_INPUT', fields: [['If-Match', 'an ETag like "3"']] },
  { name: 'rollback to a missing version', req: { method: 'POST', url: '/api/settings/rollback', payload: { version: 42 } }, status: 404, code: 'VERSION_NOT_FOUND', fields: [['version', 'an existing version (1..2)']] },
  { name: 'rollback to version 0', req: { method: 'POST', url: '/api/settings/rollback', payload: { version: 0 } }, status: 400, code: 'INVALID_INPUT', fields: [['version', 'minimum 1']] },
  { name: 'rollback with a string', req: { method: 'POST', url: '/api/settings/rollback', payload: { version: '1' } }, status: 400, code: 'INVALID_INPUT', fields: [['version', 'type integer']] },
  { name: 'rollback without version', req: { method: 'POST', url: '/api/settings/rollback', payload: {} }, status: 400, code: 'INVALID_INPUT', fields: [['version', 'required']] },
  { name: 'a form instead of JSON', req: { method: 'PATCH', url: '/api/settings', payload: 'connectTimeoutMs=300', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', fields: [['Content-Type', 'application/json']] },
  { name: 'history limit not a number', req: { method: 'GET', url: '/api/settings/history?limit=ten' }, status: 400, code: 'INVALID_INPUT', fields: [['limit', 'type integer']] },
  { name: 'history limit too large', req: { method: 'GET', url: '/api/settings/history?limit=501' }, status: 400, code: 'INVALID_INPUT', fields: [['limit', 'maximum 500']] },
]

test('bad input: 4xx naming the field and the rule; settings, history and broker unchanged', async (t) => {
  const s = await server(t)
  await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 4000 } } })
  const before = await state(s)
  assert.equal(before.current.version, 2)
  for (const c of BAD) {
    await t.test(c.name, async () => {
      const res = await call(s, c.req)
      assert.equal(res.statusCode, c.status, res.body)
      assert.match(String(res.headers['content-type']), /^application\/json/)
      const body = res.json()
      assert.equal(body.statusCode, c.status)
      assert.equal(body.code, c.code)
      assert.equal(typeof body.error, 'string')
      assert.ok(body.message.length > 0)
      assert.deepEqual(body.fields.map((f: { field: string; rule: string }) => [f.field, f.rule]), c.fields)
      for (const f of body.fields) assert.equal(typeof f.message, 'string')
      assert.deepEqual(await state(s), before)
    })
  }
})

test('If-Match: the current ETag, a list holding it, or * pass; without it the last writer wins', async (t) => {
  const s = await server(t)
  const etag = (await call(s, { method: 'GET', url: '/api/settings' })).headers.etag as string
  const a = await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { maxConnections: 11 } }, headers: { 'if-match': etag } })
  assert.equal(a.statusCode, 200)
  const b = await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { maxConnections: 12 } }, headers: { 'if-match': '"1", "2"' } })
  assert.equal(b.statusCode, 200)
  const c = await call(s, { method: 'PUT', url: '/api/settings', payload: { values: DEFAULT_SETTINGS }, headers: { 'if-match': '*' } })
  assert.equal(c.statusCode, 200)
  const stale = await call(s, { method: 'POST', url: '/api/settings/rollback', payload: { version: 2 }, headers: { 'if-match': '"3"' } })
  assert.equal(stale.statusCode, 412)
  const d = await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { maxConnections: 13 } } })
  assert.equal(d.json().version, 5)
  assert.equal(s.app.broker.settings.values.maxConnections, 13)
})

test('history: newest first with diffs, cursor paging; rollback makes a new version equal to the old one', async (t) => {
  const s = await server(t)
  await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 1000 }, comment: 'first' } })
  await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { keepaliveMultiplier: 2.5 } } })
  const rb = await call(s, { method: 'POST', url: '/api/settings/rollback', payload: { version: 1, comment: 'undo both' } })
  assert.equal(rb.statusCode, 200, rb.body)
  assert.equal(rb.headers.etag, '"4"')
  assert.equal(rb.json().version, 4)
  assert.deepEqual(rb.json().values, DEFAULT_SETTINGS)
  assert.equal(rb.json().comment, 'undo both')
  assert.deepEqual(s.app.broker.settings.values, DEFAULT_SETTINGS)

  const res = await call(s, { method: 'GET', url: '/api/settings/history' })
  assert.equal(res.statusCode, 200)
  const { items, nextCursor } = res.json()
  assert.equal(nextCursor, null)
  assert.deepEqual(items.map((v: { version: number }) => v.version), [4, 3, 2, 1])
  assert.deepEqual(items[0].diff, [
    { key: 'connectTimeoutMs', from: 1000, to: 5000 },
    { key: 'keepaliveMultiplier', from: 2.5, to: 1.5 },
  ])
  assert.deepEqual(items[1].diff, [{ key: 'keepaliveMultiplier', from: 1.5, to: 2.5 }])
  assert.deepEqual(items[2].diff, [{ key: 'connectTimeoutMs', from: 5000, to: 1000 }])
  assert.deepEqual(items[3].diff, [])
  assert.equal(items[2].comment, 'first')

  const p1 = (await call(s, { method: 'GET', url: '/api/settings/history?limit=3' })).json()
  assert.deepEqual(p1.items.map((v: { version: number }) => v.version), [4, 3, 2])
  assert.equal(p1.nextCursor, 2)
  const p2 = (await call(s, { method: 'GET', url: `/api/settings/history?limit=3&before=${p1.nextCursor}` })).json()
  assert.deepEqual(p2.items.map((v: { version: number }) => v.version), [1])
  assert.equal(p2.nextCursor, null)
})

test('GET /api/settings/schema: every key with type, range, default, description and x-scope, plus the cross-field rules', async (t) => {
  const s = await server(t)
  const res = await call(s, { method: 'GET', url: '/api/settings/schema' })
  assert.equal(res.statusCode, 200)
  const { keys, schema, rules } = res.json()
  assert.deepEqual(keys, SETTING_KEYS)
  for (const key of SETTING_KEYS) {
    const p = schema.properties[key]
    assert.ok(p, key)
    assert.equal(typeof p.description, 'string', `${key} description`)
    assert.equal(typeof p['x-scope'], 'string', `${key} x-scope`)
    assert.deepEqual(p.default, DEFAULT_SETTINGS[key], `${key} default`)
  }
  assert.equal(schema.properties.connectTimeoutMs.minimum, 100)
  assert.equal(schema.properties.connectTimeoutMs.maximum, 600000)
  assert.match(schema.properties.connectTimeoutMs['x-scope'], /still waiting for CONNECT/)
  assert.deepEqual(rules.map((r: { rule: string }) => r.rule), ['serverKeepaliveSec <= maxKeepaliveSec'])
})

test('OpenAPI at /docs: generated from the schemas, bearer security on /api routes; /healthz needs no token', async (t) => {
  const s = await server(t)
  const doc = (await s.app.inject({ method: 'GET', url: '/docs/json' })).json()
  assert.equal(doc.components.securitySchemes.bearerAuth.scheme, 'bearer')
  for (const [path, method] of [['/api/settings', 'get'], ['/api/settings', 'patch'], ['/api/settings', 'put'], ['/api/settings/history', 'get'],
    ['/api/settings/rollback', 'post'], ['/api/settings/defaults', 'get'], ['/api/settings/schema', 'get']]) {
    const op = doc.paths[path]?.[method]
    assert.ok(op, `${method} ${path} documented`)
    assert.deepEqual(op.security, [{ bearerAuth: [] }])
  }
  const patchBody = doc.paths['/api/settings'].patch.requestBody.content['application/json'].schema
  assert.equal(patchBody.properties.values.properties.connectTimeoutMs.maximum, 600000)
  assert.ok(patchBody.properties.values.properties.keepaliveMultiplier['x-scope'])
  assert.ok(!Object.keys(doc.paths).some((p) => p.startsWith('/mqtt') || p.startsWith('/admin')), 'non-API routes hidden')
  const ui = await s.app.inject({ method: 'GET', url: '/docs/' })
  assert.equal(ui.statusCode, 200)
  assert.match(ui.body, /swagger/i)
  const health = await s.app.inject({ method: 'GET', url: '/healthz' })
  assert.equal(health.statusCode, 200)
  assert.equal(health.json().status, 'ok')
})

test('racing PATCHes over real HTTP never lose a field, and the broker runs the newest version', async (t) => {
  const s = await server(t)
  const keys = ['connectTimeoutMs', 'maxConnections', 'maxPacketSize', 'failureLogMaxRows'] as const
  const base = { connectTimeoutMs: 1000, maxConnections: 100, maxPacketSize: 1000, failureLogMaxRows: 1000 }
  const patches = Array.from({ length: 24 }, (_, i) => ({ [keys[i % 4]]: base[keys[i % 4]] + i }))
  const responses = await Promise.all(patches.map((values) => fetch(`${s.url}/api/settings`, {
    method: 'PATCH', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ values }),
  })))
  assert.deepEqual(responses.map((r) => r.status), patches.map(() => 200))
  const answered = await Promise.all(responses.map((r) => r.json()))
  assert.deepEqual(answered.map((v) => v.version).sort((a, b) => a - b), Array.from({ length: 24 }, (_, i) => i + 2))
  // each version is its predecessor plus exactly its own patch
  const { items } = (await call(s, { method: 'GET', url: '/api/settings/history?limit=100' })).json()
  for (const v of items.slice(0, 24)) {
    const mine = answered.find((a) => a.version === v.version)
    const patch = patches[answered.indexOf(mine)]
    const [[key, value]] = Object.entries(patch)
    assert.equal(v.values[key], value)
    assert.ok(v.diff.every((d: { key: string }) => d.key === key))
  }
  // the newest holds the last value written for every key
  const current = (await call(s, { method: 'GET', url: '/api/settings' })).json()
  assert.equal(current.version, 25)
  for (const key of keys) {
    const last = items.find((v: { diff: Array<{ key: string }> }) => v.diff.some((d) => d.key === key))
    assert.equal(current.values[key], last.values[key])
  }
  assert.equal(s.app.broker.settings.version, 25)
  assert.deepEqual(s.app.broker.settings.values, current.values)
})

test('settings survive a restart on the same file', async (t) => {
  const { dir, cleanup } = tempDir('settings-restart-')
  t.after(cleanup)
  const dbPath = join(dir, 'data', 'broker.db')
  const first = await startServer({ config: { dbPath } })
  const res = await call(first, { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 2500, keepaliveMultiplier: 2, serverKeepaliveSec: 45 } } })
  assert.equal(res.statusCode, 200)
  await first.close()

  const second = await server(t, { config: { dbPath } })
  const again = (await call(second, { method: 'GET', url: '/api/settings' })).json()
  assert.deepEqual(again, res.json())
  assert.equal(second.app.broker.settings.version, 2)
  assert.deepEqual(second.app.broker.settings.values, res.json().values)
  assert.equal((await call(second, { method: 'GET', url: '/api/settings/history' })).json().items.length, 2)
})

test('database locked by another program: PATCH gets 503 with a clear message; the broker keeps its last good settings', async (t) => {
  const { dir, cleanup } = tempDir('settings-503-')
  t.after(cleanup)
  const dbPath = join(dir, 'broker.db')
  const s = await server(t, { config: { dbPath } })
  await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 2000 } } })
  const before = await state(s)
  const other = new Sqlite(dbPath)
  t.after(() => other.close())
  other.exec('BEGIN EXCLUSIVE')
  const res = await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 9000 } } })
  assert.equal(res.statusCode, 503)
  const body = res.json()
  assert.equal(body.code, 'STORE_UNAVAILABLE')
  assert.match(body.message, /the settings database could not be written \(SQLITE_BUSY: database is locked\); nothing was changed, the broker keeps running on version 2/)
  assert.equal(s.app.broker.settings.values.connectTimeoutMs, 2000)
  other.exec('ROLLBACK')
  assert.deepEqual(await state(s), before)
  // and once the lock is gone, changes work again
  const ok = await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 9000 } } })
  assert.equal(ok.statusCode, 200)
  assert.equal(s.app.broker.settings.values.connectTimeoutMs, 9000)
})

test('one log line per settings change: version, actor, changed keys', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const s = await server(t, { logger: { level: 'info', stream: { write: (l: string) => { lines.push(JSON.parse(l)) } } } })
  await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 800, maxConnections: 50 }, comment: 'tune' } })
  const changes = lines.filter((l) => l.settingsVersion === 2 && Array.isArray(l.changed))
  assert.equal(changes.length, 1)
  assert.equal(changes[0].actor, 'admin')
  assert.deepEqual(changes[0].changed, ['connectTimeoutMs', 'maxConnections'])
  assert.equal(changes[0].comment, 'tune')
  assert.match(String(changes[0].msg), /settings version 2 by admin: connectTimeoutMs, maxConnections/)
})
