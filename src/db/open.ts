// Opens the SQLite database on DB_PATH: folder created, pragmas set, migrations applied.
// Anything that stops this is thrown as one coded error whose message is one line for an operator.
import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import Sqlite, { type Database } from 'better-sqlite3'
import { DbNotADatabaseError, DbOpenError } from '../contracts/errors.ts'
import { applyMigrations, loadMigrations, type Migration } from './migrations.ts'

export interface OpenOptions {
  /** How long a write waits for a lock held by another connection before failing with SQLITE_BUSY. */
  busyTimeoutMs?: number
  /** Defaults to the files in migrations/. */
  migrations?: readonly Migration[]
}

export interface OpenedDatabase {
  db: Database
  /** 'wal' for a file, 'memory' for :memory: */
  journalMode: string
  schemaVersion: number
  /** migrations applied by this start (empty when the file was up to date) */
  applied: number[]
}

// Short: better-sqlite3 waits synchronously, so a lock held by another program stalls the event loop (and the broker)
// for this long on every write attempt. Nothing in this process contends with itself; only outside programs do.
export const DEFAULT_BUSY_TIMEOUT_MS = 200

const isMemory = (path: string) => path === ':memory:' || path === ''

export function openDatabase(path: string, opts: OpenOptions = {}): OpenedDatabase {
  if (!isMemory(path)) {
    try {
      mkdirSync(dirname(resolve(path)), { recursive: true })
    } catch (err) {
      throw new DbOpenError(path, `its folder cannot be created (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err)
    }
  }
  let db: Database
  try {
    db = new Sqlite(path)
  } catch (err) {
    throw new DbOpenError(path, describeOpenFailure(err), err)
  }
  try {
    // The first statement reads the file header: this is where a file that is not a database shows itself.
    const journalMode = String(db.pragma('journal_mode = WAL', { simple: true }))
    db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS}`)
    // WAL + NORMAL: commits survive a crash of the process; the file stays consistent on power loss.
    db.pragma('synchronous = NORMAL')
    db.pragma('foreign_keys = ON')
    const applied = applyMigrations(db, opts.migrations ?? loadMigrations(), path)
    return { db, journalMode, schemaVersion: db.pragma('user_version', { simple: true }) as number, applied }
  } catch (err) {
    db.close()
    const code = (err as { code?: string }).code
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') throw new DbNotADatabaseError(path, err)
    if (typeof code === 'string' && code.startsWith('SQLITE_')) throw new DbOpenError(path, describeOpenFailure(err), err)
    throw err
  }
}

function describeOpenFailure(err: unknown): string {
  const e = err as { code?: string; message?: string }
  switch (e.code) {
    case 'SQLITE_CANTOPEN': return 'the file cannot be opened (is it a folder, or is its folder unreadable?)'
    case 'SQLITE_READONLY': return 'the file is read-only; the broker needs to write it'
    case 'SQLITE_PERM': case 'SQLITE_AUTH': return 'permission denied'
    case 'SQLITE_BUSY': case 'SQLITE_LOCKED': return 'the file is locked by another program'
    case 'SQLITE_FULL': return 'the disk is full'
    default: return `${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}`
  }
}
