// The /api/mqtt-users HTTP contract through the real app: CRUD and its shapes, paging, every bad input named in a
// 400 (no coercion), 404, 409, 401 without the token, OpenAPI, the authenticator reading allowAnonymous from the
// settings in force, and that no response body and no log line ever holds a password.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { join } from 'node:path'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import { RawClient, startServer, tempDir, TEST_TOKEN, type TestServer } from '../helpers.ts'

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }
const PASSWORD = 'Tr0ub4dor&3-s3cr3t-9c1e'

async function server(t: { after(fn: () => Promise<void> | void): void }, opts: Parameters<typeof startServer>[0] = {}) {
  const s = await startServer(opts)
  t.after(() => s.close())
  return s
}

type Inject = { method: 'GET' | 'POST' | 'PATCH' | 'DELETE'; url: string; payload?: unknown; headers?: Record<string, string> }

/** Every response body seen by a test file, to check that none of them holds a password. */
const bodies: string[] = []
const call = async (s: TestServer, r: Inject, auth: object = AUTH): Promise<LightMyRequestResponse> => {
  const res = await s.app.inject({ ...r, headers: { ...auth, ...r.headers } } as InjectOptions)
  bodies.push(res.body)
  return res
}
const users = '/api/mqtt-users'
const one = (name: string) => `${users}/${encodeURIComponent(name)}`

test('create, read, list, change, delete: the shapes, and the password is never in an answer', async (t) => {
  const s = await server(t)
  const created = await call(s, { method: 'POST', url: users, payload: { username: 'alice', password: PASSWORD, note: 'kitchen sensor' } })
  assert.equal(created.statusCode, 201, created.body)
  assert.equal(created.headers.location, '/api/mqtt-users/alice')
  assert.equal(created.headers['cache-control'], 'no-store')
  const alice = created.json()
  assert.deepEqual(Object.keys(alice).sort(), ['createdAt', 'enabled', 'note', 'updatedAt', 'username'])
  assert.deepEqual({ ...alice, createdAt: 0, updatedAt: 0 }, { username: 'alice', enabled: true, note: 'kitchen sensor', createdAt: 0, updatedAt: 0 })
  assert.ok(!Number.isNaN(Date.parse(alice.createdAt)))

  const got = await call(s, { method: 'GET', url: one('alice') })
  assert.equal(got.statusCode, 200)
  assert.deepEqual(got.json(), alice)

  // names with spaces, slashes, '+', '#' and other scripts travel URL-encoded, up to the longest
  for (const username of ['Alice', 'a/b c', 'sensor+#1', 'ünïcødé-名前', '😀'.repeat(256)]) {
    const res = await call(s, { method: 'POST', url: users, payload: { username, password: PASSWORD, enabled: false, note: null } })
    assert.equal(res.statusCode, 201, res.body)
    assert.equal((await call(s, { method: 'GET', url: one(username) })).json().username, username)
  }
  const list = await call(s, { method: 'GET', url: users })
  assert.equal(list.statusCode, 200)
  assert.deepEqual(list.json().items.map((u: { username: string }) => u.username), ['Alice', 'a/b c', 'alice', 'sensor+#1', 'ünïcødé-名前', '😀'.repeat(256)])
  assert.equal(list.json().nextCursor, null)
  const page1 = (await call(s, { method: 'GET', url: `${users}?limit=2` })).json()
  assert.deepEqual(page1.items.map((u: { username: string }) => u.username), ['Alice', 'a/b c'])
  const page2 = (await call(s, { method: 'GET', url: `${users}?limit=2&after=${encodeURIComponent(page1.nextCursor)}` })).json()
  assert.deepEqual(page2.items.map((u: { username: string }) => u.username), ['alice', 'sensor+#1'])

  const patched = await call(s, { method: 'PATCH', url: one('alice'), payload: { enabled: false, note: null } })
  assert.equal(patched.statusCode, 200, patched.body)
  assert.equal(patched.json().enabled, false)
  assert.equal(patched.json().note, null)
  assert.equal(patched.json().createdAt, alice.createdAt)
  const newPassword = await call(s, { method: 'PATCH', url: one('alice'), payload: { password: `${PASSWORD}-2`, enabled: true } })
  assert.equal(newPassword.statusCode, 200, newPassword.body)
  const login = (password: string) => s.app.authenticator.authenticate({ clientId: 'c', username: 'alice', password: Buffer.from(password), remoteAddress: '192.0.2.1' })
  assert.deepEqual(await login(`${PASSWORD}-2`), { ok: true, username: 'alice' })
  assert.equal((await login(PASSWORD)).ok, false)

  const deleted = await call(s, { method: 'DELETE', url: one('alice') })
  assert.equal(deleted.statusCode, 204)
  assert.equal(deleted.body, '')
  assert.equal((await call(s, { method: 'GET', url: one('alice') })).statusCode, 404)
  assert.deepEqual(await login(`${PASSWORD}-2`), { ok: true, username: null }, 'a deleted user is an unknown one: anonymous while allowed')

  for (const body of bodies) {
    assert.ok(!body.includes(PASSWORD), `an answer holds the password: ${body}`)
    assert.ok(!body.includes('scrypt'), `an answer holds a hash: ${body}`)
  }
})

