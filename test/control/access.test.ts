// MQTT users and ACL rules in cluster mode: written to PostgreSQL first (its constraints decide races between nodes),
// then copied into every node's SQLite replica, where the authenticator and the compiled ACL read them.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { apiCall, connectMqtt, until, type TestServer } from '../helpers.ts'
import { createTestDatabase, startTwoNodes, type TestDatabase } from './pg.ts'

let db: TestDatabase
let a: TestServer
let b: TestServer
let close: (() => Promise<void>) | undefined
before(async () => {
  db = await createTestDatabase()
  ;({ a, b, close } = await startTwoNodes(db))
})
after(async () => {
  await close?.()
  await db.drop()
})

test('an MQTT user created on A logs in on B; disabled on B, it is refused on A; the hash travels, never the password', async (t) => {
  const created = await apiCall(a, 'POST', '/api/mqtt-users', { username: 'sensor-1', password: 'correct horse', note: 'made on A' })
  assert.equal(created.status, 201)
  await until(() => b.app.mqttUsers.get('sensor-1') !== null, 'B has the user', 1000)
  const [row] = await db.query<{ password_hash: string }>("SELECT password_hash FROM mqtt_users WHERE username = 'sensor-1'")
  assert.match(row.password_hash, /^scrypt\$/)
  assert.ok(!row.password_hash.includes('correct horse'))

  assert.equal((await apiCall(a, 'PATCH', '/api/settings', { values: { allowAnonymous: false } })).status, 200)
  await until(() => b.app.settingsStore.current().values.allowAnonymous === false, 'B refuses anonymous clients', 1000)
  const client = await connectMqtt(b.wsUrl, { username: 'sensor-1', password: 'correct horse', clientId: 'c-on-b' })
  client.end(true)
  await assert.rejects(connectMqtt(b.wsUrl, { username: 'sensor-1', password: 'wrong', clientId: 'c-on-b2' }))

  assert.equal((await apiCall(b, 'PATCH', '/api/mqtt-users/sensor-1', { enabled: false })).status, 200)
  await until(() => a.app.mqttUsers.get('sensor-1')?.enabled === false, 'A has it disabled', 1000)
  await assert.rejects(connectMqtt(a.wsUrl, { username: 'sensor-1', password: 'correct horse', clientId: 'c-on-a' }))

  assert.equal((await apiCall(b, 'DELETE', '/api/mqtt-users/sensor-1')).status, 204)
  await until(() => a.app.mqttUsers.get('sensor-1') === null, 'A has it deleted', 1000)
  assert.equal((await apiCall(a, 'DELETE', '/api/mqtt-users/sensor-1')).status, 404)
  assert.equal((await apiCall(a, 'PATCH', '/api/mqtt-users/sensor-1', { note: 'x' })).status, 404)
  t.after(() => apiCall(a, 'PATCH', '/api/settings', { values: { allowAnonymous: true } }))
})

test('one username created on two nodes at once: one 201, one 409, and both nodes hold the winner', async () => {
  for (let round = 0; round < 3; round++) {
    const username = `twin-${round}`
    const [x, y] = await Promise.all([
      apiCall(a, 'POST', '/api/mqtt-users', { username, password: 'from-a', note: 'A' }),
      apiCall(b, 'POST', '/api/mqtt-users', { username, password: 'from-b', note: 'B' }),
    ])
    assert.deepEqual([x.status, y.status].sort(), [201, 409], `round ${round}`)
    const loser = x.status === 409 ? x : y
    assert.equal(loser.json.code, 'CONFLICT')
    const winner = x.status === 201 ? 'A' : 'B'
    await until(() => a.app.mqttUsers.get(username)?.note === winner && b.app.mqttUsers.get(username)?.note === winner,
      'both nodes hold the winner', 1000)
  }
})

test('an ACL rule created on A denies on B; moved and deleted on B, A follows; positions stay 1, 2, 3', async () => {
  const deny = await apiCall(a, 'POST', '/api/acl', { topic: 'secret/#', action: 'all', permission: 'deny', comment: 'no secrets' })
  assert.equal(deny.status, 201)
  const check = () => apiCall(b, 'POST', '/api/acl/check', { clientId: 'x', action: 'publish', topic: 'secret/plans' })
  await until(() => b.app.acl.list().some((r) => r.id === deny.json.id), 'B has the rule', 1000)
  assert.equal((await check()).json.allowed, false)
  // a live client on B is refused the subscription
  const client = await connectMqtt(b.wsUrl, { clientId: 'acl-on-b' })
  await assert.rejects(client.subscribeAsync('secret/#', { qos: 1 }), /Subscribe error/)
  client.end(true)

  const allow = await apiCall(b, 'POST', '/api/acl', { topic: 'secret/public', action: 'all', permission: 'allow', position: 1 })
  assert.equal(allow.status, 201)
  await until(() => a.app.acl.list().length === 2, 'A has both', 1000)
  assert.deepEqual(a.app.acl.list().map((r) => [r.id, r.position]), [[allow.json.id, 1], [deny.json.id, 2]])
  assert.equal((await apiCall(a, 'POST', '/api/acl/check', { clientId: 'x', action: 'publish', topic: 'secret/public' })).json.allowed, true)

  const third = await apiCall(a, 'POST', '/api/acl', { topic: 'other/#', action: 'publish', permission: 'deny' })
  assert.equal((await apiCall(b, 'PATCH', `/api/acl/${third.json.id}`, { position: 1 })).status, 200)
  await until(() => a.app.acl.list()[0]?.id === third.json.id, 'A has it moved', 1000)
  assert.deepEqual(a.app.acl.list().map((r) => r.position), [1, 2, 3])
  assert.deepEqual(a.app.acl.list(), b.app.acl.list())

  assert.equal((await apiCall(b, 'DELETE', `/api/acl/${deny.json.id}`)).status, 204)
  await until(() => a.app.acl.list().length === 2, 'A has it deleted', 1000)
  assert.equal((await check()).json.allowed, true)
  assert.equal((await apiCall(a, 'DELETE', `/api/acl/${deny.json.id}`)).status, 404)
  assert.equal((await apiCall(a, 'POST', '/api/acl', { topic: 'x', action: 'all', permission: 'deny', position: 9 })).status, 400)
})
