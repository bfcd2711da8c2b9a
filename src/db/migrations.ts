// Schema migrations: migrations/NNN-name.sql, applied in order, one transaction each, tracked by PRAGMA user_version.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Database } from 'better-sqlite3'
import { DbMigrationError, DbTooNewError } from '../contracts/errors.ts'

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url))

export interface Migration {
  version: number
  name: string
  sql: string
}

const FILE_NAME = /^(\d+)-[\w.-]+\.sql$/

/** The migrations in `dir`, by number. Numbers must run 1, 2, 3 ... without gaps or repeats. */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const migrations = readdirSync(dir)
    .map((name) => ({ name, match: FILE_NAME.exec(name) }))
    .filter((f): f is { name: string; match: RegExpExecArray } => f.match !== null)
    .map(({ name, match }) => ({ version: Number(match[1]), name, sql: readFileSync(join(dir, name), 'utf8') }))
    .sort((a, b) => a.version - b.version)
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new Error(`migrations in ${dir} must be numbered 1, 2, 3 ... without gaps: found ${m.name} at position ${i + 1}`)
    }
  })
  return migrations
}

/**
 * Brings the database to the newest schema. Each migration and its user_version bump commit together, so a failed
 * migration leaves the database as it was. A database at a version newer than the newest migration is refused.
 * Returns the versions applied (empty when up to date).
 */
export function applyMigrations(db: Database, migrations: readonly Migration[], label = db.name): number[] {
  const current = db.pragma('user_version', { simple: true }) as number
  const newest = migrations.length > 0 ? migrations[migrations.length - 1].version : 0
  if (current > newest) throw new DbTooNewError(label, current, newest)
  const applied: number[] = []
  for (const m of migrations) {
    if (m.version <= current) continue
    try {
      db.transaction(() => {
        db.exec(m.sql)
        db.pragma(`user_version = ${m.version}`)
      }).immediate()
    } catch (err) {
      throw new DbMigrationError(m.name, label, (err as Error).message, err)
    }
    applied.push(m.version)
  }
  return applied
}
