// Admin tokens and roles through the real server: every route of the app walked with no token and with a viewer,
// operator and admin token (401, 403 with the JSON error body, never a 500, passed at its role); every /api/ route
// declares its role and the OpenAPI document shows it; tokens made (the secret answered once, only its hash stored),
// listed without secrets, revoked with effect at once, their last use noted in memory and written behind; the boot
// token is admin and cannot be revoked; names are unique for good.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import Fastify from 'fastify'
import Sqlite from 'better-sqlite3'
import { DEFAULT_CONFIG } from '../../src/config.ts'
import database from '../../src/plugins/database.ts'
import auth from '../../src/plugins/auth.ts'
import { sha256 } from '../../src/audit/tokens.ts'
import { ROLES, type Role, type RouteRole } from '../../src/contracts/roles.ts'
import { errorHandler } from '../../src/errors.ts'
import { buildApp } from '../../src/app.ts'
import { startServer, tempDir, TEST_TOKEN, type TestServer } from '../helpers.ts'

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

async function server(t: { after(fn: () => unknown): void }, opts: Parameters<typeof startServer>[0] = {}) {
  const s = await startServer(opts)
  t.after(() => s.close())
  return s
}

/** Makes a token through the API (as the boot token) and returns its secret and id. */
async function makeToken(s: TestServer, name: string, role: Role): Promise<{ id: number; secret: string }> {
  const res = await s.app.inject({ method: 'POST', url: '/api/admin-tokens', headers: s.auth, payload: { name, role } })
  assert.equal(res.statusCode, 201, res.body)
  const body = res.json()
  return { id: body.id, secret: body.token }
}

/** Routes outside /api/ that declare no role: public by design. A new one fails here until someone decides. */
const KNOWN_PUBLIC = [
  /^\/docs(\/.*)?$/, /^\/admin(\/\*)?$/, /^\/favicon\.ico$/, /^\/metrics$/, /^\/readyz$/, /^\/mqtt$/,
]

/** A URL for a route pattern that names nothing that exists (so an allowed call changes nothing). */
const sampleUrl = (pattern: string) => pattern
  .replace(/:id\b/g, '999999')
  .replace(/:username\b/g, 'no-such-user')
  .replace(/\*$/, 'no-such-thing')

/**
 * Every `METHOD url` in printRoutes' tree (each line a path segment, indented by its depth, with its methods). Fastify
 * prints `/api/sessions/*` as `/api/sessions` + `*`: compared without the slash before a `*` and without a trailing one.
 */
function printedRoutes(tree: string): string[] {
  const stack: string[] = []
  const out: string[] = []
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)(?:[├└]── )?(.+?)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (!m || m[2].trim() === '') continue
    const depth = m[1].length / 4
    stack.length = depth
    stack.push(m[2])
    for (const method of m[3]?.split(', ') ?? []) out.push(`${method} ${normal(stack.join(''))}`)
  }
  return out
}
const normal = (url: string) => url.replace(/\/\*$/, '*').replace(/(.)\/$/, '$1')

const allows = (have: Role, need: Role) => ROLES.indexOf(have) >= ROLES.indexOf(need)

