// Start-up of the real entry point (src/server.ts) in cluster mode: a bad or unreachable DATABASE_URL or NATS_URL
// stops it with one line naming the variable, and a password in either is never printed, whether it starts or not.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { startServerProcess, TEST_TOKEN } from '../helpers.ts'
import { createTestDatabase, type TestDatabase } from './pg.ts'
import { dropCluster } from '../cluster/cluster.ts'
import { freePort } from '../cluster/nats-servers.ts'


const SECRET = 's3cret-pw-4711'
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222'

let db: TestDatabase
before(async () => {
  db = await createTestDatabase()
})
after(() => db.drop())

/** Runs src/server.ts until it exits: its exit code and everything it printed. */
function runToExit(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: join(import.meta.dirname, '../..'),
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DB_PATH: ':memory:', ADMIN_TOKEN: TEST_TOKEN, LOG_LEVEL: 'debug', NATS_URL, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  return new Promise((resolve) => child.once('exit', (code) => {
    clearTimeout(timer)
    resolve({ code, stdout, stderr })
  }))
}

const cases = [
  {
    name: 'nothing listens there',
    url: `postgres://root:${SECRET}@127.0.0.1:5999/x`,
    line: 'broker: cannot start: DATABASE_URL: cannot connect to 127.0.0.1:5999/x (ECONNREFUSED)',
  },
  {
    name: 'no such database',
    url: `postgres://root:${SECRET}@127.0.0.1:5432/ctl_no_such_db`,
    line: 'broker: cannot start: DATABASE_URL: cannot connect to 127.0.0.1:5432/ctl_no_such_db (database "ctl_no_such_db" does not exist)',
  },
]
for (const c of cases) {
  test(`DATABASE_URL where ${c.name}: start-up stops with one line naming it, without the password`, async () => {
    const { code, stdout, stderr } = await runToExit({ DATABASE_URL: c.url })
    assert.equal(code, 1)
    assert.equal(stderr, `${c.line}\n`)
    assert.ok(!stdout.includes(SECRET) && !stderr.includes(SECRET), 'the password is never printed')
  })
}

test('NATS_URL where nothing listens: start-up stops with one line naming it, without the password', async () => {
  const port = await freePort()
  const { code, stdout, stderr } = await runToExit({ DATABASE_URL: db.url, NATS_URL: `nats://app:${SECRET}@127.0.0.1:${port}` })
  assert.equal(code, 1)
  assert.match(stderr, new RegExp(`^broker: cannot start: NATS_URL: cannot connect to nats://127\\.0\\.0\\.1:${port} \\([^\\n]+\\)\\n$`))
  assert.ok(!stdout.includes(SECRET) && !stderr.includes(SECRET), 'the password is never printed')
})

test('a node started with a password in DATABASE_URL never prints it, and runs on the cluster\'s settings', async (t) => {
  const url = db.url.replace('postgres://root@', `postgres://root:${SECRET}@`)
  const cluster = `ctl${randomBytes(4).toString('hex')}`
  const { child, port, output } = await startServerProcess({
    DATABASE_URL: url, NATS_URL, NODE_ID: 'boot-node', CLUSTER_NAME: cluster,
    DB_PATH: ':memory:', ADMIN_TOKEN: TEST_TOKEN, LOG_LEVEL: 'debug',
  })
  const exited = new Promise((r) => child.once('exit', r))
  t.after(async () => {
    child.kill('SIGKILL')
    await dropCluster(cluster, NATS_URL)
  })
  const res = await fetch(`http://127.0.0.1:${port}/api/settings`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ values: { connectTimeoutMs: 3210 } }),
  })
  assert.equal(res.status, 200)
  const [row] = await db.query<{ values_json: string }>('SELECT values_json FROM settings_versions ORDER BY version DESC LIMIT 1')
  assert.equal(JSON.parse(row.values_json).connectTimeoutMs, 3210)
  child.kill('SIGTERM')
  await exited
  const printed = output.join('\n')
  assert.match(printed, /control plane: PostgreSQL at 127\.0\.0\.1:5432\/ctl_/)
  assert.ok(!printed.includes(SECRET), 'the password is never printed')
})
