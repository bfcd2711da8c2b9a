// Bearer-token authentication of /api/*: 401s, the actor recorded in the history, the token generated on first
// start (printed once, only its hash stored), ADMIN_TOKEN taking over, and extra named tokens.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import Sqlite from 'better-sqlite3'
import { sha256 } from '../src/plugins/auth.ts'
import { startServer, tempDir, TEST_TOKEN, type TestServer } from './helpers.ts'

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

const ROUTES: Array<{ method: 'GET' | 'PATCH' | 'PUT' | 'POST'; url: string; payload?: object }> = [
  { method: 'GET', url: '/api/settings' },
  { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 300 } } },
  { method: 'PUT', url: '/api/settings', payload: { values: {} } },
  { method: 'GET', url: '/api/settings/history' },
  { method: 'POST', url: '/api/settings/rollback', payload: { version: 1 } },
  { method: 'GET', url: '/api/settings/defaults' },
  { method: 'GET', url: '/api/settings/schema' },
  { method: 'GET', url: '/api/connections' },
  { method: 'GET', url: '/api/failures' },
  { method: 'GET', url: '/api/failures/stats' },
]

const CREDENTIALS: Array<[string, Record<string, string>, RegExp]> = [
  ['no Authorization header', {}, /missing bearer token/],
  ['Basic instead of Bearer', { authorization: `Basic ${Buffer.from(`admin:${TEST_TOKEN}`).toString('base64')}` }, /missing bearer token/],
  ['Bearer without a token', { authorization: 'Bearer ' }, /missing bearer token/],
  ['the token without the scheme', { authorization: TEST_TOKEN }, /missing bearer token/],
  ['a wrong token', bearer('not-the-token-at-all'), /not valid/],
  ['the token with one character more', bearer(`${TEST_TOKEN}x`), /not valid/],
  ['the token with one character less', bearer(TEST_TOKEN.slice(0, -1)), /not valid/],
  ['the token in another case', bearer(TEST_TOKEN.toUpperCase()), /not valid/],
]

async function server(t: { after(fn: () => Promise<void> | void): void }, opts: Parameters<typeof startServer>[0] = {}) {
  const s = await startServer(opts)
  t.after(() => s.close())
  return s
}

