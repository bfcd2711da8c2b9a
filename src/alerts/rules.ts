// The alert rule store (table alert_rules): list, create, update, delete, answered from memory and written in one
// transaction each. The webhook secret is kept to sign deliveries and handed out only by `secretOf()` (the plugin's
// sender): never in a rule as the API shows it. The built-in rule can be changed and disabled, not deleted or renamed.
import type { Database } from 'better-sqlite3'
import { Compile } from 'typebox/compile'
import { ConflictError, fieldErrorsFromSchema, InvalidInputError, NotFoundError, type FieldError } from '../contracts/errors.ts'
import type { FailureReason } from '../contracts/failure.ts'
import {
  AlertRuleInput, AlertRulePatch, BUILT_IN_RULE_NAME, type AlertKind, type AlertRule,
} from './schema.ts'

/** A rule as stored, without whether it fires (the evaluator knows that). */
export type StoredRule = Omit<AlertRule, 'firing'>

export interface AlertRuleStore {
  /** by id (the built-in rule, id 1, first) */
  list(): StoredRule[]
  get(id: number): StoredRule | null
  create(input: AlertRuleInput): StoredRule
  update(id: number, patch: AlertRulePatch): StoredRule
  delete(id: number): StoredRule
  /** the webhook secret of a rule, for signing only */
  secretOf(id: number): string | null
  /** Called synchronously after each change. */
  on(event: 'change', listener: () => void): void
}

interface Row {
  id: number
  name: string
  built_in: number
  enabled: number
  reason: FailureReason | null
  profile: string | null
  min_bytes_received: number
  kind: AlertKind
  count: number
  window_sec: number
  factor: number
  baseline_sec: number
  notify_ui: number
  webhook_url: string | null
  webhook_secret: string | null
  comment: string | null
  created_at: string
  updated_at: string
}

const toRule = (r: Row): StoredRule => ({
  id: r.id,
  name: r.name,
  enabled: r.enabled === 1,
  reason: r.reason,
  profile: r.profile,
  minBytesReceived: r.min_bytes_received,
  kind: r.kind,
  count: r.count,
  windowSec: r.window_sec,
  factor: r.factor,
  baselineSec: r.baseline_sec,
  notifyUi: r.notify_ui === 1,
  webhookUrl: r.webhook_url,
  comment: r.comment,
  builtIn: r.built_in === 1,
  hasSecret: r.webhook_secret !== null,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
})

const CHECKS = { create: Compile(AlertRuleInput), update: Compile(AlertRulePatch) }

/** A webhook URL's problem (only http and https, with a host), or null. */
export function webhookUrlProblem(url: string): string | null {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return 'must be an absolute URL, e.g. https://alerts.example.com/hook'
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an http:// or https:// URL'
  if (u.hostname === '') return 'must name a host'
  return null
}

/** Every broken field a create or update body shows by itself: its schema, then a webhook URL that is not one. */
export function ruleBodyProblems(body: unknown, kind: 'create' | 'update'): FieldError[] {
  const check = CHECKS[kind]
  const out = check.Check(body) ? [] : fieldErrorsFromSchema(check.Errors(body))
  if (typeof body !== 'object' || body === null) return out
  const named = new Set(out.map((f) => f.field))
  const url = (body as { webhookUrl?: unknown }).webhookUrl
  if (typeof url === 'string' && !named.has('webhookUrl')) {
    const problem = webhookUrlProblem(url)
    if (problem !== null) out.push({ field: 'webhookUrl', rule: 'an http(s) URL', message: problem })
  }
  return out
}

const trimmedOrNull = (s: string | null | undefined): string | null => {
  const t = s?.trim()
  return t ? t : null
}

const COLUMNS = `id, name, built_in, enabled, reason, profile, min_bytes_received, kind, count, window_sec, factor, baseline_sec,
  notify_ui, webhook_url, webhook_secret, comment, created_at, updated_at`

