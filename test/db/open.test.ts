// Opening the database: folder, WAL, migrations tracked by user_version, and one-line refusals at start-up.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import Sqlite from 'better-sqlite3'
import { DEFAULT_BUSY_TIMEOUT_MS, openDatabase } from '../../src/db/open.ts'
import { applyMigrations, loadMigrations, type Migration } from '../../src/db/migrations.ts'
import { tempDir } from '../helpers.ts'
import { buildApp } from '../../src/app.ts'

const REPO = new URL('../../', import.meta.url).pathname

function tmp(t: { after(fn: () => void): void }) {
  const d = tempDir('db-test-')
  t.after(d.cleanup)
  return d.dir
}

test('a fresh DB_PATH gets its folder, WAL, and every migration; a second start applies nothing', (t) => {
  const path = join(tmp(t), 'nested', 'deeper', 'broker.db')
  const newest = loadMigrations().length
  const first = openDatabase(path)
  assert.equal(first.journalMode, 'wal')
  assert.equal(first.schemaVersion, newest)
  assert.deepEqual(first.applied, Array.from({ length: newest }, (_, i) => i + 1))
  assert.equal(first.db.pragma('busy_timeout', { simple: true }), DEFAULT_BUSY_TIMEOUT_MS)
  const tables = first.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all()
  assert.ok(tables.includes('settings_versions') && tables.includes('admin_tokens'), `tables: ${tables.join(', ')}`)
  first.db.close()
  assert.ok(existsSync(path))

  const second = openDatabase(path)
  t.after(() => second.db.close())
  assert.deepEqual(second.applied, [])
  assert.equal(second.schemaVersion, newest)
})

test(':memory: works (no folder, no WAL)', (t) => {
  const { db, journalMode, schemaVersion } = openDatabase(':memory:')
  t.after(() => db.close())
  assert.equal(journalMode, 'memory')
  assert.equal(schemaVersion, loadMigrations().length)
})

test('the shipped migrations are numbered 1, 2, 3 ... and each one is a non-empty .sql file', () => {
  const migrations = loadMigrations()
  assert.ok(migrations.length >= 1)
  migrations.forEach((m, i) => {
    assert.equal(m.version, i + 1)
    assert.match(m.name, /^\d+-[\w.-]+\.sql$/)
    assert.ok(m.sql.trim().length > 0)
  })
})

test('migrations apply in order, one transaction each: a failing one leaves the database at the version before it', (t) => {
  const db = new Sqlite(':memory:')
  t.after(() => db.close())
  const migrations: Migration[] = [
    { version: 1, name: '001-a.sql', sql: 'CREATE TABLE a (x INTEGER);' },
    { version: 2, name: '002-b.sql', sql: 'CREATE TABLE b (x INTEGER); INSERT INTO b VALUES (1);' },
    { version: 3, name: '003-broken.sql', sql: 'CREATE TABLE c (x INTEGER); INSERT INTO no_such_table VALUES (1);' },
  ]
  assert.throws(() => applyMigrations(db, migrations, 'test.db'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'DB_MIGRATION_FAILED')
    assert.match(err.message, /^migration 003-broken\.sql failed on DB_PATH=test\.db: no such table: no_such_table/)
    assert.ok(!err.message.includes('\n'))
    return true
  })
  assert.equal(db.pragma('user_version', { simple: true }), 2)
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all()
  assert.deepEqual(tables, ['a', 'b'], 'table c of the failed migration was rolled back')

  // fixed, the migration applies from where it stopped
  migrations[2] = { version: 3, name: '003-fixed.sql', sql: 'CREATE TABLE c (x INTEGER);' }
  assert.deepEqual(applyMigrations(db, migrations), [3])
  assert.equal(db.pragma('user_version', { simple: true }), 3)
})

test('migration files with a gap in their numbers are refused', (t) => {
  const dir = tmp(t)
  writeFileSync(join(dir, '001-a.sql'), 'SELECT 1;')
  writeFileSync(join(dir, '003-c.sql'), 'SELECT 1;')
  writeFileSync(join(dir, 'README.txt'), 'not a migration')
  assert.throws(() => loadMigrations(dir), /without gaps: found 003-c\.sql at position 2/)
})

// One line for an operator: a code, no stack, no newline.
const startupError = (code: string, pattern: RegExp) => (err: Error & { code?: string }) => {
  assert.equal(err.code, code)
  assert.match(err.message, pattern)
  assert.ok(!err.message.includes('\n'), 'one line')
  return true
}

test('start-up refusals: not a database, a folder, an uncreatable folder, a newer schema', async (t) => {
  const dir = tmp(t)
  const junk = join(dir, 'junk.db')
  writeFileSync(junk, 'these bytes are not an SQLite database header; '.repeat(200))
  const aFile = join(dir, 'plain-file')
  writeFileSync(aFile, 'x')
  const newer = join(dir, 'newer.db')
  const n = new Sqlite(newer)
  n.pragma('user_version = 999')
  n.close()
  mkdirSync(join(dir, 'a-folder'))

  const cases: Array<[string, string, string, RegExp]> = [
    ['not a database', junk, 'DB_NOT_A_DATABASE', /junk\.db is not an SQLite database.*set DB_PATH to another file/],
    ['a folder', join(dir, 'a-folder'), 'DB_OPEN_FAILED', /cannot open the database at DB_PATH=.*a-folder: the file cannot be opened/],
    ['folder under a file', join(aFile, 'sub', 'x.db'), 'DB_OPEN_FAILED', /its folder cannot be created \(E(EXIST|NOTDIR)\)/],
    ['newer schema', newer, 'DB_TOO_NEW', /has schema version 999, newer than this build knows \(\d+\): it was written by a newer release/],
  ]
  for (const [name, path, code, pattern] of cases) {
    await t.test(name, async () => {
      assert.throws(() => openDatabase(path), startupError(code, pattern))
      // through the app: the database plugin stops start-up with the same error
      await assert.rejects(buildApp({ config: { dbPath: path, adminToken: 'a-test-token-123' }, logger: false }), startupError(code, pattern))
    })
  }
  // a refused file is left as it was
  const check = new Sqlite(newer)
  assert.equal(check.pragma('user_version', { simple: true }), 999)
  check.close()
})

test('npm start on a file that is not a database exits 1 with one line on stderr, no stack trace', async (t) => {
  const dir = tmp(t)
  const junk = join(dir, 'junk.db')
  writeFileSync(junk, 'not a database at all; '.repeat(300))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: REPO,
    env: { ...process.env, DB_PATH: junk, PORT: '0', HOST: '127.0.0.1', ADMIN_TOKEN: 'a-test-token-123', LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.after(() => child.kill('SIGKILL'))
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const [code] = await new Promise<[number | null]>((resolve) => child.on('exit', (c) => resolve([c])))
  assert.equal(code, 1)
  const lines = stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one line, got:\n${stderr}`)
  assert.match(lines[0], /is not an SQLite database/)
  assert.match(lines[0], /DB_NOT_A_DATABASE/)
  assert.doesNotMatch(stderr, /\n\s+at /)
})