test('404 for an unknown user, 409 for a taken username (case-sensitive)', async (t) => {
  const s = await server(t)
  await call(s, { method: 'POST', url: users, payload: { username: 'alice', password: PASSWORD } })
  for (const r of [
    { method: 'GET', url: one('nobody') }, { method: 'PATCH', url: one('nobody'), payload: { enabled: false } }, { method: 'DELETE', url: one('nobody') },
  ] as Inject[]) {
    const res = await call(s, r)
    assert.equal(res.statusCode, 404, `${r.method}: ${res.body}`)
    assert.deepEqual(res.json(), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'there is no MQTT user "nobody"' })
  }
  const dup = await call(s, { method: 'POST', url: users, payload: { username: 'alice', password: 'another' } })
  assert.equal(dup.statusCode, 409)
  assert.deepEqual(dup.json(), {
    statusCode: 409, code: 'CONFLICT', error: 'Conflict', message: 'there is already an MQTT user "alice"',
    fields: [{ field: 'username', rule: 'unique', message: 'is already taken' }],
  })
  assert.equal((await call(s, { method: 'POST', url: users, payload: { username: 'ALICE', password: 'another' } })).statusCode, 201)
})

// Every bad input: one line per case, a 400 naming the field and the rule, nothing stored.
const BAD: Array<{ name: string; req: Inject; fields: Array<[string, string]> }> = [
  { name: 'no username', req: { method: 'POST', url: users, payload: { password: PASSWORD } }, fields: [['username', 'required']] },
  { name: 'no password', req: { method: 'POST', url: users, payload: { username: 'u' } }, fields: [['password', 'required']] },
  { name: 'unknown key', req: { method: 'POST', url: users, payload: { username: 'u', password: PASSWORD, admin: true } }, fields: [['admin', 'unknown key']] },
  { name: 'empty username', req: { method: 'POST', url: users, payload: { username: '', password: PASSWORD } }, fields: [['username', 'minLength 1']] },
  { name: 'username too long', req: { method: 'POST', url: users, payload: { username: 'u'.repeat(257), password: PASSWORD } }, fields: [['username', 'maxLength 256']] },
  { name: 'control character in username', req: { method: 'POST', url: users, payload: { username: 'a\tb', password: PASSWORD } }, fields: [['username', 'no control characters']] },
  { name: 'empty password', req: { method: 'POST', url: users, payload: { username: 'u', password: '' } }, fields: [['password', 'minLength 1']] },
  { name: 'password over 1024 bytes', req: { method: 'POST', url: users, payload: { username: 'u', password: `${PASSWORD}${'€'.repeat(400)}` } }, fields: [['password', 'at most 1024 bytes']] },
  { name: 'a number for the password (not coerced)', req: { method: 'POST', url: users, payload: { username: 'u', password: 12345678 } }, fields: [['password', 'type string']] },
  { name: 'a string for enabled (not coerced)', req: { method: 'POST', url: users, payload: { username: 'u', password: PASSWORD, enabled: 'true' } }, fields: [['enabled', 'type boolean']] },
  { name: 'note too long', req: { method: 'POST', url: users, payload: { username: 'u', password: PASSWORD, note: 'n'.repeat(1001) } }, fields: [['note', 'null or maxLength 1000']] },
  { name: 'body not an object', req: { method: 'POST', url: users, payload: [PASSWORD] }, fields: [['(body)', 'type object']] },
  { name: 'empty patch', req: { method: 'PATCH', url: one('alice'), payload: {} }, fields: [['(body)', 'minProperties 1']] },
  { name: 'patch: unknown key', req: { method: 'PATCH', url: one('alice'), payload: { username: 'bob' } }, fields: [['username', 'unknown key']] },
  { name: 'patch: empty password', req: { method: 'PATCH', url: one('alice'), payload: { password: '' } }, fields: [['password', 'minLength 1']] },
  { name: 'patch: enabled as 0', req: { method: 'PATCH', url: one('alice'), payload: { enabled: 0 } }, fields: [['enabled', 'type boolean']] },
  { name: 'list: limit 0', req: { method: 'GET', url: `${users}?limit=0` }, fields: [['limit', 'minimum 1']] },
  { name: 'list: limit not a number', req: { method: 'GET', url: `${users}?limit=ten` }, fields: [['limit', 'type integer']] },
  { name: 'list: unknown parameter', req: { method: 'GET', url: `${users}?sort=desc` }, fields: [['sort', 'unknown key']] },
  { name: 'path: username too long', req: { method: 'GET', url: one('u'.repeat(257)) }, fields: [['username', 'maxLength 256']] },
]

