// The PostgreSQL side of the control plane: the pool for queries, transactions, the errors start-up and writes
// answer with, and DATABASE_URL shown without its password (never in a log line or an error).
import pg from 'pg'
import type { Pool, PoolClient } from 'pg'
import { DomainError } from '../contracts/errors.ts'

/** DATABASE_URL as it may be shown: the password replaced. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return 'postgres://(unreadable URL)'
  }
}

/** Where DATABASE_URL points, for a sentence: host:port/database, never the user or the password. */
export function whereOf(url: string): string {
  try {
    const u = new URL(url)
    const db = decodeURIComponent(u.pathname.replace(/^\//, ''))
    return `${u.hostname || 'the local socket'}${u.port ? `:${u.port}` : ''}${db ? `/${db}` : ''}`
  } catch {
    return '(an unreadable URL)'
  }
}

/** A PostgreSQL or network error in a few words: its code (ECONNREFUSED, 57P01) or its message. */
export function describePgError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; errors?: { code?: unknown }[] }
  const message = typeof e?.message === 'string' ? e.message : ''
  const code = typeof e?.code === 'string' ? e.code : typeof e?.errors?.[0]?.code === 'string' ? e.errors[0].code : ''
  // a network error's code says it all; a server error's message does (its SQLSTATE alone does not)
  if (/^E[A-Z]+$/.test(code)) return code
  return message || code || String(err)
}

/** Start-up could not reach or use the control plane: server.ts prints the message alone, one line. */
export class ControlPlaneBootError extends DomainError {
  constructor(message: string, cause?: unknown) {
    super('DATABASE_URL', message, { cause })
  }
}

/** A write of the MQTT users or the ACL rules while PostgreSQL does not answer: 503, nothing changed. */
export class ControlPlaneUnavailableError extends DomainError {
  constructor(what: string, why: string, cause?: unknown) {
    super('STORE_UNAVAILABLE',
      `the cluster's database (PostgreSQL) could not be written (${why}); ${what}: nothing was changed, the broker keeps running`,
      { cause })
  }
}

/** SQLSTATE of a unique constraint broken (a race another node won). */
export const UNIQUE_VIOLATION = '23505'
export const pgCode = (err: unknown): string | undefined => (err as { code?: string })?.code

export interface PgOptions {
  url: string
  /** shown in pg_stat_activity: `<cluster>:<node>` (the LISTEN connection adds `:listen`) */
  applicationName: string
  /** ms to connect before giving up (default 3000) */
  connectTimeoutMs?: number
  /** ms a query may take before it fails (default 5000) */
  queryTimeoutMs?: number
}

export function createPool(o: PgOptions): Pool {
  const pool = new pg.Pool({
    connectionString: o.url,
    application_name: o.applicationName,
    max: 4,
    connectionTimeoutMillis: o.connectTimeoutMs ?? 3000,
    query_timeout: o.queryTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
  })
  return pool
}

export function createListenClient(o: PgOptions): pg.Client {
  return new pg.Client({
    connectionString: o.url,
    application_name: `${o.applicationName}:listen`,
    connectionTimeoutMillis: o.connectTimeoutMs ?? 3000,
    keepAlive: true,
  })
}

/**
 * Runs `fn` on a client of the pool, given back when it ends. A connection lost while checked out emits 'error' (the
 * pool listens only to idle ones): the query in flight fails with it, and the connection is not given back; nor is
 * one `fn` reports broken (`broke`).
 */
export async function withClient<T>(pool: Pool, fn: (c: PoolClient, broke: (err: unknown) => void) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let broken: unknown
  const onError = (err: Error) => {
    broken = err
  }
  client.on('error', onError)
  try {
    return await fn(client, onError as (err: unknown) => void)
  } finally {
    client.off('error', onError)
    client.release(broken instanceof Error ? broken : undefined)
  }
}

/** Runs `fn` in one transaction on a client of the pool: committed when it returns, rolled back when it throws. */
export function inTransaction<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client, broke) => {
    try {
      await client.query('BEGIN')
      const result = await fn(client)
      await client.query('COMMIT')
      return result
    } catch (err) {
      try {
        await client.query('ROLLBACK')
      } catch (rollbackErr) {
        // the connection itself failed: it is not given back to the pool
        broke(rollbackErr)
      }
      throw err
    }
  })
}
