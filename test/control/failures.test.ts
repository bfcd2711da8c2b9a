// The failure log in cluster mode: each node writes its own records, ships them to PostgreSQL off the failure path and
// pulls the other nodes' into its own log, so the list, the stats and the live stream of any node show every node's.
// PostgreSQL away: the broker serves, writes of settings and users get 503 and change nothing, records wait.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { apiCall, connectMqtt, RawClient, until, waitForFailure, type TestServer } from '../helpers.ts'
import { createTestDatabase, startTwoNodes, type TestDatabase } from './pg.ts'
import type { FailureRecord } from '../../src/failures/schema.ts'

let db: TestDatabase
let a: TestServer
let b: TestServer
let close: (() => Promise<void>) | undefined
before(async () => {
  db = await createTestDatabase()
  ;({ a, b, close } = await startTwoNodes(db))
  assert.equal((await apiCall(a, 'PATCH', '/api/settings', { values: { connectTimeoutMs: 200 } })).status, 200)
  await until(() => b.app.settingsStore.current().values.connectTimeoutMs === 200, 'B runs it', 1000)
})
after(async () => {
  await db.outage(false)
  await close?.()
  await db.drop()
})

/** The events of `server`'s failure stream, as they come. */
async function openStream(server: TestServer, signal: AbortSignal): Promise<FailureRecord[]> {
  const res = await fetch(`${server.url}/api/failures/stream`, { headers: server.auth, signal })
  assert.equal(res.status, 200)
  const seen: FailureRecord[] = []
  const decoder = new TextDecoder()
  let buffered = ''
  void (async () => {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true })
        let end
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const event = buffered.slice(0, end)
          buffered = buffered.slice(end + 2)
          const data = /^event: failure\ndata: (.*)$/m.exec(event.replace(/^id: .*\n/, ''))
          if (data) seen.push(JSON.parse(data[1]) as FailureRecord)
        }
      }
    } catch {
      // aborted
    }
  })()
  return seen
}

/** A WebSocket on `server` that never sends CONNECT: a connect_timeout there. */
async function timeoutOn(server: TestServer, t: { after(fn: () => void): void }) {
  const failed = waitForFailure(server, (e) => e.reason === 'connect_timeout', 3000)
  const raw = await RawClient.open(server.wsUrl)
  t.after(() => raw.ws.terminate())
  return failed
}

test("a failure on A appears with node 'node-a' in B's list (and ?node=), its stats and its live stream", async (t) => {
  const abort = new AbortController()
  t.after(() => abort.abort())
  const stream = await openStream(b, abort.signal)
  const e = await timeoutOn(a, t)
  await until(() => stream.some((r) => r.node === 'node-a' && r.reason === 'connect_timeout' && r.remotePort === e.remotePort),
    "B's stream shows A's failure", 3000)
  const onB = (await apiCall(b, 'GET', '/api/failures?node=node-a')).json.items as FailureRecord[]
  const record = onB.find((r) => r.remotePort === e.remotePort)
  assert.ok(record, "B's list has it")
  assert.equal(record.node, 'node-a')
  assert.equal(record.detail, e.detail)
  assert.equal((await apiCall(b, 'GET', '/api/failures?node=node-b')).json.items.some((r: FailureRecord) => r.remotePort === e.remotePort), false)
  const [own] = (await apiCall(a, 'GET', '/api/failures?reason=connect_timeout')).json.items as FailureRecord[]
  assert.equal(own.node, 'node-a')
  const stats = (await apiCall(b, 'GET', '/api/failures/stats')).json
  assert.ok(stats.totals.connect_timeout >= 1, "B's stats count A's failure")
  // one row per failure in PostgreSQL, however often it was shipped or pulled
  await b.app.controlPlane.catchUp()
  await a.app.controlPlane.catchUp()
  const rows = await db.query('SELECT node FROM failures WHERE remote_port = $1', [e.remotePort])
  assert.deepEqual(rows, [{ node: 'node-a' }])
  assert.equal(b.app.failureLog.list({ node: 'node-a' }).items.filter((r) => r.remotePort === e.remotePort).length, 1)
})

test('PostgreSQL away: the broker serves, changes of settings and users get 503 and change nothing, failures wait and arrive after', async (t) => {
  const version = a.app.settingsStore.current().version
  await db.outage(true)
  t.after(() => db.outage(false))
  await until(() => a.app.controlPlane.status()?.listening === false, "A's LISTEN connection is gone", 2000)

  const patch = await apiCall(a, 'PATCH', '/api/settings', { values: { maxConnections: 4444 } })
  assert.equal(patch.status, 503)
  assert.equal(patch.json.code, 'STORE_UNAVAILABLE')
  assert.equal(a.app.settingsStore.current().version, version)
  const user = await apiCall(b, 'POST', '/api/mqtt-users', { username: 'during-outage', password: 'pw' })
  assert.equal(user.status, 503)
  assert.equal(b.app.mqttUsers.get('during-outage'), null)
  assert.equal((await apiCall(a, 'POST', '/api/acl', { topic: 'x/#', action: 'all', permission: 'deny' })).status, 503)
  const ready = await fetch(`${a.url}/readyz`)
  assert.equal(ready.status, 503)
  assert.ok(((await ready.json()) as { failing: string[] }).failing.includes('postgresql'))

  // MQTT goes on, and failures are logged here
  const client = await connectMqtt(a.wsUrl, { clientId: 'during-outage' })
  client.end(true)
  const e = await timeoutOn(a, t)
  a.app.failureLog.flush()
  assert.ok(a.app.failureLog.list().items.some((r) => r.remotePort === e.remotePort))

  await db.outage(false)
  await until(() => b.app.failureLog.list({ node: 'node-a' }).items.some((r) => r.remotePort === e.remotePort),
    "B has the failure A had while PostgreSQL was away", 8000)
  await until(() => a.app.controlPlane.status()?.ok === true, 'A is back', 3000)
  assert.equal((await apiCall(a, 'PATCH', '/api/settings', { values: { maxConnections: 4444 } })).json.version, version + 1)
})
