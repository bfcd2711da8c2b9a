// Settings versions in cluster mode: two and three nodes in this process on one PostgreSQL database (of this file's
// own), each with its own SQLite replica. A change on any node is in force on every node within 1 s (the REST answer
// and live connections), If-Match and races are decided by PostgreSQL, history and rollback are the cluster's, and a
// node that was stopped, or whose LISTEN connection dropped, catches up.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { apiCall, delay, RawClient, startServer, tempDir, until, waitForFailure, type TestServer } from '../helpers.ts'
import { createTestDatabase, startTwoNodes, type TestDatabase } from './pg.ts'
import type { BootConfig } from '../../src/config.ts'

let db: TestDatabase
const tmp = tempDir('control-settings-')
before(async () => {
  db = await createTestDatabase()
})
after(async () => {
  await db.drop()
  tmp.cleanup()
})

const node = (nodeId: string, config: Partial<BootConfig> = {}) =>
  startServer({ config: { databaseUrl: db.url, nodeId, ...config } })

/** Resolves once `fn` holds on the node's GET /api/settings; fails after `ms`. */
async function seen(server: TestServer, fn: (v: { version: number; values: Record<string, unknown> }) => boolean, what: string, ms = 1000) {
  const end = Date.now() + ms
  for (;;) {
    const { json } = await apiCall(server, 'GET', '/api/settings')
    if (fn(json)) return json
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what} (last seen ${JSON.stringify({ version: json.version })})`)
    await delay(20)
  }
}

test('a PATCH on one node is in force on the other within 1 s: the REST answer and a connection waiting for its CONNECT', async (t) => {
  const { a, b, close } = await startTwoNodes(db)
  t.after(close)
  assert.equal((await apiCall(b, 'GET', '/api/settings')).json.version, (await apiCall(a, 'GET', '/api/settings')).json.version)

  // a socket on B that never sends CONNECT: its deadline is re-computed from its open time when the version arrives
  const raw = await RawClient.open(b.wsUrl)
  t.after(() => raw.ws.terminate())
  const timedOut = waitForFailure(b, (e) => e.reason === 'connect_timeout', 3000)
  const t0 = Date.now()
  const patched = await apiCall(a, 'PATCH', '/api/settings', { values: { connectTimeoutMs: 400, keepaliveMultiplier: 2 }, comment: 'from A' })
  assert.equal(patched.status, 200)
  await seen(b, (v) => v.version === patched.json.version && v.values.connectTimeoutMs === 400, 'B runs the new version')
  assert.ok(Date.now() - t0 < 1000)
  assert.equal(b.app.broker.settings.values.keepaliveMultiplier, 2, "B's broker runs it too")
  const failure = await timedOut
  assert.equal(failure.settingsVersion, patched.json.version)
  assert.equal(failure.node, undefined, 'the core names no node; the log fills it in')
  await until(() => b.app.failureLog.list({ reason: 'connect_timeout' }).items.length > 0 || (b.app.failureLog.flush(), false), 'B logged it')
  assert.equal(b.app.failureLog.list({ reason: 'connect_timeout' }).items[0].node, 'node-b')
})

test('If-Match is checked against the cluster: a version made on A makes B\'s ETag stale (412)', async (t) => {
  const { a, b, close } = await startTwoNodes(db)
  t.after(close)
  const start = (await apiCall(b, 'GET', '/api/settings')).json.version
  const onA = await apiCall(a, 'PATCH', '/api/settings', { values: { maxConnections: 1234 } })
  assert.equal(onA.status, 200)
  // B may not even have adopted it yet: PostgreSQL decides
  const res = await fetch(`${b.url}/api/settings`, {
    method: 'PATCH',
    headers: { ...b.auth, 'content-type': 'application/json', 'if-match': `"${start}"` },
    body: JSON.stringify({ values: { maxConnections: 99 } }),
  })
  assert.equal(res.status, 412)
  assert.equal(((await res.json()) as { code: string }).code, 'STALE_VERSION')
  // with the right ETag it goes through
  const ok = await fetch(`${b.url}/api/settings`, {
    method: 'PATCH',
    headers: { ...b.auth, 'content-type': 'application/json', 'if-match': `"${onA.json.version}"` },
    body: JSON.stringify({ values: { maxConnections: 99 } }),
  })
  assert.equal(ok.status, 200)
  await seen(a, (v) => v.values.maxConnections === 99, 'A runs it')
})

test('racing PATCHes on two nodes both land, as consecutive versions, neither losing a field', async (t) => {
  const { a, b, close } = await startTwoNodes(db)
  t.after(close)
  const start = (await apiCall(a, 'GET', '/api/settings')).json.version
  for (let round = 0; round < 3; round++) {
    const [x, y] = await Promise.all([
      apiCall(a, 'PATCH', '/api/settings', { values: { maxTopicLevels: 10 + round } }),
      apiCall(b, 'PATCH', '/api/settings', { values: { maxTopicLength: 1000 + round } }),
    ])
    assert.equal(x.status, 200)
    assert.equal(y.status, 200)
    assert.deepEqual([x.json.version, y.json.version].sort((p, q) => p - q), [start + 2 * round + 1, start + 2 * round + 2])
  }
  const newest = start + 6
  for (const s of [a, b]) {
    const v = await seen(s, (v) => v.version === newest, `node runs version ${newest}`)
    assert.equal(v.values.maxTopicLevels, 12)
    assert.equal(v.values.maxTopicLength, 1002)
  }
  const rows = await db.query<{ version: number }>('SELECT version FROM settings_versions WHERE version > $1 ORDER BY version', [start])
  assert.deepEqual(rows.map((r) => r.version), [1, 2, 3, 4, 5, 6].map((i) => start + i))
})

test('history and rollback are the cluster\'s: a rollback on B is the newest version on A, with the same history', async (t) => {
  const { a, b, close } = await startTwoNodes(db)
  t.after(close)
  const base = (await apiCall(a, 'PATCH', '/api/settings', { values: { maxSessions: 500 }, comment: 'base' })).json.version
  await apiCall(a, 'PATCH', '/api/settings', { values: { maxSessions: 600 }, comment: 'later' })
  const back = await apiCall(b, 'POST', '/api/settings/rollback', { version: base })
  assert.equal(back.status, 200)
  assert.equal(back.json.values.maxSessions, 500)
  assert.equal(back.json.comment, `rollback to version ${base}`)
  await seen(a, (v) => v.version === back.json.version && v.values.maxSessions === 500, 'A runs the rollback')
  const ha = (await apiCall(a, 'GET', '/api/settings/history?limit=5')).json
  const hb = (await apiCall(b, 'GET', '/api/settings/history?limit=5')).json
  assert.deepEqual(ha, hb)
  assert.deepEqual(ha.items[0].diff, [{ key: 'maxSessions', from: 600, to: 500 }])
  assert.equal((await apiCall(a, 'POST', '/api/settings/rollback', { version: 99999 })).status, 404)
})

test('a node stopped while versions were made runs the newest as it starts', async (t) => {
  const dbPath = join(tmp.dir, 'b.db')
  const a = await node('node-a')
  t.after(() => a.close())
  let b = await node('node-b', { dbPath })
  await b.close()
  const v1 = await apiCall(a, 'PATCH', '/api/settings', { values: { maxQueuedMessages: 321 } })
  const v2 = await apiCall(a, 'PATCH', '/api/settings', { values: { maxQueuedBytes: 654321 } })
  assert.equal(v2.json.version, v1.json.version + 1)
  b = await node('node-b', { dbPath })
  t.after(() => b.close())
  // in force as it started: before the broker took its first connection
  assert.equal(b.app.settingsStore.current().version, v2.json.version)
  assert.equal(b.app.broker.settings.values.maxQueuedMessages, 321)
  assert.deepEqual((await apiCall(b, 'GET', '/api/settings/history?limit=3')).json, (await apiCall(a, 'GET', '/api/settings/history?limit=3')).json)
})

test('a notification missed while the LISTEN connection was down is caught up when it comes back', async (t) => {
  const { a, b, close } = await startTwoNodes(db)
  t.after(close)
  const listenBackend = async () =>
    (await db.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = 'mqtt:node-b:listen' AND datname = current_database()`))
  const [listen] = await listenBackend()
  assert.ok(listen, "B's LISTEN connection is named in pg_stat_activity")
  await db.query('SELECT pg_terminate_backend($1)', [listen.pid])
  const patched = await apiCall(a, 'PATCH', '/api/settings', { values: { maxSubscriptionsPerClient: 77 } })
  assert.equal(patched.status, 200)
  await seen(b, (v) => v.version === patched.json.version, 'B caught up', 1500)
  // and it listens again: the next change arrives by notification
  await until(() => b.app.controlPlane.status()?.listening === true, 'B listens again', 2000)
  const [again] = await listenBackend()
  assert.notEqual(again?.pid, listen.pid)
  const next = await apiCall(a, 'PATCH', '/api/settings', { values: { maxSubscriptionsPerClient: 78 } })
  await seen(b, (v) => v.version === next.json.version, 'B runs the next one', 1000)
})

