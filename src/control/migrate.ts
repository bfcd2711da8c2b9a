// PostgreSQL migrations: migrations/pg/NNN-name.sql, applied in order at start-up, one transaction each, tracked in
// the table schema_migrations. Nodes starting together take turns: the whole run (and the seeding of a new cluster
// that follows it) holds a session advisory lock.
import { fileURLToPath } from 'node:url'
import type { Pool, PoolClient } from 'pg'
import { loadMigrations } from '../db/migrations.ts'
import { withClient } from './pg.ts'

export const PG_MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/pg/', import.meta.url))

/** The advisory lock of start-up (migrations and seeding), one per database: any 64-bit number no one else uses. */
const BOOT_LOCK = 7_276_331_029_113_411n

/**
 * Applies the migrations not yet applied, then runs `andThen` (still under the lock, on the same connection).
 * A migration that fails is rolled back and stops start-up. Returns the versions applied.
 */
export async function migrate(pool: Pool, andThen: (c: PoolClient) => Promise<void>, dir = PG_MIGRATIONS_DIR): Promise<number[]> {
  const migrations = loadMigrations(dir)
  // a connection lost meanwhile fails the query in flight: start-up reports that
  return withClient(pool, async (client) => {
    await client.query('SELECT pg_advisory_lock($1)', [BOOT_LOCK.toString()])
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version    integer     PRIMARY KEY,
        name       text        NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`)
      const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version))
      const newest = migrations.length > 0 ? migrations[migrations.length - 1].version : 0
      const tooNew = [...done].filter((v) => v > newest)
      if (tooNew.length > 0) {
        throw new Error(`the database has PostgreSQL migration ${Math.max(...tooNew)}, newer than this build knows (${newest}): it was written by a newer release`)
      }
      const applied: number[] = []
      for (const m of migrations) {
        if (done.has(m.version)) continue
        try {
          await client.query('BEGIN')
          await client.query(m.sql)
          await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name])
          await client.query('COMMIT')
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {})
          throw new Error(`PostgreSQL migration ${m.name} failed: ${(err as Error).message} (nothing of it was applied)`, { cause: err })
        }
        applied.push(m.version)
      }
      await andThen(client)
      return applied
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [BOOT_LOCK.toString()]).catch(() => {})
    }
  })
}