export function createAlertRuleStore(db: Database): AlertRuleStore {
  const selectAll = db.prepare<[], Row>(`SELECT ${COLUMNS} FROM alert_rules ORDER BY id`)
  const byName = db.prepare<[string], { id: number }>('SELECT id FROM alert_rules WHERE name = ?')
  const insert = db.prepare(`INSERT INTO alert_rules (name, built_in, enabled, reason, profile, min_bytes_received, kind, count,
    window_sec, factor, baseline_sec, notify_ui, webhook_url, webhook_secret, comment, created_at, updated_at)
    VALUES (@name, 0, @enabled, @reason, @profile, @minBytesReceived, @kind, @count, @windowSec, @factor, @baselineSec,
    @notifyUi, @webhookUrl, @secret, @comment, @now, @now)`)
  const updateRow = db.prepare(`UPDATE alert_rules SET name = @name, enabled = @enabled, reason = @reason, profile = @profile,
    min_bytes_received = @minBytesReceived, kind = @kind, count = @count, window_sec = @windowSec, factor = @factor,
    baseline_sec = @baselineSec, notify_ui = @notifyUi, webhook_url = @webhookUrl, webhook_secret = @secret,
    comment = @comment, updated_at = @now WHERE id = @id`)
  const deleteRow = db.prepare<[number]>('DELETE FROM alert_rules WHERE id = ?')

  let rows: Row[] = []
  const reload = () => {
    rows = selectAll.all()
  }
  reload()
  const listeners = new Set<() => void>()
  const changed = () => {
    reload()
    for (const l of listeners) l()
  }
  const rowOf = (id: number): Row => {
    const row = rows.find((r) => r.id === id)
    if (row === undefined) throw new NotFoundError(`there is no alert rule ${id}`)
    return row
  }
  const nameTaken = (name: string, id: number | null) => {
    const other = byName.get(name)
    if (other !== undefined && other.id !== id) {
      throw new ConflictError(`there is an alert rule named '${name}' already`, [{ field: 'name', rule: 'unique', message: 'is taken by another rule' }])
    }
  }
  const params = (r: StoredRule, secret: string | null) => ({
    name: r.name, enabled: r.enabled ? 1 : 0, reason: r.reason, profile: r.profile, minBytesReceived: r.minBytesReceived,
    kind: r.kind, count: r.count, windowSec: r.windowSec, factor: r.factor, baselineSec: r.baselineSec,
    notifyUi: r.notifyUi ? 1 : 0, webhookUrl: r.webhookUrl, secret, comment: trimmedOrNull(r.comment), now: new Date().toISOString(),
  })

  return {
    list: () => rows.map(toRule),
    get(id) {
      const row = rows.find((r) => r.id === id)
      return row === undefined ? null : toRule(row)
    },
    create(input) {
      const broken = ruleBodyProblems(input, 'create')
      if (broken.length > 0) throw new InvalidInputError(broken)
      const rule: StoredRule = {
        id: 0, name: input.name, enabled: input.enabled ?? true, reason: input.reason ?? null, profile: input.profile ?? null,
        minBytesReceived: input.minBytesReceived ?? 0, kind: input.kind ?? 'threshold', count: input.count, windowSec: input.windowSec,
        factor: input.factor ?? 3, baselineSec: input.baselineSec ?? 3600, notifyUi: input.notifyUi ?? true,
        webhookUrl: input.webhookUrl ?? null, comment: input.comment ?? null, builtIn: false, hasSecret: false, createdAt: '', updatedAt: '',
      }
      const id = db.transaction(() => {
        nameTaken(rule.name, null)
        return Number(insert.run(params(rule, input.secret ?? null)).lastInsertRowid)
      }).immediate()
      changed()
      return toRule(rowOf(id))
    },
    update(id, patch) {
      const broken = ruleBodyProblems(patch, 'update')
      if (broken.length > 0) throw new InvalidInputError(broken)
      const before = rowOf(id)
      if (before.built_in === 1 && patch.name !== undefined && patch.name !== before.name) {
        throw new InvalidInputError([{ field: 'name', rule: 'built-in', message: `the built-in rule keeps its name '${BUILT_IN_RULE_NAME}'` }])
      }
      const defined = Object.fromEntries(Object.entries(patch).filter(([k, v]) => v !== undefined && k !== 'secret'))
      const next: StoredRule = { ...toRule(before), ...defined }
      const secret = patch.secret === undefined ? before.webhook_secret : patch.secret
      db.transaction(() => {
        nameTaken(next.name, id)
        updateRow.run({ ...params(next, secret), id })
      }).immediate()
      changed()
      return toRule(rowOf(id))
    },
    delete(id) {
      const before = rowOf(id)
      if (before.built_in === 1) {
        throw new ConflictError(`'${before.name}' is the built-in rule: it can be disabled (enabled: false), not deleted`)
      }
      deleteRow.run(id)
      changed()
      return toRule(before)
    },
    secretOf: (id) => rows.find((r) => r.id === id)?.webhook_secret ?? null,
    on(_event, listener) {
      listeners.add(listener)
    },
  }
}