test('every route of the app declares its role, and every one is walked with every role', async (t) => {
  const s = await server(t)
  const routes = s.app.routeRoles
  const secrets: Record<Role, string> = {
    viewer: (await makeToken(s, 'matrix-viewer', 'viewer')).secret,
    operator: (await makeToken(s, 'matrix-operator', 'operator')).secret,
    admin: TEST_TOKEN,
  }

  await t.test('the auth plugin saw every route the app has (none registered before it escaped)', () => {
    const seen = new Set(routes.map((r) => `${r.method} ${normal(r.url)}`))
    const printed = printedRoutes(s.app.printRoutes({ commonPrefix: false }))
    assert.ok(printed.length >= 60, `${printed.length} routes printed`)
    // (the tree folds a wildcard's static prefix away: `/docs/static/*` prints under `/docs/` as `*`)
    const wildcardSeen = (r: string) => r.endsWith('*') && [...seen].some((x) => x.endsWith('*') && x.startsWith(r.slice(0, -1)))
    assert.deepEqual(printed.filter((r) => !seen.has(r) && !wildcardSeen(r)), [])
    for (const r of routes) assert.ok(s.app.hasRoute({ method: r.method as 'GET', url: r.url }), `${r.method} ${r.url}`)
  })

  await t.test('every /api/ route declares a role; every other route without one is a known public route', () => {
    const undeclared = routes.filter((r) => r.url.startsWith('/api/') && !r.declared).map((r) => `${r.method} ${r.url}`)
    assert.deepEqual(undeclared, [], 'declare config: { role } on these routes')
    const unknownPublic = routes.filter((r) => !r.url.startsWith('/api/') && !r.declared && !KNOWN_PUBLIC.some((p) => p.test(r.url)))
    assert.deepEqual(unknownPublic.map((r) => `${r.method} ${r.url}`), [], 'a new route outside /api/: declare its role')
    assert.ok(routes.filter((r) => r.url.startsWith('/api/')).every((r) => r.role !== 'public'), 'no /api/ route is public')
    const roleOf = (method: string, url: string) => routes.find((r) => r.method === method && r.url === url)?.role
    assert.equal(roleOf('GET', '/healthz'), 'public')
    assert.equal(roleOf('GET', '/metrics'), 'public')
    assert.equal(roleOf('GET', '/api/failures/stream'), 'viewer')
    assert.equal(roleOf('GET', '/api/whoami'), 'viewer')
    assert.equal(roleOf('PATCH', '/api/settings'), 'operator')
    assert.equal(roleOf('GET', '/api/audit'), 'operator')
    assert.equal(roleOf('POST', '/api/admin-tokens'), 'admin')
  })

  const walked = routes.filter((r) => r.method !== 'HEAD' && r.url !== '/api/failures/stream')
  for (const route of walked) {
    await t.test(`${route.method} ${route.url} (${route.role})`, async () => {
      const url = sampleUrl(route.url)
      const payload = ['POST', 'PUT', 'PATCH'].includes(route.method) ? {} : undefined
      const call = (headers: Record<string, string>) => s.app.inject({ method: route.method as 'GET', url, headers, payload })
      const anonymous = await call({})
      if (route.role === 'public') {
        assert.ok(anonymous.statusCode !== 401 && anonymous.statusCode !== 403 && anonymous.statusCode < 500, `${anonymous.statusCode} ${anonymous.body}`)
        return
      }
      assert.equal(anonymous.statusCode, 401, anonymous.body)
      assert.equal(anonymous.json().code, 'UNAUTHORIZED')
      for (const role of ROLES) {
        const res = await call(bearer(secrets[role]))
        if (allows(role, route.role as Role)) {
          assert.ok(![401, 403].includes(res.statusCode) && res.statusCode < 500, `${role}: ${res.statusCode} ${res.body}`)
        } else {
          assert.equal(res.statusCode, 403, `${role}: ${res.body}`)
          const body = res.json()
          assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
          assert.equal(body.statusCode, 403)
          assert.equal(body.code, 'FORBIDDEN')
          assert.equal(body.error, 'Forbidden')
          assert.match(body.message, new RegExp(`needs .*${route.role}.*"matrix-${role}" is a ${role}`))
        }
      }
    })
  }

  await t.test('GET /api/failures/stream (viewer; also ?token=): a stream for every token, 401 without one', async () => {
    const open = async (query: string, headers: Record<string, string> = {}) => {
      const controller = new AbortController()
      const res = await fetch(`${s.url}/api/failures/stream${query}`, { headers, signal: controller.signal })
      controller.abort()
      return res.status
    }
    assert.equal(await open(''), 401)
    for (const role of ROLES) {
      assert.equal(await open('', bearer(secrets[role])), 200, role)
      assert.equal(await open(`?token=${encodeURIComponent(secrets[role])}`), 200, `${role} in the query`)
    }
    assert.equal(await open('?token=not-a-token'), 401)
  })

  await t.test('the OpenAPI document shows each operation\'s role: x-role and a line of its description', async () => {
    const doc = (await s.app.inject({ method: 'GET', url: '/docs/json' })).json()
    for (const route of walked.filter((r) => r.url.startsWith('/api/'))) {
      const path = route.url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{*}')
      const op = doc.paths[path]?.[route.method.toLowerCase()] ?? doc.paths[route.url]?.[route.method.toLowerCase()]
      assert.ok(op, `${route.method} ${path} is documented`)
      assert.equal(op['x-role'], route.role, `${route.method} ${route.url}`)
      assert.match(op.description, new RegExp(`Role:\\*\\* \`${route.role}\``))
      assert.ok(op.responses['401'], `${route.method} ${route.url} documents 401`)
      if (route.role !== 'viewer') assert.ok(op.responses['403'], `${route.method} ${route.url} documents 403`)
    }
    assert.equal(doc.paths['/healthz'].get['x-role'], undefined)
  })
})

