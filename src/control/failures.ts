// The failure log in cluster mode. Each node writes its own records to its SQLite log as on one node (nothing on the
// failure path waits for PostgreSQL), then ships them from there in batches, off the failure path: the records
// after a cursor kept in SQLite (control_state), so they wait while PostgreSQL is away, through a restart too, up to
// `maxBacklog` (beyond it the oldest are skipped, counted and logged). Each node pulls the other nodes' records by
// PostgreSQL id into its SQLite log, where the list, the stats, the charts and the live stream read them.
// One node at a time prunes PostgreSQL's table by the same retention as the SQLite log's.
import { randomUUID } from 'node:crypto'
import type { Pool } from 'pg'
import type { Database } from 'better-sqlite3'
import type { Logger } from '../contracts/logger.ts'
import type { FailureLog, FailureLogLimits, ForeignRecord } from '../failures/store.ts'
import { COLUMN_OF, COLUMNS, FIELDS, type StoredRow } from '../failures/rows.ts'
import { DAY_MS } from '../failures/time.ts'
import { rateLimitedWarn } from '../failures/warn.ts'
import { coalesce } from './coalesce.ts'
import { inTransaction } from './pg.ts'

/** Advisory locks: inserts into `failures` (one at a time, so ids commit in order), and pruning (one node). */
const SHIP_LOCK = '7276331029113412'
const PRUNE_LOCK = '7276331029113413'

/** Columns PostgreSQL answers as text (bigint) that the records hold as numbers. */
const BIGINT_FIELDS = ['occurredAt', 'bytesReceived', 'packetsReceived', 'lastFoldedAt'] as const

const PG_COLUMNS = ['node', 'source', 'source_id', ...FIELDS.filter((f) => f !== 'node').map((f) => COLUMN_OF[f])]
const PG_SELECT = `id, ${FIELDS.map((f) => `${COLUMN_OF[f]} AS "${f}"`).join(', ')}`

/** PostgreSQL text holds no NUL character; client text might. */
const clean = (v: unknown) => (typeof v === 'string' && v.includes('\0') ? v.replace(/\0/g, '\uFFFD') : v)

export interface FailureReplicaOptions {
  pool: Pool
  db: Database
  failureLog: FailureLog
  node: string
  channel: string
  logger: Logger
  /** the retention of the SQLite log (the settings in force), applied to PostgreSQL's table too */
  limits: () => FailureLogLimits
  /** records per batch, each way (default 500) */
  batch?: number
  /** records waiting to be shipped before the oldest are skipped (default 10000) */
  maxBacklog?: number
}

export interface FailureReplicaStats {
  shipped: number
  pulled: number
  /** records of this node skipped: more than maxBacklog were waiting (PostgreSQL away too long) */
  dropped: number
  /** records of this node waiting to be shipped, at the last try */
  waiting: number
  prunedInPostgres: number
}

export interface FailureReplica {
  ship(): Promise<void>
  pull(): Promise<void>
  prune(): Promise<void>
  stats(): FailureReplicaStats
  /** stops shipping on new records */
  close(): void
}

