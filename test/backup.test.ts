// Online backups of the SQLite file while the broker runs (POST /api/admin/backup and `npm run backup`), and the
// restore procedure of the README, tested end to end: a broker process with settings, an MQTT user, an ACL rule, a
// retained message and a persistent session with a queued message, under a steady MQTT load, is backed up both ways;
// then a new process on each restored copy serves exactly that.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { MqttClient } from 'mqtt'
import {
  connectMqtt, delay, MessageLog, startServer, startServerProcess, tempDir, TEST_TOKEN, until, type TestServer,
} from './helpers.ts'
import { backupDirOf, DEFAULT_CONFIG } from '../src/config.ts'
import { backupFileName, backupTarget } from '../src/db/backup.ts'

const ROOT = join(import.meta.dirname, '..')
const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }

interface Written {
  path: string
  bytes: number
  tookMs: number
}

const backupNow = async (s: TestServer) => s.app.inject({ method: 'POST', url: '/api/admin/backup', headers: AUTH })

test('backupDirOf: BACKUP_DIR, else `backups` beside DB_PATH (beside the default file for :memory:)', () => {
  assert.equal(backupDirOf({ backupDir: '/var/backups/broker', dbPath: '/srv/broker.db' }), '/var/backups/broker')
  assert.equal(backupDirOf({ backupDir: null, dbPath: '/srv/data/broker.db' }), '/srv/data/backups')
  assert.equal(backupDirOf({ backupDir: null, dbPath: ':memory:' }), join(process.cwd(), dirname(DEFAULT_CONFIG.dbPath), 'backups'))
  assert.match(backupFileName(new Date('2025-01-31T12:00:00.123Z')), /^broker-20250131T120000123Z\.db$/)
})

test('backupTarget: a file is itself; a folder (existing, or named with a trailing /) gets a new timestamped file', (t) => {
  const tmp = tempDir('backup-target-')
  t.after(() => tmp.cleanup())
  const now = new Date('2025-01-31T12:00:00.123Z')
  assert.equal(backupTarget(join(tmp.dir, 'x.db'), now), join(tmp.dir, 'x.db'))
  assert.equal(backupTarget(tmp.dir, now), join(tmp.dir, 'broker-20250131T120000123Z.db'))
  assert.equal(backupTarget(`${tmp.dir}/new/`, now), join(tmp.dir, 'new', 'broker-20250131T120000123Z.db'))
})

test('POST /api/admin/backup: a consistent copy in BACKUP_DIR with the MQTT state of this moment; role admin', async (t) => {
  const tmp = tempDir('backup-api-')
  t.after(() => tmp.cleanup())
  const backupDir = join(tmp.dir, 'kept')
  const s = await startServer({ config: { dbPath: join(tmp.dir, 'broker.db'), backupDir } })
  t.after(() => s.close())

  assert.equal((await s.app.inject({ method: 'POST', url: '/api/admin/backup' })).statusCode, 401)
  // the role admin: an operator's token is refused
  const made = await s.app.inject({ method: 'POST', url: '/api/admin-tokens', headers: AUTH, payload: { name: 'ops', role: 'operator' } })
  assert.equal(made.statusCode, 201, made.body)
  const operator = await s.app.inject({ method: 'POST', url: '/api/admin/backup', headers: { authorization: `Bearer ${made.json().token}` } })
  assert.equal(operator.statusCode, 403, operator.body)
  assert.equal(existsSync(backupDir), false, 'nothing written for a refused request')

  // published right before: still waiting in the write-behind (20 ms) when the backup is asked for
  const pub = await connectMqtt(s.wsUrl, { clientId: 'backup-pub' })
  t.after(() => pub.end(true))
  await pub.publishAsync('state/now', 'just-published', { qos: 1, retain: true })
  const res = await backupNow(s)
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.headers['cache-control'], 'no-store')
  const written = res.json() as Written
  assert.deepEqual(Object.keys(written).sort(), ['bytes', 'path', 'tookMs'])
  assert.equal(dirname(written.path), backupDir)
  assert.match(written.path, /\/broker-\d{8}T\d{9}Z\.db$/)
  assert.equal(written.bytes, statSync(written.path).size)
  assert.ok(written.tookMs >= 0)
  assert.deepEqual(readdirSync(backupDir), [written.path.slice(backupDir.length + 1)], 'no partial file left beside it')

  // the copy opens as the broker's database, with that retained message
  const restored = await startServer({ config: { dbPath: written.path } })
  t.after(() => restored.close())
  const retained = await restored.app.inject({ url: '/api/retained/state/now', headers: AUTH })
  assert.equal(retained.statusCode, 200, retained.body)
  assert.equal(Buffer.from(retained.json().payloadBase64, 'base64').toString(), 'just-published')
})

