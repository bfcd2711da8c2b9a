// GET /readyz: 200 while the database can be written (and every added check passes), 503 naming what fails: a
// read-only connection, a lock another connection holds, a check that fails or hangs, a shutdown. /healthz stays 200
// through all of it. In a real process, SIGTERM with SHUTDOWN_DRAIN_MS turns /readyz 503 while MQTT clients are
// still connected and served, then closes them and exits 0.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import Sqlite from 'better-sqlite3'
import type { MqttClient } from 'mqtt'
import { connectMqtt, delay, MessageLog, startServer, startServerProcess, tempDir, TEST_TOKEN, until, type TestServer } from './helpers.ts'
import { CHECK_TIMEOUT_MS } from '../src/plugins/readiness.ts'
import type { BootConfig } from '../src/config.ts'

interface Report {
  status: string
  failing: string[]
  checks: Record<string, { ok: boolean; detail?: string }>
}

const readyz = async (s: TestServer) => {
  const res = await s.app.inject({ url: '/readyz' })
  return { status: res.statusCode, body: res.json() as Report, headers: res.headers }
}

async function fileServer(t: { after(fn: () => unknown): void }, config: Partial<BootConfig> = {}) {
  const tmp = tempDir('readyz-')
  const dbPath = join(tmp.dir, 'broker.db')
  const s = await startServer({ config: { dbPath, ...config } })
  t.after(async () => {
    await s.close()
    tmp.cleanup()
  })
  return { s, dbPath }
}

for (const mqttState of ['sqlite', 'memory'] as const) {
  test(`/readyz answers 200 with the database check, no token needed (MQTT_STATE=${mqttState})`, async (t) => {
    const { s } = await fileServer(t, { mqttState })
    const r = await readyz(s)
    assert.equal(r.status, 200)
    assert.deepEqual(r.body, { status: 'ready', failing: [], checks: { database: { ok: true } } })
    assert.equal(r.headers['cache-control'], 'no-store')
  })
}

test('/readyz is in the OpenAPI document, public, with its 200 and 503 answers', async (t) => {
  const s = await startServer()
  t.after(() => s.close())
  const doc = (await s.app.inject({ url: '/docs/json' })).json()
  const op = doc.paths['/readyz']?.get
  assert.ok(op, 'documented')
  assert.deepEqual(Object.keys(op.responses).sort(), ['200', '503'])
  assert.equal(op.security, undefined, 'no token')
})

test('/readyz probes write nothing: a flood of them leaves the file and its WAL as they were', async (t) => {
  // the MQTT state's writer is the only other writer here, and stamps the file every second: memory mode, no writer
  const { s, dbPath } = await fileServer(t, { mqttState: 'memory' })
  const size = () => statSync(dbPath).size + statSync(`${dbPath}-wal`).size
  const before = size()
  for (let i = 0; i < 500; i++) assert.equal((await readyz(s)).status, 200)
  assert.equal(size(), before)
})

test('a read-only database connection: /readyz 503 naming database, /healthz still 200; writable again: 200', async (t) => {
  for (const mqttState of ['sqlite', 'memory'] as const) {
    const { s } = await fileServer(t, { mqttState })
    s.app.db.pragma('query_only = ON')
    const r = await readyz(s)
    assert.equal(r.status, 503, mqttState)
    assert.equal(r.body.status, 'not_ready')
    assert.deepEqual(r.body.failing, ['database'])
    assert.equal(r.body.checks.database.ok, false)
    assert.match(r.body.checks.database.detail!, /cannot be written: attempt to write a readonly database \(SQLITE_READONLY\)/)
    assert.equal((await s.app.inject({ url: '/healthz' })).statusCode, 200, 'liveness does not touch the database')
    s.app.db.pragma('query_only = OFF')
    assert.equal((await readyz(s)).status, 200)
  }
})

