// A PostgreSQL database of its own for each test file (on the local server, trust auth), dropped at the end, so that
// test files running at once never share the control plane's tables or channels.
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { startServer, type TestServer } from '../helpers.ts'

/** The server the tests use (user root, database `test` exists); PGHOST / PGPORT / PGUSER override it. */
const SERVER = `postgres://${process.env.PGUSER ?? 'root'}@${process.env.PGHOST ?? '127.0.0.1'}:${process.env.PGPORT ?? '5432'}`

export interface TestDatabase {
  name: string
  /** DATABASE_URL of the new database */
  url: string
  /** a query on it (the test's own connection) */
  query<T extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>
  /**
   * An outage of this database alone (the server is shared): on = new connections refused and every open one ended
   * (the nodes' too), off = connections allowed again.
   */
  outage(on: boolean): Promise<void>
  drop(): Promise<void>
}

async function onServer<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: `${SERVER}/test` })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/** CREATE DATABASE ctl_<random>; `t.after(db.drop)` drops it (WITH (FORCE): connections left open do not stop it). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `ctl_${randomBytes(6).toString('hex')}`
  await onServer((c) => c.query(`CREATE DATABASE ${name}`))
  const url = `${SERVER}/${name}`
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  pool.on('error', () => {})
  return {
    name,
    url,
    async query(sql, params) {
      return (await pool.query(sql, params)).rows
    },
    async outage(on) {
      await onServer(async (c) => {
        await c.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS ${on ? 'false' : 'true'}`)
        if (on) await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name])
      })
    },
    async drop() {
      await pool.end().catch(() => {})
      await onServer((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
    },
  }
}

/**
 * Two nodes of one cluster on `db` ('node-a', then 'node-b'), each with its own in-memory SQLite replica; `close`
 * stops both. A second node that cannot start stops the first.
 */
export async function startTwoNodes(db: TestDatabase): Promise<{ a: TestServer; b: TestServer; close(): Promise<void> }> {
  const a = await startServer({ config: { databaseUrl: db.url, nodeId: 'node-a' } })
  let b: TestServer
  try {
    b = await startServer({ config: { databaseUrl: db.url, nodeId: 'node-b' } })
  } catch (err) {
    await a.close()
    throw err
  }
  return { a, b, close: async () => void await Promise.all([a.close(), b.close()]) }
}