test('bad input: 400 naming the field and the rule; nothing stored or changed', async (t) => {
  const s = await server(t)
  await call(s, { method: 'POST', url: users, payload: { username: 'alice', password: PASSWORD, note: 'as it was' } })
  const before = (await call(s, { method: 'GET', url: users })).json()
  for (const c of BAD) {
    await t.test(c.name, async () => {
      const res = await call(s, c.req)
      assert.equal(res.statusCode, 400, res.body)
      const body = res.json()
      assert.equal(body.code, 'INVALID_INPUT')
      assert.deepEqual(body.fields.map((f: { field: string; rule: string }) => [f.field, f.rule]), c.fields)
      assert.ok(!res.body.includes(PASSWORD))
    })
  }
  assert.deepEqual((await call(s, { method: 'GET', url: users })).json(), before)
})

test('401 without the admin token, on every route, before the body is read', async (t) => {
  const s = await server(t)
  for (const r of [
    { method: 'GET', url: users }, { method: 'POST', url: users, payload: { username: 'u', password: PASSWORD } },
    { method: 'GET', url: one('u') }, { method: 'PATCH', url: one('u'), payload: { password: PASSWORD } }, { method: 'DELETE', url: one('u') },
  ] as Inject[]) {
    for (const auth of [{}, { authorization: 'Bearer not-the-token' }]) {
      const res = await call(s, r, auth)
      assert.equal(res.statusCode, 401, `${r.method} ${r.url}`)
      assert.equal(res.json().code, 'UNAUTHORIZED')
      assert.ok(!res.body.includes(PASSWORD))
    }
  }
  assert.equal(s.app.mqttUsers.list().items.length, 0)
})

