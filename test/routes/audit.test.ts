// The audit trail through the real server (HTTP over a socket, MQTT.js clients for retained messages and sessions):
// one entry per kind of change with its actor, address, target, before and after; a settings change naming the
// version the history holds; refused changes (400, 403, 404, 409, 412) leaving none; no password, token or hash in an
// entry, in an answer of the API or anywhere in the database files; filters, cursor paging, and who may read it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import Sqlite from 'better-sqlite3'
import { sha256 } from '../../src/audit/tokens.ts'
import { createAuditLog, withoutSecrets } from '../../src/audit/log.ts'
import { openDatabase } from '../../src/db/open.ts'
import { connectMqtt, startServer, tempDir, until, type TestServer } from '../helpers.ts'

const PASSWORD = 'Correct-Horse-7431-audit'
const NEW_PASSWORD = 'Battery-Staple-9902-audit'

type Entry = {
  id: number; at: string; actor: string; action: string; target: string | null
  before: Record<string, unknown> | null; after: Record<string, unknown> | null; remoteAddress: string | null
}

/** A JSON request over HTTP with a bearer token: { status, body, text }. */
async function call(s: TestServer, token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${s.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, text, body: text ? JSON.parse(text) : null }
}

async function makeToken(s: TestServer, name: string, role: string): Promise<string> {
  const res = await call(s, s.token, 'POST', '/api/admin-tokens', { name, role })
  assert.equal(res.status, 201, res.text)
  return res.body.token
}

async function audit(s: TestServer, query = '', token = s.token): Promise<{ items: Entry[]; nextCursor: number | null }> {
  const res = await call(s, token, 'GET', `/api/audit${query}`)
  assert.equal(res.status, 200, res.text)
  return res.body
}

/** Every entry, oldest first. */
const all = async (s: TestServer) => (await audit(s, '?limit=1000')).items.reverse()

