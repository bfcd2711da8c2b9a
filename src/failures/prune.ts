// Pruning: deletes failure rows beyond failureLogMaxRows and older than failureLogMaxAgeDays, and the per-minute
// counters older than that age, a batch per pass; keeps the count of rows in the table.
import type Database from 'better-sqlite3'
import type { FailureLogStats } from './schema.ts'
import { DAY_MS } from './time.ts'
import type { Warn } from './warn.ts'

export interface FailureLogLimits {
  maxRows: number
  maxAgeDays: number
}

export interface PrunerOptions {
  /** read on every pass */
  limits: () => FailureLogLimits
  /** used when limits() throws */
  defaultLimits: FailureLogLimits
  /** rows deleted per pass */
  pruneBatch: number
  /** ms between passes when nothing is being written */
  pruneIdleMs: number
  now: () => number
  warn: Warn
  /** counts the rows deleted */
  counters: Pick<FailureLogStats, 'pruned'>
}

export interface Pruner {
  /** rows in the table, as counted here */
  readonly rows: number
  /** `n` rows were inserted */
  added(n: number): void
  /** counts the rows again (after a failed write); keeps the old count if the table is unreadable */
  recount(): void
  /** a pass is due even though nothing was written: the last one left a backlog, or it is pruneIdleMs old */
  due(): boolean
  /** One pass (call it inside the write transaction): all the rows just added plus a batch. Returns rows deleted. */
  step(justAdded: number): number
}

export function createPruner(db: Database.Database, opts: PrunerOptions): Pruner {
  const { pruneBatch, pruneIdleMs, now, warn, counters } = opts
  const countRows = db.prepare('SELECT count(*) AS n FROM failures').pluck()
  const pruneOldest = db.prepare(
    'DELETE FROM failures WHERE id IN (SELECT id FROM failures ORDER BY id LIMIT ?)',
  )
  const pruneOlderThan = db.prepare(
    'DELETE FROM failures WHERE id IN (SELECT id FROM failures WHERE occurred_at < ? LIMIT ?)',
  )
  // at most one hour of minutes per pass
  const pruneLatency = db.prepare(`DELETE FROM connect_latency
    WHERE minute < min(@cutoff, (SELECT min(minute) FROM connect_latency) + 3600000)`)
  const pruneCounts = db.prepare(`DELETE FROM failure_counts
    WHERE minute < min(@cutoff, (SELECT min(minute) FROM failure_counts) + 3600000)`)

  let rowCount = Number(countRows.get() ?? 0)
  let lastPruneAt = 0
  let backlog = true

  const readLimits = (): FailureLogLimits => {
    try {
      return opts.limits()
    } catch (err) {
      warn('failure log could not read its limits; using defaults', { err })
      return opts.defaultLimits
    }
  }

  return {
    get rows() {
      return rowCount
    },
    added(n) {
      rowCount += n
    },
    recount() {
      try {
        rowCount = Number(countRows.get() ?? rowCount)
      } catch {
        // the table itself is unreadable; the count is corrected by the next successful recount
      }
    },
    due: () => backlog || now() - lastPruneAt >= pruneIdleMs,
    step(justAdded) {
      const { maxRows, maxAgeDays } = readLimits()
      let deleted = 0
      let full = false
      if (rowCount > maxRows) {
        const want = Math.min(rowCount - maxRows, justAdded + pruneBatch)
        const n = pruneOldest.run(want).changes
        deleted += n
        rowCount -= n
        full ||= rowCount > maxRows
      }
      const cutoff = now() - maxAgeDays * DAY_MS
      const n = pruneOlderThan.run(cutoff, pruneBatch).changes
      deleted += n
      rowCount -= n
      full ||= n === pruneBatch
      pruneLatency.run({ cutoff })
      pruneCounts.run({ cutoff })
      counters.pruned += deleted
      lastPruneAt = now()
      backlog = full
      return deleted
    },
  }
}