test('an /api/ route that declares no role is refused to all but admin tokens, never open', async (t) => {
  const app = await buildApp({ config: { dbPath: ':memory:', adminToken: TEST_TOKEN, logLevel: 'silent' }, logger: false })
  t.after(() => app.close())
  // registered after buildApp (the auth plugin sees it), with no config.role
  app.get('/api/undeclared', async () => ({ ok: true }))
  await app.ready()
  const s = { app, auth: bearer(TEST_TOKEN) } as TestServer
  const viewer = await makeToken(s, 'u-viewer', 'viewer')
  const operator = await makeToken(s, 'u-operator', 'operator')
  assert.deepEqual(s.app.routeRoles.filter((r) => r.url === '/api/undeclared').map((r) => [r.method, r.role, r.declared]),
    [['GET', 'admin', false], ['HEAD', 'admin', false]])
  const get = (headers: Record<string, string>) => s.app.inject({ method: 'GET', url: '/api/undeclared', headers })
  assert.equal((await get({})).statusCode, 401)
  assert.equal((await get(bearer(viewer.secret))).statusCode, 403)
  assert.equal((await get(bearer(operator.secret))).statusCode, 403)
  assert.equal((await get(s.auth)).statusCode, 200)
})

test('a route registered before the auth plugin is not open either: under /api/ it needs an admin token', async (t) => {
  const app = Fastify()
  app.decorate('config', { ...DEFAULT_CONFIG, dbPath: ':memory:', adminToken: TEST_TOKEN })
  app.setErrorHandler(errorHandler)
  await app.register(database)
  app.get('/api/early', async () => ({ ok: true }))
  app.get('/early', async () => ({ ok: true }))
  await app.register(auth)
  t.after(() => app.close())
  const viewer = app.adminTokens.create({ name: 'early-viewer', role: 'viewer' }).secret
  assert.equal((await app.inject({ method: 'GET', url: '/api/early' })).statusCode, 401)
  assert.equal((await app.inject({ method: 'GET', url: '/api/early', headers: bearer(viewer) })).statusCode, 403)
  assert.equal((await app.inject({ method: 'GET', url: '/api/early', headers: bearer(TEST_TOKEN) })).statusCode, 200)
  assert.equal((await app.inject({ method: 'GET', url: '/early' })).statusCode, 200)
})

test('GET /api/whoami: the name and role of the token', async (t) => {
  const s = await server(t)
  const viewer = await makeToken(s, 'who-viewer', 'viewer')
  const operator = await makeToken(s, 'who-operator', 'operator')
  const whoami = async (headers: Record<string, string>) => (await s.app.inject({ method: 'GET', url: '/api/whoami', headers })).json()
  assert.deepEqual(await whoami(s.auth), { name: 'admin', role: 'admin' })
  assert.deepEqual(await whoami(bearer(viewer.secret)), { name: 'who-viewer', role: 'viewer' })
  assert.deepEqual(await whoami(bearer(operator.secret)), { name: 'who-operator', role: 'operator' })
  assert.equal((await s.app.inject({ method: 'GET', url: '/api/whoami' })).statusCode, 401)
})