test('three nodes: a change on the third is in force on the first two within 1 s', async (t) => {
  const nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => node(id)))
  t.after(() => Promise.all(nodes.map((n) => n.close())))
  const t0 = Date.now()
  const res = await apiCall(nodes[2], 'PATCH', '/api/settings', { values: { maxRetainedMessages: 4321 } })
  await Promise.all(nodes.slice(0, 2).map((n) => seen(n, (v) => v.version === res.json.version, `${n.app.failureLog.node} runs it`)))
  assert.ok(Date.now() - t0 < 1000)
})

test('a node that ran alone founds a new cluster with its own settings history, MQTT users and ACL rules; a second node takes them', async (t) => {
  const fresh = await createTestDatabase()
  const dbPath = join(tmp.dir, 'alone.db')
  const alone = await startServer({ config: { dbPath } })
  await apiCall(alone, 'PATCH', '/api/settings', { values: { connectTimeoutMs: 2500 }, comment: 'tuned alone' })
  assert.equal((await apiCall(alone, 'POST', '/api/mqtt-users', { username: 'old-user', password: 'pw-1' })).status, 201)
  assert.equal((await apiCall(alone, 'POST', '/api/acl', { topic: 'old/#', action: 'all', permission: 'deny' })).status, 201)
  await alone.close()

  const first = await startServer({ config: { dbPath, databaseUrl: fresh.url, nodeId: 'first' } })
  t.after(() => first.close())
  const v = (await apiCall(first, 'GET', '/api/settings')).json
  assert.equal(v.version, 2)
  assert.equal(v.values.connectTimeoutMs, 2500)
  assert.deepEqual((await fresh.query('SELECT version, comment FROM settings_versions ORDER BY version')),
    [{ version: 1, comment: 'built-in defaults' }, { version: 2, comment: 'tuned alone' }])
  assert.deepEqual(await fresh.query("SELECT value FROM cluster_meta WHERE key = 'seeded_by'"), [{ value: 'first' }])

  const second = await startServer({ config: { databaseUrl: fresh.url, nodeId: 'second' } })
  t.after(() => second.close())
  t.after(() => fresh.drop())
  assert.equal(second.app.settingsStore.current().values.connectTimeoutMs, 2500)
  assert.deepEqual(second.app.mqttUsers.list().items.map((u) => u.username), ['old-user'])
  assert.deepEqual(second.app.acl.list().map((r) => r.topic), ['old/#'])
  // the next rule made in the cluster gets an id after the seeded ones
  const rule = await apiCall(second, 'POST', '/api/acl', { topic: 'new/#', action: 'all', permission: 'allow' })
  assert.equal(rule.json.id, first.app.acl.list()[0].id + 1)
})
