// The store contract suites (./retained-contract.ts, ./session-contract.ts) against every implementation: in memory
// (src/mqtt/) and SQLite written behind (src/state/), on a real file. Plus what only the SQLite one has: a failed write
// is kept and tried again.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { Database } from 'better-sqlite3'
import { openDatabase } from '../../src/db/open.ts'
import { MemoryRetainedStore } from '../../src/mqtt/retained.ts'
import { MemorySessionStore } from '../../src/mqtt/session.ts'
import { DurableRetainedStore } from '../../src/state/retained.ts'
import { DurableSessionStore } from '../../src/state/sessions.ts'
import { WriteBehind } from '../../src/state/write-behind.ts'
import type { RetainedStore, SessionStore } from '../../src/contracts/state.ts'
import { tempDir } from '../helpers.ts'
import { retainedStoreContract, retained } from './retained-contract.ts'
import { sessionStoreContract } from './session-contract.ts'

retainedStoreContract('memory retained store', { open: () => new MemoryRetainedStore(), close: () => {} })
sessionStoreContract('memory session store', { open: () => new MemorySessionStore(), close: () => {} })

/** A SQLite file in a temp folder, opened and re-opened as a restart would. */
class SqliteFile {
  readonly #tmp = tempDir('state-contract-')
  readonly path = join(this.#tmp.dir, 'state.db')
  db: Database | null = null
  wb: WriteBehind | null = null

  open(): { db: Database; wb: WriteBehind } {
    this.db = openDatabase(this.path).db
    this.wb = new WriteBehind(this.db)
    return { db: this.db, wb: this.wb }
  }

  /** What a clean stop does: write what is pending, close. */
  stop(): void {
    this.wb?.close()
    this.db?.close()
    this.wb = null
    this.db = null
  }

  close(): void {
    this.stop()
    this.#tmp.cleanup()
  }
}

let files: SqliteFile[] = []
const closeFiles = () => {
  for (const f of files) f.close()
  files = []
}
const fileOf = new WeakMap<object, SqliteFile>()

function openRetained(file: SqliteFile): RetainedStore {
  const { db, wb } = file.open()
  const store = new DurableRetainedStore(db, new MemoryRetainedStore(), wb)
  wb.start()
  fileOf.set(store, file)
  return store
}

function openSessions(file: SqliteFile, crashedAt = Date.now()): SessionStore {
  const { db, wb } = file.open()
  const store = new DurableSessionStore(db, wb, crashedAt)
  wb.start()
  fileOf.set(store, file)
  return store
}

retainedStoreContract('SQLite retained store', {
  open: () => {
    const file = new SqliteFile()
    files.push(file)
    return openRetained(file)
  },
  reopen: async (store) => {
    const file = fileOf.get(store)!
    file.stop()
    return openRetained(file)
  },
  close: closeFiles,
})

sessionStoreContract('SQLite session store', {
  open: () => {
    const file = new SqliteFile()
    files.push(file)
    return openSessions(file)
  },
  reopen: async (store, crashedAt) => {
    const file = fileOf.get(store)!
    file.stop()
    return openSessions(file, crashedAt)
  },
  close: closeFiles,
})

test('SQLite state: a write that fails (read-only file) is kept in memory and written once it can be', async (t) => {
  const file = new SqliteFile()
  t.after(() => file.close())
  const store = openRetained(file)
  const wb = file.wb!
  file.db!.pragma('query_only = ON')
  assert.ok(store.set(retained('kept/1', 'v'), { maxMessages: 10, maxBytes: 1000 }), 'the broker goes on')
  assert.equal(wb.flushNow(), false)
  assert.equal(wb.stats.errors, 1)
  assert.equal(wb.pending(), 1, 'the note is still there')
  file.db!.pragma('query_only = OFF')
  assert.equal(wb.flushNow(), true)
  assert.equal(wb.pending(), 0)
  file.stop()
  assert.equal(openRetained(file).get('kept/1')?.payload.toString(), 'v')
})

test('SQLite state: a change is written within the flush interval, without a call to flush()', async (t) => {
  const file = new SqliteFile()
  t.after(() => file.close())
  const store = openRetained(file)
  store.set(retained('soon', 'v'), { maxMessages: 10, maxBytes: 1000 })
  const reader = openDatabase(file.path).db
  t.after(() => reader.close())
  const count = () => (reader.prepare('SELECT count(*) AS n FROM mqtt_retained').get() as { n: number }).n
  assert.equal(count(), 0)
  const started = Date.now()
  while (count() === 0 && Date.now() - started < 2000) await new Promise((r) => setTimeout(r, 5))
  assert.equal(count(), 1)
  assert.ok(file.wb!.stats.flushes >= 1)
})