test('a lock held by another connection to the file: 503 naming database (SQLITE_BUSY), 200 once it is released', async (t) => {
  const { s, dbPath } = await fileServer(t)
  const other = new Sqlite(dbPath)
  t.after(() => other.close())
  other.exec('BEGIN EXCLUSIVE')
  const r = await readyz(s)
  assert.equal(r.status, 503)
  assert.deepEqual(r.body.failing, ['database'])
  assert.match(r.body.checks.database.detail!, /database is locked \(SQLITE_BUSY\)/)
  other.exec('ROLLBACK')
  assert.equal((await readyz(s)).status, 200)
})

test('the MQTT state that cannot be written: 503 naming database once its writes fail, 200 once they succeed again', async (t) => {
  const { s } = await fileServer(t)
  const stats = s.app.mqttState.writeBehind!.stats
  /** the writer's next transaction counted in `key` (failed or committed; it writes at least once a second) */
  const nextOne = async (key: 'errors' | 'flushes') => {
    const n = stats[key]
    await until(() => stats[key] > n, `one more ${key === 'errors' ? 'failed' : 'committed'} write of the MQTT state`, 3000)
  }
  assert.equal((await readyz(s)).status, 200)
  // the lock probe passes, the writer's own transactions fail: a trigger refuses its stamp (as a full disk would)
  s.app.db.exec(`CREATE TRIGGER refuse_alive BEFORE UPDATE ON mqtt_state_meta BEGIN SELECT RAISE(FAIL, 'disk says no'); END`)
  // a probe that saw a commit and a failure since the last one keeps its verdict: the one after sees only failures
  await nextOne('errors')
  await readyz(s)
  await nextOne('errors')
  const r = await readyz(s)
  assert.equal(r.status, 503)
  assert.deepEqual(r.body.failing, ['database'])
  assert.match(r.body.checks.database.detail!, /^writing the MQTT state fails \(\d+ failed transactions since start; kept in memory and retried\)$/)
  // probes closer together than its writes keep the verdict
  assert.equal((await readyz(s)).status, 503)
  s.app.db.exec('DROP TRIGGER refuse_alive')
  await nextOne('flushes')
  await readyz(s)
  await nextOne('flushes')
  assert.equal((await readyz(s)).status, 200)
})

test('added checks: each is named, a failing or throwing one makes 503 naming it, a hanging one fails after the timeout', async (t) => {
  const s = await startServer()
  t.after(() => s.close())
  let natsUp = true
  s.app.readiness.add('nats', () => (natsUp ? { ok: true } : { ok: false, detail: 'no answer from nats://x:4222' }))
  s.app.readiness.add('postgres', async () => ({ ok: true }))
  assert.throws(() => s.app.readiness.add('nats', () => ({ ok: true })), /exists already/)
  let r = await readyz(s)
  assert.equal(r.status, 200)
  assert.deepEqual(Object.keys(r.body.checks), ['database', 'nats', 'postgres'])

  natsUp = false
  r = await readyz(s)
  assert.equal(r.status, 503)
  assert.deepEqual(r.body.failing, ['nats'])
  assert.deepEqual(r.body.checks.nats, { ok: false, detail: 'no answer from nats://x:4222' })

  natsUp = true
  s.app.readiness.add('throws', () => {
    throw new Error('boom')
  })
  s.app.readiness.add('hangs', () => new Promise(() => {}))
  const started = Date.now()
  r = await readyz(s)
  const took = Date.now() - started
  assert.equal(r.status, 503)
  assert.deepEqual(r.body.failing, ['throws', 'hangs'])
  assert.deepEqual(r.body.checks.throws, { ok: false, detail: 'boom' })
  assert.deepEqual(r.body.checks.hangs, { ok: false, detail: `no answer within ${CHECK_TIMEOUT_MS} ms` })
  assert.ok(took >= CHECK_TIMEOUT_MS - 50 && took < CHECK_TIMEOUT_MS + 1500, `took ${took} ms`)
})