test('tokens: made with the secret answered once, only its hash stored, listed without secrets, in force at once', async (t) => {
  const { dir, cleanup } = tempDir('tokens-')
  t.after(cleanup)
  const dbPath = join(dir, 'broker.db')
  const s = await startServer({ config: { dbPath } })
  let closed = false
  t.after(async () => {
    if (!closed) await s.close()
  })

  const res = await s.app.inject({ method: 'POST', url: '/api/admin-tokens', headers: s.auth, payload: { name: 'ci-bot', role: 'operator' } })
  assert.equal(res.statusCode, 201, res.body)
  const created = res.json()
  assert.match(created.token, /^[A-Za-z0-9_-]{43}$/)
  assert.equal(created.name, 'ci-bot')
  assert.equal(created.role, 'operator')
  assert.equal(created.lastUsedAt, null)
  assert.equal(created.builtIn, false)
  assert.ok(Number.isInteger(created.id) && created.id > 0)
  assert.equal(res.headers.location, `/api/admin-tokens/${created.id}`)
  const secret: string = created.token

  // it works at once, as its name and role
  const patched = await s.app.inject({ method: 'PATCH', url: '/api/settings', headers: bearer(secret), payload: { values: { maxConnections: 77 } } })
  assert.equal(patched.statusCode, 200, patched.body)
  assert.equal(patched.json().updatedBy, 'ci-bot')

  // the list: the boot token first, no secret, no hash
  const list = await s.app.inject({ method: 'GET', url: '/api/admin-tokens', headers: s.auth })
  assert.equal(list.statusCode, 200)
  const items = list.json().items
  assert.deepEqual(items.map((i: { id: number; name: string; role: string; builtIn: boolean }) => [i.id, i.name, i.role, i.builtIn]),
    [[0, 'admin', 'admin', true], [created.id, 'ci-bot', 'operator', false]])
  assert.deepEqual(Object.keys(items[1]).sort(), ['builtIn', 'createdAt', 'id', 'lastUsedAt', 'name', 'role'])
  assert.ok(!list.body.includes(secret))
  assert.ok(!list.body.includes(sha256(secret).toString('hex')))

  // the secret is answered once: nothing else the API says holds it
  for (const url of ['/api/admin-tokens', '/api/audit', '/api/settings/history']) {
    assert.ok(!(await s.app.inject({ method: 'GET', url, headers: s.auth })).body.includes(secret), url)
  }

  await s.close()
  closed = true
  // only the hash is stored: the secret is in no file of the database (WAL and all)
  const db = new Sqlite(dbPath, { readonly: true })
  const row = db.prepare('SELECT name, role, sha256_hex FROM admin_tokens WHERE name = ?').get('ci-bot')
  db.close()
  assert.deepEqual(row, { name: 'ci-bot', role: 'operator', sha256_hex: sha256(secret).toString('hex') })
  for (const f of readdirSync(dir)) assert.ok(!readFileSync(join(dir, f)).includes(secret), `${f} does not hold the secret`)

  // and the token outlives a restart
  const again = await server(t, { config: { dbPath } })
  assert.deepEqual((await again.app.inject({ method: 'GET', url: '/api/whoami', headers: bearer(secret) })).json(), { name: 'ci-bot', role: 'operator' })
})

test('revoking a token refuses it from the next request on (the stream too), without a restart', async (t) => {
  const s = await server(t)
  const { id, secret } = await makeToken(s, 'short-lived', 'viewer')
  assert.equal((await s.app.inject({ method: 'GET', url: '/api/settings', headers: bearer(secret) })).statusCode, 200)

  const revoked = await s.app.inject({ method: 'DELETE', url: `/api/admin-tokens/${id}`, headers: s.auth })
  assert.equal(revoked.statusCode, 204, revoked.body)
  const refused = await s.app.inject({ method: 'GET', url: '/api/settings', headers: bearer(secret) })
  assert.equal(refused.statusCode, 401)
  assert.match(refused.json().message, /not valid/)
  const stream = await fetch(`${s.url}/api/failures/stream?token=${secret}`)
  assert.equal(stream.status, 401)
  await stream.body?.cancel()

  // gone from the list; a second revoke is a 404
  const names = (await s.app.inject({ method: 'GET', url: '/api/admin-tokens', headers: s.auth })).json().items.map((i: { name: string }) => i.name)
  assert.deepEqual(names, ['admin'])
  assert.equal((await s.app.inject({ method: 'DELETE', url: `/api/admin-tokens/${id}`, headers: s.auth })).statusCode, 404)
})