test('every /api route answers 401 without the right bearer token, and a refused PATCH changes nothing', async (t) => {
  const s = await server(t)
  for (const route of ROUTES) {
    for (const [name, headers, message] of CREDENTIALS) {
      await t.test(`${route.method} ${route.url}: ${name}`, async () => {
        const res = await s.app.inject({ method: route.method, url: route.url, payload: route.payload, headers })
        assert.equal(res.statusCode, 401, res.body)
        assert.match(String(res.headers['www-authenticate']), /^Bearer realm="admin"/)
        const body = res.json()
        assert.equal(body.statusCode, 401)
        assert.equal(body.code, 'UNAUTHORIZED')
        assert.match(body.message, message)
      })
    }
  }
  assert.equal(s.app.settingsStore.current().version, 1)
  assert.equal(s.app.broker.settings.version, 1)
  // the right token, with any case of the scheme word
  for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
    const ok = await s.app.inject({ method: 'GET', url: '/api/settings', headers: { authorization: `${scheme} ${TEST_TOKEN}` } })
    assert.equal(ok.statusCode, 200)
  }
  // outside /api no token is needed
  assert.equal((await s.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  assert.equal((await s.app.inject({ method: 'GET', url: '/docs/json' })).statusCode, 200)
})

test('the token\'s name is the actor in the history', async (t) => {
  const s = await server(t)
  await s.app.inject({ method: 'PATCH', url: '/api/settings', headers: s.auth, payload: { values: { maxConnections: 7 } } })
  const history = (await s.app.inject({ method: 'GET', url: '/api/settings/history', headers: s.auth })).json()
  assert.deepEqual(history.items.map((v: { updatedBy: string }) => v.updatedBy), ['admin', 'system'])
})

function capture() {
  const lines: Array<{ msg: string; level: number }> = []
  return { lines, logger: { level: 'info', stream: { write: (l: string) => { lines.push(JSON.parse(l)) } } } }
}

test('no ADMIN_TOKEN: a token is generated on first start, logged once, only its hash stored; ADMIN_TOKEN later takes over', async (t) => {
  const { dir, cleanup } = tempDir('auth-')
  t.after(cleanup)
  const dbPath = join(dir, 'broker.db')
  const settingsOf = (s: TestServer, token: string) => s.app.inject({ method: 'GET', url: '/api/settings', headers: bearer(token) })

  // first start
  const log1 = capture()
  const first = await startServer({ config: { dbPath, adminToken: null }, logger: log1.logger })
  const tokenLine = log1.lines.find((l) => /admin API token generated/.test(l.msg))
  assert.ok(tokenLine, 'the token is logged')
  assert.equal(tokenLine.level, 40, 'as a warning, so it shows at the default level')
  const token = /: (\S+)$/.exec(tokenLine.msg)?.[1] ?? ''
  assert.match(token, /^[A-Za-z0-9_-]{43}$/)
  assert.ok(log1.lines.some((l) => /ADMIN_TOKEN=/.test(l.msg) && /your own/.test(l.msg)), 'a line says how to set your own')
  assert.equal(log1.lines.filter((l) => l.msg.includes(token)).length, 1, 'printed once')
  assert.equal((await settingsOf(first, token)).statusCode, 200)
  assert.equal((await settingsOf(first, TEST_TOKEN)).statusCode, 401)
  await first.close()

  // only the hash is stored: not the token, anywhere in the database files
  const db = new Sqlite(dbPath, { readonly: true })
  const rows = db.prepare('SELECT name, sha256_hex FROM admin_tokens').all()
  db.close()
  assert.deepEqual(rows, [{ name: 'admin', sha256_hex: sha256(token).toString('hex') }])
  for (const f of readdirSync(dir)) assert.ok(!readFileSync(join(dir, f)).includes(token), `${f} does not hold the token`)

  // second start without ADMIN_TOKEN: the same token works, nothing secret is printed
  const log2 = capture()
  const second = await startServer({ config: { dbPath, adminToken: null }, logger: log2.logger })
  assert.equal((await settingsOf(second, token)).statusCode, 200)
  assert.ok(!log2.lines.some((l) => l.msg.includes(token) || /generated \(/.test(l.msg)))
  assert.ok(log2.lines.some((l) => /using the token generated on first start/.test(l.msg)))
  await second.close()

  // ADMIN_TOKEN set: it is the token; the generated one no longer works
  const third = await server(t, { config: { dbPath, adminToken: 'operator-chosen-token' } })
  assert.equal((await settingsOf(third, 'operator-chosen-token')).statusCode, 200)
  assert.equal((await settingsOf(third, token)).statusCode, 401)
})

test('further named tokens in admin_tokens authenticate as their name', async (t) => {
  const { dir, cleanup } = tempDir('auth-named-')
  t.after(cleanup)
  const dbPath = join(dir, 'broker.db')
  await (await startServer({ config: { dbPath } })).close()
  const db = new Sqlite(dbPath)
  db.prepare('INSERT INTO admin_tokens (name, sha256_hex, created_at) VALUES (?, ?, ?)')
    .run('ci-bot', sha256('ci-bot-secret-token').toString('hex'), new Date().toISOString())
  db.close()

  const s = await server(t, { config: { dbPath } })
  const res = await s.app.inject({ method: 'PATCH', url: '/api/settings', headers: bearer('ci-bot-secret-token'), payload: { values: { maxConnections: 3 } } })
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.json().updatedBy, 'ci-bot')
  assert.equal((await s.app.inject({ method: 'GET', url: '/api/settings', headers: s.auth })).json().updatedBy, 'ci-bot')
})