test('drain(): /readyz 503 naming shutdown, the database still checked, /healthz 200', async (t) => {
  const s = await startServer()
  t.after(() => s.close())
  assert.equal(s.app.readiness.draining, false)
  s.app.readiness.drain('shutting down (SIGTERM)')
  assert.equal(s.app.readiness.draining, true)
  const r = await readyz(s)
  assert.equal(r.status, 503)
  assert.deepEqual(r.body, {
    status: 'not_ready', failing: ['shutdown'],
    checks: { database: { ok: true }, shutdown: { ok: false, detail: 'shutting down (SIGTERM)' } },
  })
  assert.equal((await s.app.inject({ url: '/healthz' })).statusCode, 200)
})

test('SIGTERM with SHUTDOWN_DRAIN_MS: /readyz turns 503 at once while MQTT clients stay connected and served; then they are closed and the process exits 0', async (t) => {
  const tmp = tempDir('drain-')
  t.after(() => tmp.cleanup())
  const DRAIN_MS = 1500
  const { child, port, output } = await startServerProcess({
    DB_PATH: join(tmp.dir, 'broker.db'), ADMIN_TOKEN: TEST_TOKEN, SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
  })
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const base = `http://127.0.0.1:${port}`
  const wsUrl = `ws://127.0.0.1:${port}/mqtt`
  assert.equal((await fetch(`${base}/readyz`)).status, 200)

  let log!: MessageLog
  const sub = await connectMqtt(wsUrl, { clientId: 'drain-sub' }, 3000, (c) => (log = new MessageLog(c)))
  const pub = await connectMqtt(wsUrl, { clientId: 'drain-pub', protocolVersion: 5 })
  const clients: MqttClient[] = [sub, pub]
  t.after(() => clients.forEach((c) => c.end(true)))
  for (const c of clients) c.on('error', () => {})
  await sub.subscribeAsync('drain/#', { qos: 1 })
  const closed = Promise.all(clients.map((c) => new Promise<void>((resolve) => c.once('close', () => resolve()))))

  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const signalledAt = Date.now()
  child.kill('SIGTERM')

  // the signal is handled on the child's next turn: from its first 503 on, /readyz stays 503 (polled as a load
  // balancer does) while both clients are still connected and served
  while ((await fetch(`${base}/readyz`)).status === 200) {
    assert.ok(Date.now() - signalledAt < 500, 'not ready within 500 ms of SIGTERM')
    await delay(10)
  }
  const firstNotReadyAt = Date.now()
  let notReady = 0
  let delivered = 0
  while (Date.now() - signalledAt < DRAIN_MS - 400) {
    const res = await fetch(`${base}/readyz`)
    assert.equal(res.status, 503)
    const body = await res.json() as Report
    assert.deepEqual(body.failing, ['shutdown'])
    assert.match(body.checks.shutdown.detail!, /SIGTERM/)
    notReady++
    assert.ok(sub.connected && pub.connected, 'the clients are still connected during the drain')
    // and still served: a QoS 1 round trip through the broker
    const payload = `during-drain-${delivered}`
    await pub.publishAsync('drain/x', payload, { qos: 1 })
    await log.waitFor((m) => m.payload.toString() === payload, 1000)
    delivered++
    // liveness is not readiness: the process is alive
    assert.equal((await fetch(`${base}/healthz`)).status, 200)
    await delay(100)
  }
  assert.ok(notReady >= 3, `polled ${notReady} times during the drain`)
  assert.ok(firstNotReadyAt - signalledAt < 500, 'not ready at once')
  assert.ok(delivered >= 3)

  await closed
  const closedAfter = Date.now() - signalledAt
  assert.ok(closedAfter >= DRAIN_MS - 50, `the clients were closed after the drain (${closedAfter} ms)`)
  const [code, signal] = await exited
  assert.equal(signal, null)
  assert.equal(code, 0, output.join('\n'))
  const lines = output.map((l) => { try { return JSON.parse(l) as { msg?: string; drainMs?: number } } catch { return {} } })
  assert.ok(lines.some((l) => l.drainMs === DRAIN_MS && /readyz answers 503, closing in 1500 ms/.test(l.msg ?? '')), output.join('\n'))
})