test('the boot token is admin and cannot be revoked; token names are unique, for good', async (t) => {
  const s = await server(t)
  const boot = await s.app.inject({ method: 'DELETE', url: '/api/admin-tokens/0', headers: s.auth })
  assert.equal(boot.statusCode, 409)
  assert.equal(boot.json().code, 'CONFLICT')
  assert.match(boot.json().message, /boot token cannot be revoked.*ADMIN_TOKEN/)
  assert.equal((await s.app.inject({ method: 'GET', url: '/api/settings', headers: s.auth })).statusCode, 200)

  const create = (name: string, role = 'viewer') =>
    s.app.inject({ method: 'POST', url: '/api/admin-tokens', headers: s.auth, payload: { name, role } })
  assert.equal((await create('dashboard')).statusCode, 201)
  const again = await create('dashboard', 'admin')
  assert.equal(again.statusCode, 409)
  assert.deepEqual(again.json().fields, [{ field: 'name', rule: 'unique', message: 'is already taken (names are never reused)' }])
  assert.equal((await create('admin')).statusCode, 409, 'the boot token\'s name')
  // a revoked name stays taken: the audit trail's actor names one token only
  const id = (await s.app.inject({ method: 'GET', url: '/api/admin-tokens', headers: s.auth })).json().items[1].id
  assert.equal((await s.app.inject({ method: 'DELETE', url: `/api/admin-tokens/${id}`, headers: s.auth })).statusCode, 204)
  const reused = await create('dashboard')
  assert.equal(reused.statusCode, 409)
  assert.match(reused.json().message, /revoked/)

  // bad input names each field
  const bad = await create('', 'root')
  assert.equal(bad.statusCode, 400)
  assert.deepEqual([...new Set(bad.json().fields.map((f: { field: string }) => f.field))].sort(), ['name', 'role'])
  assert.equal((await create('tab\tin name')).statusCode, 400)
  assert.equal((await create('   ')).statusCode, 400)
  assert.equal((await create('x'.repeat(65))).statusCode, 400)
})

test('only an admin token manages tokens: a viewer or an operator cannot make, list or revoke one', async (t) => {
  const s = await server(t)
  const viewer = await makeToken(s, 'low-viewer', 'viewer')
  const operator = await makeToken(s, 'low-operator', 'operator')
  for (const secret of [viewer.secret, operator.secret]) {
    const made = await s.app.inject({ method: 'POST', url: '/api/admin-tokens', headers: bearer(secret), payload: { name: 'escalate', role: 'admin' } })
    assert.equal(made.statusCode, 403)
    assert.equal(made.json().code, 'FORBIDDEN')
    assert.equal((await s.app.inject({ method: 'GET', url: '/api/admin-tokens', headers: bearer(secret) })).statusCode, 403)
    assert.equal((await s.app.inject({ method: 'DELETE', url: `/api/admin-tokens/${viewer.id}`, headers: bearer(secret) })).statusCode, 403)
  }
  const names = (await s.app.inject({ method: 'GET', url: '/api/admin-tokens', headers: s.auth })).json().items.map((i: { name: string }) => i.name)
  assert.deepEqual(names, ['admin', 'low-viewer', 'low-operator'])
  // a second admin token may
  const admin2 = await makeToken(s, 'second-admin', 'admin')
  assert.equal((await s.app.inject({ method: 'DELETE', url: `/api/admin-tokens/${viewer.id}`, headers: bearer(admin2.secret) })).statusCode, 204)
})

test('lastUsedAt moves with use, is answered from memory, and is written behind (not per request)', async (t) => {
  const { dir, cleanup } = tempDir('tokens-used-')
  t.after(cleanup)
  const dbPath = join(dir, 'broker.db')
  const s = await startServer({ config: { dbPath } })
  let closed = false
  t.after(async () => {
    if (!closed) await s.close()
  })
  const { id, secret } = await makeToken(s, 'poller', 'viewer')
  const lastUsed = async () => (await s.app.inject({ method: 'GET', url: '/api/admin-tokens', headers: s.auth })).json()
    .items.find((i: { id: number }) => i.id === id).lastUsedAt
  const stored = () => {
    const db = new Sqlite(dbPath, { readonly: true })
    try {
      return (db.prepare('SELECT last_used_at FROM admin_tokens WHERE id = ?').get(id) as { last_used_at: string | null }).last_used_at
    } finally {
      db.close()
    }
  }
  assert.equal(await lastUsed(), null)

  const t0 = Date.now()
  for (let i = 0; i < 5; i++) await s.app.inject({ method: 'GET', url: '/api/settings', headers: bearer(secret) })
  const first = await lastUsed()
  assert.ok(first !== null && Date.parse(first) >= t0 - 5, `lastUsedAt ${first}`)
  assert.equal(stored(), null, 'five requests, no write')

  await new Promise((resolve) => setTimeout(resolve, 5))
  await s.app.inject({ method: 'GET', url: '/api/settings', headers: bearer(secret) })
  const second = await lastUsed()
  assert.ok(Date.parse(second) > Date.parse(first), 'it moves')

  // the flush (a timer, once a minute) writes it; so does closing
  s.app.adminTokens.flush()
  assert.equal(stored(), second)
  await s.app.inject({ method: 'GET', url: '/api/whoami', headers: bearer(secret) })
  const third = await lastUsed()
  await s.close()
  closed = true
  assert.equal(stored(), third)
  const again = await server(t, { config: { dbPath } })
  const items = (await again.app.inject({ method: 'GET', url: '/api/admin-tokens', headers: again.auth })).json().items
  assert.equal(items.find((i: { id: number }) => i.id === id).lastUsedAt, third)
})

