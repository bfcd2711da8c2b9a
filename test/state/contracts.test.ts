// The store contract suites (./retained-contract.ts, ./session-contract.ts) against every implementation: in memory
// (src/mqtt/), SQLite written behind (src/state/), on a real file, and NATS JetStream KV (src/cluster/, cluster mode:
// NATS_URL, default nats://127.0.0.1:4222; each case on buckets of its own random cluster name, deleted after it).
// Plus what only the SQLite one has: a failed write is kept and tried again.
import { after, test } from 'node:test'
import { randomBytes } from 'node:crypto'
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
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { destroyBuckets, openBuckets, type ClusterBuckets } from '../../src/cluster/buckets.ts'
import { JetStreamRetainedStore } from '../../src/cluster/retained.ts'
import { JetStreamSessionStore } from '../../src/cluster/sessions.ts'
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

/** Buckets of a random cluster name on the shared NATS: one per case, so parallel runs never meet. */
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222'
let natsConnection: Promise<NatsConnection> | null = null
const nats = () => (natsConnection ??= connect({ servers: NATS_URL }))
after(async () => {
  if (natsConnection !== null) await (await natsConnection).close()
})

interface Closable { close(): Promise<void> }
interface JsCluster { name: string; buckets: ClusterBuckets; stores: Closable[] }
let clusters: JsCluster[] = []
const clusterOf = new WeakMap<object, JsCluster>()
/** the crashedAt a reopened session store was opened with: what the recovery of a dead node's sessions passes */
const crashedAtOf = new WeakMap<object, number>()

async function newCluster(): Promise<JsCluster> {
  const name = `contract_${randomBytes(6).toString('hex')}`
  const c = { name, buckets: await openBuckets(await nats(), name), stores: [] }
  clusters.push(c)
  return c
}

async function closeClusters(): Promise<void> {
  const nc = await nats()
  for (const c of clusters) {
    for (const s of c.stores) await s.close()
    await destroyBuckets(nc, c.name)
  }
  clusters = []
}

async function openJsRetained(c: JsCluster): Promise<JetStreamRetainedStore> {
  const store = await JetStreamRetainedStore.open(c.buckets, new MemoryRetainedStore())
  c.stores.push(store)
  clusterOf.set(store, c)
  return store
}

function openJsSessions(c: JsCluster, crashedAt = Date.now()): JetStreamSessionStore {
  const store = new JetStreamSessionStore(c.buckets)
  c.stores.push(store)
  clusterOf.set(store, c)
  crashedAtOf.set(store, crashedAt)
  return store
}

retainedStoreContract('JetStream retained store', {
  open: async () => openJsRetained(await newCluster()),
  // a restart, or another node: a new store on the same buckets loads what they hold
  reopen: async (store) => {
    await (store as JetStreamRetainedStore).close()
    return openJsRetained(clusterOf.get(store)!)
  },
  close: closeClusters,
})

sessionStoreContract('JetStream session store', {
  open: async () => openJsSessions(await newCluster()),
  reopen: async (store, crashedAt) => {
    await (store as JetStreamSessionStore).close()
    return openJsSessions(clusterOf.get(store)!, crashedAt)
  },
  // a new node holds nothing: it takes a session up from the bucket as the recovery of a dead node's sessions does
  take: (store, clientId) => (store as JetStreamSessionStore).adopt(clientId, crashedAtOf.get(store)),
  close: closeClusters,
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
