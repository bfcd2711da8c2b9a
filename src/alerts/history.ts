// The alert history (table alert_history): one row per firing and resolved event, with the time range and reason
// of the failures behind it; read newest first with an id cursor.
import type { Database } from 'better-sqlite3'
import type { FailureReason } from '../contracts/failure.ts'
import type { AlertEvent, AlertHistoryPage, AlertState, FailuresQuery } from './schema.ts'

export const HISTORY_DEFAULT_LIMIT = 50
export const HISTORY_MAX_LIMIT = 500
/** Events kept; older ones are deleted (a rule flapping on a 1 s window makes at most about one a second). */
export const HISTORY_MAX_ROWS = 10_000

export interface AlertHistoryRecord {
  ruleId: number
  ruleName: string
  state: AlertState
  at: number
  count: number
  baselineCount: number | null
  windowSec: number
  reason: FailureReason | null
  profile: string | null
  since: number
  until: number
  detail: string
}

export interface AlertHistoryQuery {
  ruleId?: number
  before?: number
  limit?: number
}

export interface AlertHistory {
  record(r: AlertHistoryRecord): AlertEvent
  /** the rules whose last event is a firing one (after a restart: they fired when the broker stopped) */
  unresolved(): AlertHistoryRecord[]
  list(q?: AlertHistoryQuery): AlertHistoryPage
}

interface Row {
  id: number
  rule_id: number
  rule_name: string
  state: AlertState
  at: number
  count: number
  baseline_count: number | null
  window_sec: number
  reason: FailureReason | null
  profile: string | null
  since: number
  until: number
  detail: string
}

const iso = (ms: number) => new Date(ms).toISOString()

/**
 * The failure list query for a reason, a profile (either null = any) and a time range: since rounded down, until up,
 * to the second (the UI's precision).
 */
export function failuresQuery(reason: FailureReason | null, profile: string | null, since: number, until: number): FailuresQuery {
  return {
    ...(reason !== null && { reason }),
    ...(profile !== null && { profile }),
    since: iso(Math.floor(since / 1000) * 1000),
    until: iso(Math.ceil(until / 1000) * 1000),
  }
}

const toEvent = (r: Row): AlertEvent => ({
  id: r.id,
  ruleId: r.rule_id,
  ruleName: r.rule_name,
  state: r.state,
  at: iso(r.at),
  count: r.count,
  baselineCount: r.baseline_count,
  windowSec: r.window_sec,
  reason: r.reason,
  profile: r.profile,
  detail: r.detail,
  failures: failuresQuery(r.reason, r.profile, r.since, r.until),
})

const COLUMNS = 'id, rule_id, rule_name, state, at, count, baseline_count, window_sec, reason, profile, since, until, detail'

export function createAlertHistory(db: Database, opts: { maxRows?: number } = {}): AlertHistory {
  const maxRows = opts.maxRows ?? HISTORY_MAX_ROWS
  const prune = db.prepare<[number]>('DELETE FROM alert_history WHERE id <= ?')
  const insert = db.prepare(`INSERT INTO alert_history (rule_id, rule_name, state, at, count, baseline_count, window_sec, reason,
    profile, since, until, detail) VALUES (@ruleId, @ruleName, @state, @at, @count, @baselineCount, @windowSec, @reason, @profile,
    @since, @until, @detail)`)
  const byId = db.prepare<[number], Row>(`SELECT ${COLUMNS} FROM alert_history WHERE id = ?`)
  const page = db.prepare<[Record<string, unknown>], Row>(`SELECT ${COLUMNS} FROM alert_history
    WHERE (@ruleId IS NULL OR rule_id = @ruleId) AND (@before IS NULL OR id < @before) ORDER BY id DESC LIMIT @limit`)
  const lastFiring = db.prepare<[], Row>(`SELECT ${COLUMNS} FROM alert_history
    WHERE id IN (SELECT max(id) FROM alert_history GROUP BY rule_id) AND state = 'firing' ORDER BY id`)
  return {
    unresolved: () => lastFiring.all().map((r) => ({
      ruleId: r.rule_id, ruleName: r.rule_name, state: r.state, at: r.at, count: r.count, baselineCount: r.baseline_count,
      windowSec: r.window_sec, reason: r.reason, profile: r.profile, since: r.since, until: r.until, detail: r.detail,
    })),
    record(r) {
      const id = Number(insert.run(r).lastInsertRowid)
      if (id % 100 === 0) prune.run(id - maxRows)
      return toEvent(byId.get(id)!)
    },
    list(q = {}) {
      const limit = Math.max(1, Math.min(HISTORY_MAX_LIMIT, Math.trunc(q.limit ?? HISTORY_DEFAULT_LIMIT)))
      const rows = page.all({ ruleId: q.ruleId ?? null, before: q.before ?? null, limit: limit + 1 })
      const more = rows.length > limit
      const items = (more ? rows.slice(0, limit) : rows).map(toEvent)
      return { items, nextCursor: more ? items[items.length - 1].id : null }
    },
  }
}