test('OpenAPI: every route documented under mqtt-users with bearer security; no response schema has a password', async (t) => {
  const s = await server(t)
  const doc = (await s.app.inject({ method: 'GET', url: '/docs/json' })).json()
  for (const [path, method] of [['/api/mqtt-users', 'get'], ['/api/mqtt-users', 'post'], ['/api/mqtt-users/{username}', 'get'],
    ['/api/mqtt-users/{username}', 'patch'], ['/api/mqtt-users/{username}', 'delete']]) {
    const op = doc.paths[path]?.[method]
    assert.ok(op, `${method} ${path} documented`)
    assert.deepEqual(op.tags, ['mqtt-users'])
    assert.deepEqual(op.security, [{ bearerAuth: [] }])
    assert.ok(!JSON.stringify(op.responses).includes('password'), `${method} ${path}: a response mentions a password`)
  }
  assert.ok(doc.tags.some((tag: { name: string }) => tag.name === 'mqtt-users'))
  assert.deepEqual(doc.paths['/api/mqtt-users'].post.requestBody.content['application/json'].schema.required, ['username', 'password'])
})

test('the authenticator reads allowAnonymous from the settings in force', async (t) => {
  const s = await server(t)
  const anonymous = { clientId: 'c', username: null, password: null, remoteAddress: '192.0.2.1' }
  assert.deepEqual(s.app.authenticator.authenticate(anonymous), { ok: true, username: null })
  const res = await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { allowAnonymous: false } } })
  assert.equal(res.statusCode, 200, res.body)
  const refused = s.app.authenticator.authenticate(anonymous)
  assert.ok(!(refused instanceof Promise))
  assert.equal(refused.ok, false)
  assert.equal(!refused.ok && refused.refusal, 'anonymous_not_allowed')
})

test('no log line holds a password: creating, refused and conflicting requests, a wrong login', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const { dir, cleanup } = tempDir('mqtt-users-log-')
  t.after(cleanup)
  const s = await server(t, { config: { dbPath: join(dir, 'broker.db'), logLevel: 'trace' }, logger: { level: 'trace', stream } })
  await call(s, { method: 'POST', url: users, payload: { username: 'alice', password: PASSWORD } })
  await call(s, { method: 'POST', url: users, payload: { username: 'alice', password: PASSWORD } }) // 409
  await call(s, { method: 'POST', url: users, payload: { username: 'bob', password: PASSWORD, note: 'n'.repeat(1001) } }) // 400
  await call(s, { method: 'POST', url: users, payload: `{"username": "carol", "password": "${PASSWORD}"`, headers: { 'content-type': 'application/json' } }) // bad JSON
  await call(s, { method: 'PATCH', url: one('alice'), payload: { password: `${PASSWORD}!` } })
  await call(s, { method: 'PATCH', url: one('nobody'), payload: { password: PASSWORD } }) // 404
  await call(s, { method: 'POST', url: users, payload: { username: 'dave', password: PASSWORD } }, {}) // 401
  const wrong = await s.app.authenticator.authenticate({ clientId: 'c', username: 'alice', password: Buffer.from(PASSWORD), remoteAddress: '192.0.2.1' })
  assert.equal(!wrong.ok && wrong.refusal, 'wrong_password')
  // and over MQTT, whatever the broker does with the CONNECT
  const client = await RawClient.open(s.wsUrl)
  client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'log-test', username: 'alice', password: Buffer.from(PASSWORD) } as never)
  await Promise.race([client.nextPacket('connack').catch(() => {}), client.closed().catch(() => {})])
  client.close()
  await s.close()

  const log = lines.join('')
  assert.match(log, /MQTT user \\"alice\\" created by admin/, 'the capture sees the app log')
  assert.match(log, /MQTT user \\"alice\\" updated: password by admin/)
  assert.ok(!log.includes(PASSWORD), 'a log line holds the password')
  assert.ok(!log.includes('scrypt$'), 'a log line holds a password hash')
})