test('two backups at once both complete, one after the other, in two files', async (t) => {
  const tmp = tempDir('backup-twice-')
  t.after(() => tmp.cleanup())
  const s = await startServer({ config: { dbPath: join(tmp.dir, 'broker.db'), backupDir: join(tmp.dir, 'b') } })
  t.after(() => s.close())
  const [a, b] = await Promise.all([backupNow(s), backupNow(s)])
  assert.equal(a.statusCode, 200, a.body)
  assert.equal(b.statusCode, 200, b.body)
  assert.notEqual(a.json().path, b.json().path)
  assert.equal(readdirSync(join(tmp.dir, 'b')).length, 2)
})

test('a backup folder that cannot be written: 503 naming it, the broker goes on', async (t) => {
  const tmp = tempDir('backup-refused-')
  t.after(() => tmp.cleanup())
  const blocker = join(tmp.dir, 'a-file')
  writeFileSync(blocker, 'not a folder')
  const s = await startServer({ config: { dbPath: join(tmp.dir, 'broker.db'), backupDir: join(blocker, 'backups') } })
  t.after(() => s.close())
  const res = await backupNow(s)
  assert.equal(res.statusCode, 503, res.body)
  const body = res.json()
  assert.equal(body.code, 'STORE_UNAVAILABLE')
  assert.match(body.message, /^the backup could not be written to .*a-file\/backups: .*ENOTDIR/)
  assert.equal((await s.app.inject({ url: '/readyz' })).statusCode, 200)
})