test('every kind of change is one audit entry: who, when, what, target, before and after, from where; never a secret', async (t) => {
  const { dir, cleanup } = tempDir('audit-')
  t.after(cleanup)
  const dbPath = join(dir, 'broker.db')
  const s = await startServer({ config: { dbPath } })
  let closed = false
  const clients: Array<{ end(force: boolean): unknown }> = []
  t.after(async () => {
    for (const c of clients) c.end(true)
    if (!closed) await s.close()
  })
  const ops = await makeToken(s, 'ops', 'operator')
  const viewer = await makeToken(s, 'watcher', 'viewer')
  let lastId = 0
  /** The entries written since the last call, oldest first. */
  const fresh = async () => {
    const items = (await all(s)).filter((e) => e.id > lastId)
    if (items.length > 0) lastId = items[items.length - 1].id
    return items
  }
  const only = async (): Promise<Entry> => {
    const items = await fresh()
    assert.equal(items.length, 1, JSON.stringify(items))
    const [e] = items
    assert.equal(e.remoteAddress, '127.0.0.1')
    assert.ok(Math.abs(Date.parse(e.at) - Date.now()) < 10_000, e.at)
    return e
  }
  const nothing = async (what: string) => assert.deepEqual(await fresh(), [], `${what} leaves no entry`)

  await t.test('the two tokens made for this test are the first entries', async () => {
    const [first, second] = await fresh()
    assert.deepEqual([first.actor, first.action, first.target, first.before], ['admin', 'token.create', 'ops', null])
    assert.deepEqual(first.after, { id: first.after!.id, name: 'ops', role: 'operator' })
    assert.deepEqual([second.action, second.target, second.after!.role], ['token.create', 'watcher', 'viewer'])
  })

  await t.test('settings: update, replace, rollback, each naming the version the history holds', async () => {
    const defaults = (await call(s, ops, 'GET', '/api/settings/defaults')).body.values
    const patched = await call(s, ops, 'PATCH', '/api/settings', { values: { connectTimeoutMs: 15000, maxConnections: 500 }, comment: 'slow links' })
    assert.equal(patched.status, 200, patched.text)
    const e = await only()
    assert.equal(e.actor, 'ops')
    assert.equal(e.action, 'settings.update')
    assert.equal(e.target, null)
    assert.deepEqual(e.before, { version: 1, values: { connectTimeoutMs: defaults.connectTimeoutMs, maxConnections: defaults.maxConnections } })
    assert.deepEqual(e.after, { version: 2, values: { connectTimeoutMs: 15000, maxConnections: 500 }, comment: 'slow links' })
    const history = (await call(s, viewer, 'GET', '/api/settings/history')).body.items
    assert.equal(history[0].version, e.after!.version, 'the version is in the history')
    assert.equal(history[0].updatedBy, 'ops')

    assert.equal((await call(s, ops, 'PUT', '/api/settings', { values: defaults })).status, 200)
    const put = await only()
    assert.equal(put.action, 'settings.replace')
    assert.deepEqual(put.after, { version: 3, values: { connectTimeoutMs: defaults.connectTimeoutMs, maxConnections: defaults.maxConnections }, comment: null })

    assert.equal((await call(s, ops, 'POST', '/api/settings/rollback', { version: 2 })).status, 200)
    const rollback = await only()
    assert.equal(rollback.action, 'settings.rollback')
    assert.deepEqual(rollback.before, { version: 3, values: { connectTimeoutMs: defaults.connectTimeoutMs, maxConnections: defaults.maxConnections } })
    assert.deepEqual(rollback.after, { version: 4, values: { connectTimeoutMs: 15000, maxConnections: 500 }, comment: 'rollback to version 2', rolledBackTo: 2 })
  })

  await t.test('refused settings changes leave no entry: 400, 403, 412, 404', async () => {
    assert.equal((await call(s, ops, 'PATCH', '/api/settings', { values: { connectTimeoutMs: -1 } })).status, 400)
    assert.equal((await call(s, viewer, 'PATCH', '/api/settings', { values: { connectTimeoutMs: 20000 } })).status, 403)
    assert.equal((await call(s, ops, 'PATCH', '/api/settings', { values: { connectTimeoutMs: 20000 } }, { 'if-match': '"1"' })).status, 412)
    assert.equal((await call(s, ops, 'POST', '/api/settings/rollback', { version: 99 })).status, 404)
    await nothing('a refused settings change')
  })

  await t.test('MQTT users: create, update (the password only as "changed"), delete', async () => {
    const created = await call(s, ops, 'POST', '/api/mqtt-users', { username: 'sensor-1', password: PASSWORD, note: 'greenhouse' })
    assert.equal(created.status, 201, created.text)
    const e = await only()
    assert.deepEqual([e.actor, e.action, e.target, e.before], ['ops', 'mqtt-user.create', 'sensor-1', null])
    assert.deepEqual(e.after, created.body)

    assert.equal((await call(s, ops, 'PATCH', '/api/mqtt-users/sensor-1', { password: NEW_PASSWORD, enabled: false })).status, 200)
    const u = await only()
    assert.equal(u.action, 'mqtt-user.update')
    assert.equal(u.before!.enabled, true)
    assert.equal(u.after!.enabled, false)
    assert.equal(u.after!.passwordChanged, true)
    assert.equal((await call(s, ops, 'PATCH', '/api/mqtt-users/sensor-1', { note: 'moved' })).status, 200)
    assert.equal((await only()).after!.passwordChanged, false)

    assert.equal((await call(s, ops, 'POST', '/api/mqtt-users', { username: 'sensor-1', password: PASSWORD })).status, 409)
    assert.equal((await call(s, ops, 'POST', '/api/mqtt-users', { username: 'sensor-2', password: '' })).status, 400)
    assert.equal((await call(s, viewer, 'POST', '/api/mqtt-users', { username: 'sensor-2', password: PASSWORD })).status, 403)
    assert.equal((await call(s, ops, 'DELETE', '/api/mqtt-users/nobody')).status, 404)
    assert.equal((await call(s, ops, 'PATCH', '/api/mqtt-users/nobody', { enabled: true })).status, 404)
    await nothing('a refused user change')

    assert.equal((await call(s, ops, 'DELETE', '/api/mqtt-users/sensor-1')).status, 204)
    const d = await only()
    assert.deepEqual([d.action, d.target, d.after], ['mqtt-user.delete', 'sensor-1', null])
    assert.equal(d.before!.username, 'sensor-1')
    assert.equal(d.before!.note, 'moved')
  })

  await t.test('ACL rules: create, update (a move), delete', async () => {
    const first = await call(s, ops, 'POST', '/api/acl', { topic: 'a/#', action: 'all', permission: 'allow' })
    const second = await call(s, ops, 'POST', '/api/acl', { topic: 'b/#', action: 'publish', permission: 'deny', comment: 'no b' })
    assert.equal(second.status, 201)
    const [c1, c2] = await fresh()
    assert.deepEqual([c1.action, c1.target, c1.after], ['acl.create', String(first.body.id), first.body])
    assert.deepEqual([c2.action, c2.target, c2.after], ['acl.create', String(second.body.id), second.body])

    const moved = await call(s, ops, 'PATCH', `/api/acl/${second.body.id}`, { position: 1, permission: 'allow' })
    assert.equal(moved.status, 200)
    const u = await only()
    assert.equal(u.action, 'acl.update')
    assert.deepEqual(u.before, second.body)
    assert.deepEqual(u.after, moved.body)
    assert.deepEqual([u.before!.position, u.after!.position, u.after!.permission], [2, 1, 'allow'])

    assert.equal((await call(s, ops, 'POST', '/api/acl', { topic: 'bad/#/x', action: 'all', permission: 'allow' })).status, 400)
    assert.equal((await call(s, ops, 'DELETE', '/api/acl/999')).status, 404)
    assert.equal((await call(s, viewer, 'DELETE', `/api/acl/${first.body.id}`)).status, 403)
    // "try it" is a question, not a change
    assert.equal((await call(s, viewer, 'POST', '/api/acl/check', { clientId: 'c', action: 'publish', topic: 'a/1' })).status, 200)
    await nothing('a refused ACL change, or a check')

    assert.equal((await call(s, ops, 'DELETE', `/api/acl/${first.body.id}`)).status, 204)
    const d = await only()
    assert.deepEqual([d.action, d.target, d.after], ['acl.delete', String(first.body.id), null])
    assert.equal(d.before!.topic, 'a/#')
  })

  await t.test('retained messages: one deleted by topic, more by prefix; the payload is never in the entry', async () => {
    const client = await connectMqtt(s.wsUrl, { clientId: 'publisher-a' })
    clients.push(client)
    await client.publishAsync('devices/7/config', 'secret-payload-7', { qos: 1, retain: true })
    await client.publishAsync('devices/8/config', 'secret-payload-8', { qos: 1, retain: true })
    await client.publishAsync('devices/9/config', 'secret-payload-9', { qos: 0, retain: true })
    await until(() => s.app.broker.retained.size === 3, 'three retained messages')

    assert.equal((await call(s, ops, 'DELETE', `/api/retained/${encodeURIComponent('devices/7/config')}`)).status, 204)
    const e = await only()
    assert.deepEqual([e.action, e.target, e.after], ['retained.delete', 'devices/7/config', null])
    assert.deepEqual(e.before, { topic: 'devices/7/config', qos: 1, payloadBytes: 16, expiresAt: null })

    assert.equal((await call(s, ops, 'DELETE', '/api/retained/nothing%2Fhere')).status, 404)
    assert.equal((await call(s, ops, 'DELETE', '/api/retained?prefix=')).status, 400)
    assert.equal((await call(s, viewer, 'DELETE', '/api/retained?prefix=devices%2F')).status, 403)
    await nothing('a refused retained delete')

    const res = await call(s, ops, 'DELETE', '/api/retained?prefix=devices%2F')
    assert.deepEqual(res.body, { deleted: 2 })
    const p = await only()
    assert.deepEqual([p.action, p.target, p.before, p.after], ['retained.delete-prefix', 'devices/', null, { prefix: 'devices/', all: false, deleted: 2 }])
  })

  await t.test('sessions: ending one records it as it was', async () => {
    const keeper = await connectMqtt(s.wsUrl, { clientId: 'keeper-1', clean: false })
    await keeper.subscribeAsync('jobs/#', { qos: 1 })
    await keeper.endAsync()
    await until(() => s.app.broker.clientConnection('keeper-1') === undefined, 'keeper-1 offline')

    assert.equal((await call(s, viewer, 'DELETE', '/api/sessions/keeper-1')).status, 403)
    assert.equal((await call(s, ops, 'DELETE', '/api/sessions/no-such-client')).status, 404)
    await nothing('a refused session delete')
    assert.equal((await call(s, ops, 'DELETE', '/api/sessions/keeper-1')).status, 204)
    const e = await only()
    assert.deepEqual([e.actor, e.action, e.target, e.after], ['ops', 'session.delete', 'keeper-1', null])
    assert.equal(e.before!.clientId, 'keeper-1')
    assert.equal(e.before!.online, false)
    assert.equal(e.before!.subscriptions, 1)
  })

  let botSecret = ''
  await t.test('tokens: made and revoked (by an admin), never with the secret or its hash', async () => {
    const made = await call(s, s.token, 'POST', '/api/admin-tokens', { name: 'ci-bot', role: 'operator' })
    botSecret = made.body.token
    const e = await only()
    assert.deepEqual([e.actor, e.action, e.target, e.before], ['admin', 'token.create', 'ci-bot', null])
    assert.deepEqual(e.after, { id: made.body.id, name: 'ci-bot', role: 'operator' })
    assert.equal((await call(s, ops, 'POST', '/api/admin-tokens', { name: 'sneaky', role: 'admin' })).status, 403)
    assert.equal((await call(s, s.token, 'POST', '/api/admin-tokens', { name: 'ci-bot', role: 'viewer' })).status, 409)
    assert.equal((await call(s, s.token, 'DELETE', '/api/admin-tokens/0')).status, 409)
    assert.equal((await call(s, s.token, 'DELETE', '/api/admin-tokens/999')).status, 404)
    await nothing('a refused token change')

    // the bot's own change is in its name
    assert.equal((await call(s, botSecret, 'PATCH', '/api/settings', { values: { maxConnections: 600 } })).status, 200)
    assert.equal((await only()).actor, 'ci-bot')

    assert.equal((await call(s, s.token, 'DELETE', `/api/admin-tokens/${made.body.id}`)).status, 204)
    const r = await only()
    assert.deepEqual([r.action, r.target, r.before, r.after], ['token.revoke', 'ci-bot', { id: made.body.id, name: 'ci-bot', role: 'operator' }, null])
  })

  await t.test('reading: filters by actor, action prefix, target and time; cursor paging; operators may, viewers may not', async () => {
    const everything = await all(s)
    const ids = (items: Entry[]) => items.map((e) => e.id)
    const newestFirst = [...everything].reverse()
    assert.deepEqual(ids((await audit(s)).items), ids(newestFirst))

    assert.deepEqual(ids((await audit(s, '?actor=ci-bot')).items), ids(newestFirst.filter((e) => e.actor === 'ci-bot')))
    assert.deepEqual((await audit(s, '?action=settings')).items.map((e) => e.action),
      ['settings.update', 'settings.rollback', 'settings.replace', 'settings.update'])
    assert.deepEqual((await audit(s, '?action=mqtt-user.')).items.map((e) => e.action),
      ['mqtt-user.delete', 'mqtt-user.update', 'mqtt-user.update', 'mqtt-user.create'])
    assert.deepEqual((await audit(s, '?action=acl.delete')).items.length, 1)
    assert.deepEqual((await audit(s, '?target=sensor-1&actor=ops')).items.length, 4)
    assert.deepEqual((await audit(s, `?target=${encodeURIComponent('devices/7/config')}`)).items.map((e) => e.action), ['retained.delete'])
    assert.deepEqual((await audit(s, '?action=nothing')).items, [])

    const mid = everything[Math.floor(everything.length / 2)]
    const since = await audit(s, `?since=${encodeURIComponent(mid.at)}`)
    assert.ok(since.items.every((e) => Date.parse(e.at) >= Date.parse(mid.at)))
    assert.ok(since.items.some((e) => e.id === mid.id))
    const until_ = await audit(s, `?until=${encodeURIComponent(mid.at)}`)
    assert.ok(until_.items.every((e) => Date.parse(e.at) <= Date.parse(mid.at)))
    assert.deepEqual((await audit(s, `?until=${encodeURIComponent('2000-01-01T00:00:00Z')}`)).items, [])

    // pages of 3 walk everything, newest first, without gaps or repeats
    const walked: number[] = []
    let cursor: number | null = null
    do {
      const page: { items: Entry[]; nextCursor: number | null } = await audit(s, `?limit=3${cursor === null ? '' : `&before=${cursor}`}`)
      assert.ok(page.items.length <= 3)
      walked.push(...ids(page.items))
      cursor = page.nextCursor
    } while (cursor !== null)
    assert.deepEqual(walked, ids(newestFirst))

    assert.equal((await call(s, ops, 'GET', '/api/audit?since=yesterday')).status, 400)
    assert.equal((await call(s, ops, 'GET', '/api/audit?limit=0')).status, 400)
    assert.equal((await call(s, ops, 'GET', '/api/audit?color=red')).status, 400)
    assert.equal((await call(s, ops, 'GET', '/api/audit')).status, 200)
    const refused = await call(s, viewer, 'GET', '/api/audit')
    assert.equal(refused.status, 403)
    assert.equal(refused.body.code, 'FORBIDDEN')
    assert.equal((await fetch(`${s.url}/api/audit`)).status, 401)
  })

  await t.test('no password, token or hash in any entry, in any answer, or anywhere in the database files', async () => {
    const secrets = [PASSWORD, NEW_PASSWORD, botSecret, ops, viewer, s.token, sha256(botSecret).toString('hex'), sha256(ops).toString('hex')]
    const answers = [
      (await call(s, s.token, 'GET', '/api/audit?limit=1000')).text,
      (await call(s, s.token, 'GET', '/api/admin-tokens')).text,
      (await call(s, s.token, 'GET', '/api/mqtt-users')).text,
      (await call(s, s.token, 'GET', '/api/settings/history')).text,
    ]
    for (const secret of secrets) for (const text of answers) assert.ok(!text.includes(secret), 'an answer holds a secret')
    const db = new Sqlite(dbPath, { readonly: true })
    const rows = JSON.stringify(db.prepare('SELECT * FROM audit_log').all())
    db.close()
    for (const secret of secrets) assert.ok(!rows.includes(secret), 'an audit row holds a secret')
    assert.ok(!/password"?\s*:/i.test(rows.replace(/passwordChanged/g, '')), 'no password key')

    await s.close()
    closed = true
    // the plain secrets are nowhere in the files (the tokens' hashes are in admin_tokens, by design: they are checked)
    const plain = [PASSWORD, NEW_PASSWORD, botSecret, ops, viewer]
    for (const f of readdirSync(dir)) {
      const bytes = readFileSync(join(dir, f))
      for (const secret of plain) assert.ok(!bytes.includes(secret), `${f} does not hold a secret`)
    }
  })
})

test('the audit store drops secret keys at any depth, whatever a caller passes', () => {
  assert.deepEqual(withoutSecrets({ username: 'u', password: 'p', nested: [{ token: 't', hash: 'h', sha256_hex: 'x', keep: 1 }], passwordChanged: true }),
    { username: 'u', nested: [{ keep: 1 }], passwordChanged: true })
  const { db } = openDatabase(':memory:')
  try {
    const log = createAuditLog(db)
    const e = log.record({ actor: 'a', action: 'x.y', target: 't', before: { password: 'hunter2', secret: 's' }, after: { Token: 'abc', ok: true }, remoteAddress: null })
    assert.deepEqual([e.before, e.after], [{}, { ok: true }])
    assert.ok(!JSON.stringify(db.prepare('SELECT * FROM audit_log').all()).includes('hunter2'))
  } finally {
    db.close()
  }
})