test('migration 007: tokens stored before it (rows added by SQL) are kept, as admin', async (t) => {
  const { dir, cleanup } = tempDir('tokens-migrate-')
  t.after(cleanup)
  const dbPath = join(dir, 'broker.db')
  // a database at schema version 6 with a token row of the old shape
  const db = new Sqlite(dbPath)
  const { loadMigrations, applyMigrations } = await import('../../src/db/migrations.ts')
  applyMigrations(db, loadMigrations().filter((m) => m.version <= 6))
  db.prepare('INSERT INTO admin_tokens (name, sha256_hex, created_at) VALUES (?, ?, ?)')
    .run('legacy-bot', sha256('legacy-bot-secret').toString('hex'), '2024-01-01T00:00:00.000Z')
  db.close()
  const s = await server(t, { config: { dbPath } })
  assert.deepEqual((await s.app.inject({ method: 'GET', url: '/api/whoami', headers: bearer('legacy-bot-secret') })).json(),
    { name: 'legacy-bot', role: 'admin' })
  const items = (await s.app.inject({ method: 'GET', url: '/api/admin-tokens', headers: s.auth })).json().items
  assert.deepEqual(items.map((i: { name: string; createdAt: string }) => [i.name, i.createdAt]),
    [['admin', items[0].createdAt], ['legacy-bot', '2024-01-01T00:00:00.000Z']])
})

/** The roles decided for the routes (README.md shows the same table). */
const EXPECTED: Record<string, RouteRole> = {
  'GET /api/settings': 'viewer', 'GET /api/settings/history': 'viewer', 'GET /api/settings/defaults': 'viewer',
  'GET /api/settings/schema': 'viewer', 'PATCH /api/settings': 'operator', 'PUT /api/settings': 'operator',
  'POST /api/settings/rollback': 'operator', 'GET /api/settings/suggestions': 'viewer',
  'GET /api/failures': 'viewer', 'GET /api/failures/stats': 'viewer', 'GET /api/failures/stream': 'viewer', 'GET /api/failures/:id': 'viewer',
  'GET /api/connections': 'viewer',
  'GET /api/mqtt-users': 'viewer', 'GET /api/mqtt-users/:username': 'viewer', 'POST /api/mqtt-users': 'operator',
  'PATCH /api/mqtt-users/:username': 'operator', 'DELETE /api/mqtt-users/:username': 'operator',
  'GET /api/acl': 'viewer', 'GET /api/acl/:id': 'viewer', 'POST /api/acl/check': 'viewer', 'POST /api/acl': 'operator',
  'PATCH /api/acl/:id': 'operator', 'DELETE /api/acl/:id': 'operator',
  'GET /api/retained': 'viewer', 'GET /api/retained/*': 'viewer', 'DELETE /api/retained/*': 'operator', 'DELETE /api/retained': 'operator',
  'GET /api/sessions': 'viewer', 'GET /api/sessions/*': 'viewer', 'DELETE /api/sessions/*': 'operator',
  'GET /api/whoami': 'viewer', 'GET /api/audit': 'operator',
  'GET /api/alerts/rules': 'viewer', 'GET /api/alerts/rules/:id': 'viewer', 'GET /api/alerts/history': 'viewer',
  'GET /api/alerts/active': 'viewer', 'POST /api/alerts/rules': 'operator', 'PATCH /api/alerts/rules/:id': 'operator',
  'DELETE /api/alerts/rules/:id': 'operator',
  'GET /api/admin-tokens': 'admin', 'POST /api/admin-tokens': 'admin', 'DELETE /api/admin-tokens/:id': 'admin',
  'GET /healthz': 'public', 'GET /metrics': 'public',
}

test('the roles: viewers read, operators change the broker and read the audit trail, admins manage tokens', async (t) => {
  const s = await server(t)
  const actual = Object.fromEntries(s.app.routeRoles.filter((r) => r.method !== 'HEAD').map((r) => [`${r.method} ${r.url}`, r.role]))
  for (const [route, role] of Object.entries(EXPECTED)) assert.equal(actual[route], role, route)
})