/** `npm run backup -- ...args` with DB_PATH; resolves with its exit code and output. */
async function npmBackup(env: Record<string, string>, ...args: string[]) {
  const child = spawn('npm', ['run', '--silent', 'backup', '--', ...args], {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stdout, stderr }
}

test('npm run backup: one line for the operator, and exit 1 with one line when there is nothing to back up', async (t) => {
  const tmp = tempDir('backup-cli-')
  t.after(() => tmp.cleanup())
  const missing = await npmBackup({ DB_PATH: join(tmp.dir, 'none.db') }, join(tmp.dir, 'x.db'))
  assert.equal(missing.code, 1)
  assert.equal(missing.stderr, `backup: there is no database at DB_PATH=${join(tmp.dir, 'none.db')}\n`)
  assert.equal(existsSync(join(tmp.dir, 'none.db')), false, 'the backup tool never creates the database')

  const memory = await npmBackup({ DB_PATH: ':memory:' })
  assert.equal(memory.code, 1)
  assert.match(memory.stderr, /^backup: DB_PATH is :memory:/)

  const usage = await npmBackup({}, 'a', 'b')
  assert.equal(usage.code, 2)
  assert.match(usage.stdout, /^usage: npm run backup -- \[FILE \| FOLDER\/\]/)
})

// ---- the whole story: back up a running broker two ways, restore each copy, serve the same -----------------------------

interface Api {
  base: string
  call(method: string, url: string, body?: unknown): Promise<{ status: number; json: any }>
}

const api = (port: number): Api => {
  const base = `http://127.0.0.1:${port}`
  return {
    base,
    async call(method, url, body) {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: { ...AUTH, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      const text = await res.text()
      return { status: res.status, json: text ? JSON.parse(text) : null }
    },
  }
}

/** What a restored broker must serve: the state made before the backups, none of what came after. */
async function expectRestored(t: { after(fn: () => unknown): void }, port: number, label: string) {
  const a = api(port)
  const ws = `ws://127.0.0.1:${port}/mqtt`
  const settings = await a.call('GET', '/api/settings')
  assert.equal(settings.status, 200)
  assert.equal(settings.json.values.connectTimeoutMs, 7000, `${label}: the settings of before the backup`)
  assert.equal(settings.json.comment, 'before the backup', label)

  const users = await a.call('GET', '/api/mqtt-users')
  assert.deepEqual(users.json.items.map((u: { username: string }) => u.username), ['alice'], label)
  const acl = await a.call('GET', '/api/acl')
  assert.deepEqual(acl.json.items.map((r: { topic: string; permission: string }) => `${r.permission} ${r.topic}`), ['deny secret/#'], label)

  // the MQTT user's password works, and the ACL rule is in force
  const alice = await connectMqtt(ws, { clientId: `${label}-alice`, username: 'alice', password: 'alice-password-1' })
  t.after(() => alice.end(true))
  alice.on('error', () => {})
  await assert.rejects(alice.subscribeAsync('secret/x', { qos: 0 }), /Subscribe error/, `${label}: the ACL rule refuses secret/#`)
  assert.deepEqual((await alice.subscribeAsync('state/#', { qos: 1 })).map((g) => g.qos), [1])

  // retained: the one from before, not the one published after the backup
  let log!: MessageLog
  const reader = await connectMqtt(ws, { clientId: `${label}-reader` }, 3000, (c) => (log = new MessageLog(c)))
  t.after(() => reader.end(true))
  await reader.subscribeAsync('state/#', { qos: 1 })
  const kept = await log.waitFor((m) => m.topic === 'state/before')
  assert.equal(kept.payload.toString(), 'kept-in-the-backup')
  assert.equal(kept.packet.retain, true)
  await delay(200)
  assert.deepEqual(log.messages.map((m) => m.topic).filter((x) => x.startsWith('state/')), ['state/before'], `${label}: nothing from after the backup`)

  // the persistent session: present, with its subscription and the message queued for it while it was offline
  let keeperLog!: MessageLog
  let sessionPresent: boolean | undefined
  const keeper = await connectMqtt(ws, { clientId: 'keeper', clean: false }, 3000, (c) => {
    keeperLog = new MessageLog(c)
    c.once('connect', (p) => (sessionPresent = p.sessionPresent))
  })
  t.after(() => keeper.end(true))
  assert.equal(sessionPresent, true, `${label}: the session is back`)
  const queued = await keeperLog.waitFor((m) => m.topic === 'keep/q')
  assert.equal(queued.payload.toString(), 'queued-while-offline')
}

test('backups of a running broker under load (the API and npm run backup), restored as the README says, serve the same settings, users, ACL, retained messages and sessions', async (t) => {
  const tmp = tempDir('backup-restore-')
  t.after(() => tmp.cleanup())
  const dbPath = join(tmp.dir, 'live', 'broker.db')
  const backupDir = join(tmp.dir, 'backups')
  const env = { DB_PATH: dbPath, ADMIN_TOKEN: TEST_TOKEN, BACKUP_DIR: backupDir }
  const children: ChildProcess[] = []
  t.after(() => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')))
  const clients: MqttClient[] = []
  t.after(() => clients.forEach((c) => c.end(true)))
  const start = async (e: Record<string, string>) => {
    const p = await startServerProcess(e)
    children.push(p.child)
    return p
  }
  const stop = async (child: ChildProcess) => {
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const [code] = await exited
    assert.equal(code, 0)
  }

  const first = await start(env)
  const a = api(first.port)
  const ws = `ws://127.0.0.1:${first.port}/mqtt`

  // the state to keep: settings, a user, an ACL rule, a retained message, a persistent session with a queued message
  assert.equal((await a.call('PATCH', '/api/settings', { values: { connectTimeoutMs: 7000 }, comment: 'before the backup' })).status, 200)
  assert.equal((await a.call('POST', '/api/mqtt-users', { username: 'alice', password: 'alice-password-1' })).status, 201)
  assert.equal((await a.call('POST', '/api/acl', { topic: 'secret/#', action: 'all', permission: 'deny' })).status, 201)
  const keeper = await connectMqtt(ws, { clientId: 'keeper', clean: false })
  await keeper.subscribeAsync('keep/#', { qos: 1 })
  await new Promise<void>((resolve) => keeper.end(false, {}, () => resolve()))
  const pub = await connectMqtt(ws, { clientId: 'restore-pub' })
  clients.push(pub)
  await pub.publishAsync('state/before', 'kept-in-the-backup', { qos: 1, retain: true })
  await pub.publishAsync('keep/q', 'queued-while-offline', { qos: 1 })

  // a steady load while the backups are taken: QoS 1 messages to a live subscriber, retained updates
  const loadSub = await connectMqtt(ws, { clientId: 'load-sub' })
  clients.push(loadSub)
  await loadSub.subscribeAsync('load/#', { qos: 1 })
  let received = 0
  loadSub.on('message', () => received++)
  const loadPub = await connectMqtt(ws, { clientId: 'load-pub' })
  clients.push(loadPub)
  let loading = true
  let sent = 0
  const load = (async () => {
    while (loading) {
      await loadPub.publishAsync(`load/${sent % 10}`, `m${sent}`, { qos: 1, retain: sent % 5 === 0 })
      sent++
    }
  })()
  await until(() => received > 50, 'the load is flowing', 5000)

  // both ways, under the load
  const viaApi = await a.call('POST', '/api/admin/backup')
  assert.equal(viaApi.status, 200, JSON.stringify(viaApi.json))
  const cliTarget = join(tmp.dir, 'cron', 'nightly.db')
  const viaCli = await npmBackup({ DB_PATH: dbPath }, cliTarget)
  assert.equal(viaCli.code, 0, viaCli.stderr)
  assert.equal(viaCli.stdout, `backup written: ${cliTarget} (${statSync(cliTarget).size} bytes in ${/in (\d+) ms/.exec(viaCli.stdout)?.[1]} ms)\n`)
  const sentDuring = sent
  await until(() => sent > sentDuring + 20, 'the load went on after the backups', 5000)
  loading = false
  await load

  // what comes after the backups must not be in them
  await pub.publishAsync('state/after', 'not-in-the-backup', { qos: 1, retain: true })
  assert.equal((await a.call('PATCH', '/api/settings', { values: { connectTimeoutMs: 9000 }, comment: 'after the backup' })).status, 200)
  assert.equal((await a.call('POST', '/api/mqtt-users', { username: 'bob', password: 'bob-password-1' })).status, 201)
  clients.forEach((c) => c.end(true))
  await stop(first.child)

  // the README's restore: stop, replace the file, remove -wal and -shm, start
  copyFileSync(viaApi.json.path, dbPath)
  rmSync(`${dbPath}-wal`, { force: true })
  rmSync(`${dbPath}-shm`, { force: true })
  const second = await start(env)
  await expectRestored(t, second.port, 'api')
  await stop(second.child)

  // the cron copy, restored into a fresh folder
  const fresh = tempDir('backup-fresh-')
  t.after(() => fresh.cleanup())
  copyFileSync(cliTarget, join(fresh.dir, 'broker.db'))
  const third = await start({ ...env, DB_PATH: join(fresh.dir, 'broker.db') })
  await expectRestored(t, third.port, 'cli')
  await stop(third.child)
})
