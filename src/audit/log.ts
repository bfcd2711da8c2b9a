// The audit trail (table audit_log): one row per change made through the admin API, written as it is answered, and
// read newest first with filters and an id cursor. Secrets never enter it: keys that name one (password, token,
// secret, hash) are dropped from `before` and `after` at any depth, whatever the caller passed.
import type { Database, Statement } from 'better-sqlite3'
import type { AuditEntry, AuditPage } from './schema.ts'

export const AUDIT_DEFAULT_LIMIT = 100
export const AUDIT_MAX_LIMIT = 1000

/** A change as a route describes it. */
export interface AuditChange {
  action: string
  target: string | null
  /** what it was; null or absent: it did not exist */
  before?: unknown
  /** what it became; null or absent: it is gone */
  after?: unknown
}

export interface AuditRecord extends AuditChange {
  actor: string
  remoteAddress: string | null
  /** epoch ms (default now) */
  at?: number
}

export interface AuditQuery {
  actor?: string
  /** a prefix: 'settings' finds settings.update and settings.rollback; 'acl.' every ACL change */
  action?: string
  target?: string
  /** epoch ms, inclusive */
  since?: number
  /** epoch ms, inclusive */
  until?: number
  /** id cursor: only entries older (smaller id) than this */
  before?: number
  limit?: number
}

export interface AuditLog {
  record(entry: AuditRecord): AuditEntry
  list(query?: AuditQuery): AuditPage
}

/** Keys whose values are secrets, dropped wherever they appear. */
const SECRET_KEY = /^(password|password_?hash|token|secret|hash|sha256(_hex)?)$/i

/** A copy of a JSON-like value without secret keys. */
export function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecrets)
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) if (!SECRET_KEY.test(k) && v !== undefined) out[k] = withoutSecrets(v)
  return out
}

interface Row {
  id: number
  at: number
  actor: string
  action: string
  target: string | null
  before_json: string | null
  after_json: string | null
  remote_address: string | null
}

const COLUMNS = 'id, at, actor, action, target, before_json, after_json, remote_address'

const toEntry = (r: Row): AuditEntry => ({
  id: r.id,
  at: new Date(r.at).toISOString(),
  actor: r.actor,
  action: r.action,
  target: r.target,
  before: r.before_json === null ? null : JSON.parse(r.before_json),
  after: r.after_json === null ? null : JSON.parse(r.after_json),
  remoteAddress: r.remote_address,
})

const json = (v: unknown): string | null => (v === undefined || v === null ? null : JSON.stringify(withoutSecrets(v)))

export function createAuditLog(db: Database, opts: { now?: () => number } = {}): AuditLog {
  const now = opts.now ?? Date.now
  const insert = db.prepare<[number, string, string, string | null, string | null, string | null, string | null]>(
    'INSERT INTO audit_log (at, actor, action, target, before_json, after_json, remote_address) VALUES (?, ?, ?, ?, ?, ?, ?)',
  )
  const byId = db.prepare<[number], Row>(`SELECT ${COLUMNS} FROM audit_log WHERE id = ?`)

  /** One statement per combination of filters, prepared the first time it is needed. */
  const statements = new Map<string, Statement<[Record<string, unknown>], Row>>()
  const statement = (q: AuditQuery) => {
    const where: string[] = []
    if (q.actor !== undefined) where.push('actor = @actor')
    // [prefix, prefix + U+10FFFF): every action starting with the prefix, by the index
    if (q.action !== undefined) where.push('action >= @action AND action < @actionEnd')
    if (q.target !== undefined) where.push('target = @target')
    if (q.since !== undefined) where.push('at >= @since')
    if (q.until !== undefined) where.push('at <= @until')
    if (q.before !== undefined) where.push('id < @before')
    const key = where.join(' AND ')
    let stmt = statements.get(key)
    if (!stmt) {
      stmt = db.prepare<[Record<string, unknown>], Row>(
        `SELECT ${COLUMNS} FROM audit_log ${key ? `WHERE ${key}` : ''} ORDER BY id DESC LIMIT @limit`,
      )
      statements.set(key, stmt)
    }
    return stmt
  }

  return {
    record(e) {
      const id = Number(insert.run(e.at ?? now(), e.actor, e.action, e.target, json(e.before), json(e.after), e.remoteAddress).lastInsertRowid)
      return toEntry(byId.get(id)!)
    },

    list(q = {}) {
      const limit = Math.max(1, Math.min(AUDIT_MAX_LIMIT, Math.trunc(q.limit ?? AUDIT_DEFAULT_LIMIT)))
      const params: Record<string, unknown> = { limit: limit + 1 }
      if (q.actor !== undefined) params.actor = q.actor
      if (q.action !== undefined) {
        params.action = q.action
        params.actionEnd = `${q.action}\u{10FFFF}`
      }
      if (q.target !== undefined) params.target = q.target
      if (q.since !== undefined) params.since = q.since
      if (q.until !== undefined) params.until = q.until
      if (q.before !== undefined) params.before = q.before
      const rows = statement(q).all(params)
      const more = rows.length > limit
      const items = (more ? rows.slice(0, limit) : rows).map(toEntry)
      return { items, nextCursor: more ? items[items.length - 1].id : null }
    },
  }
}