export function createFailureReplica(o: FailureReplicaOptions): FailureReplica {
  const { pool, db, failureLog, node, channel, logger } = o
  const batch = o.batch ?? 500
  const maxBacklog = o.maxBacklog ?? 10_000
  const warn = rateLimitedWarn(logger, Date.now)
  const getState = db.prepare<[string], string>('SELECT value FROM control_state WHERE key = ?').pluck()
  const setState = db.prepare<[string, string]>(
    'INSERT INTO control_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
  const cursor = (key: string) => Number(getState.get(key) ?? 0)

  // this SQLite database's own id: records of two databases under one NODE_ID never collide in PostgreSQL
  let source = getState.get('source')
  if (source === undefined) {
    source = randomUUID()
    setState.run('source', source)
  }
  const waitingCount = db.prepare<[string, number], number>('SELECT count(*) FROM failures WHERE node = ? AND id > ?').pluck()
  const nthWaiting = db.prepare<[string, number, number], number>(
    'SELECT id FROM failures WHERE node = ? AND id > ? ORDER BY id LIMIT 1 OFFSET ?').pluck()
  const toShip = db.prepare<[string, number, number], StoredRow>(
    `SELECT ${COLUMNS} FROM failures WHERE node = ? AND id > ? ORDER BY id LIMIT ?`)

  const stats: FailureReplicaStats = { shipped: 0, pulled: 0, dropped: 0, waiting: 0, prunedInPostgres: 0 }

  const ship = coalesce(async () => {
    for (;;) {
      let after = cursor('failures.shipped')
      const waiting = waitingCount.get(node, after) ?? 0
      stats.waiting = waiting
      if (waiting === 0) return
      if (waiting > maxBacklog) {
        const skip = waiting - maxBacklog
        after = nthWaiting.get(node, after, skip - 1) ?? after
        setState.run('failures.shipped', String(after))
        stats.dropped += skip
        logger.warn({ dropped: skip, maxBacklog }, `failure records not shipped to PostgreSQL: ${skip} skipped (more than ${maxBacklog} waited)`)
      }
      const rows = toShip.all(node, after, batch)
      if (rows.length === 0) return
      const params: unknown[] = []
      const tuples = rows.map((r) => {
        const values = [r.node, source, r.id, ...FIELDS.filter((f) => f !== 'node').map((f) => clean(r[f]))]
        const base = params.length
        params.push(...values)
        return `(${values.map((_, i) => `$${base + i + 1}`).join(', ')})`
      })
      await inTransaction(pool, async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [SHIP_LOCK])
        await c.query(`INSERT INTO failures (${PG_COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}
          ON CONFLICT (node, source, source_id) DO NOTHING`, params)
        await c.query('SELECT pg_notify($1, $2)', [channel, node])
      })
      setState.run('failures.shipped', String(rows[rows.length - 1].id))
      stats.shipped += rows.length
      stats.waiting = Math.max(0, waiting - rows.length)
      if (rows.length < batch) return
    }
  })

  const pull = coalesce(async () => {
    for (;;) {
      const after = cursor('failures.pulled')
      const { rows } = await pool.query<Record<string, unknown>>(
        `SELECT ${PG_SELECT} FROM failures WHERE id > $1 AND node <> $2 ORDER BY id LIMIT $3`, [after, node, batch])
      if (rows.length === 0) return
      const records = rows.map((r) => {
        for (const f of BIGINT_FIELDS) if (r[f] !== null) r[f] = Number(r[f])
        const pgId = Number(r.id)
        delete r.id
        return { ...r, pgId } as ForeignRecord
      })
      // the cursor moves in the same transaction as the records (a record held already is skipped by its pgId)
      db.transaction(() => {
        failureLog.adopt(records)
        setState.run('failures.pulled', String(records[records.length - 1].pgId))
      }).immediate()
      stats.pulled += records.length
      if (rows.length < batch) return
    }
  })

  const prune = coalesce(async () => {
    let limits: FailureLogLimits
    try {
      limits = o.limits()
    } catch (err) {
      warn('failure log retention unreadable: PostgreSQL not pruned', { err })
      return
    }
    await inTransaction(pool, async (c) => {
      const { rows } = await c.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [PRUNE_LOCK])
      if (!rows[0].locked) return // another node prunes now
      const old = await c.query(
        'DELETE FROM failures WHERE id IN (SELECT id FROM failures WHERE occurred_at < $1 LIMIT 5000)',
        [Date.now() - limits.maxAgeDays * DAY_MS])
      const { rows: edge } = await c.query<{ id: string }>('SELECT id FROM failures ORDER BY id DESC OFFSET $1 LIMIT 1', [limits.maxRows])
      const over = edge.length === 0 ? { rowCount: 0 } : await c.query(
        'DELETE FROM failures WHERE id IN (SELECT id FROM failures WHERE id <= $1 ORDER BY id LIMIT 5000)', [edge[0].id])
      stats.prunedInPostgres += (old.rowCount ?? 0) + (over.rowCount ?? 0)
    })
  })

  // this node's new records are shipped soon after they are written (a burst in one batch)
  let soon: NodeJS.Timeout | null = null
  const onRecord = (r: { node: string }) => {
    if (r.node !== node || soon !== null) return
    soon = setTimeout(() => {
      soon = null
      ship().catch((err: unknown) => warn('failure records not shipped to PostgreSQL yet (retried)', { err: String(err) }))
    }, 50)
    soon.unref()
  }
  failureLog.on('record', onRecord)

  return {
    ship, pull, prune,
    stats: () => ({ ...stats }),
    close() {
      failureLog.off('record', onRecord)
      if (soon !== null) clearTimeout(soon)
      soon = null
    },
  }
}
