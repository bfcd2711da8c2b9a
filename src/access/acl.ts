// The topic ACL store: rules in SQLite (table acl_rules), kept compiled in memory, and the `Authorizer` the broker
// core asks per PUBLISH, SUBSCRIBE and delivery (the evaluation itself is src/access/acl-rules.ts).
// A small factory closed over the database, statements prepared once, every write in one transaction.
//
// Positions run 1, 2, 3 ... without gaps: a rule created at a position pushes that rule and the ones after it down
// one, a moved rule shifts the ones between, a deleted one closes the gap.
//
// `version`: one counter for the rules and the default policy. Every write bumps it, and so does a new default (the
// hot setting aclDefault), read from `settings()` when the plugin calls settingsChanged() on each settings change
// (the settings store announces a change before its update returns). So answers cached under a version are never
// answered under another default, and the per-message questions read plain state.
import { trimmedOrNull } from './text.ts'
import type { Database } from 'better-sqlite3'
import { Compile } from 'typebox/compile'
import type { AclAction, AclSubject, Authorizer } from '../contracts/access.ts'
import { fieldErrorsFromSchema, InvalidInputError, NotFoundError, type FieldError } from '../contracts/errors.ts'
import type { Logger } from '../contracts/logger.ts'
import { compileRules, type CompiledRules } from './acl-compile.ts'
import { ruleTopicProblem } from './acl-filters.ts'
import { evaluate, isAllowed, type AclDecision } from './acl-rules.ts'
import { AclRuleInput, AclRulePatch, type AclPermission, type AclRule, type AclRuleAction } from './acl-schema.ts'

export interface AclChange {
  /** the version after the change */
  version: number
  /** `replicated`: the rules were copied from the cluster's (cluster mode) */
  what: 'created' | 'updated' | 'deleted' | 'default' | 'replicated'
  /** the rule created, updated or deleted; null for a change of the default policy */
  ruleId: number | null
}

/**
 * Who changes the ACL rules: the store itself on one node, the control plane in cluster mode (PostgreSQL first,
 * then this node's replica). The routes take either.
 */
export interface AclWriter {
  /** appended after the last rule, or inserted at `position` (1 .. count + 1), the rules from there moving down */
  create(input: AclRuleInput): AclRule | Promise<AclRule>
  /** any field; a new `position` (1 .. count) moves the rule, the ones between shifting */
  update(id: number, patch: AclRulePatch): AclRule | Promise<AclRule>
  delete(id: number): void | Promise<void>
}

export interface AclStore extends Authorizer, AclWriter {
  /** every rule, in position order (the order they are checked in) */
  list(): AclRule[]
  get(id: number): AclRule | null
  create(input: AclRuleInput): AclRule
  update(id: number, patch: AclRulePatch): AclRule
  delete(id: number): void
  /**
   * The replica's side of cluster mode: the rules become `rules` (ids and positions as given) in one transaction,
   * then, when they differ, a new version in force and a 'replicated' change. Returns whether they differed.
   */
  replicate(rules: readonly AclRule[]): boolean
  /** the aclDefault in force */
  defaultPermission(): AclPermission
  /** the decision with the deciding rule and why (the "try it" endpoint) */
  check(subject: AclSubject, action: AclAction, topic: string): AclDecision<AclRule>
  /** the settings changed: if aclDefault did, bump the version and emit 'change' */
  settingsChanged(): void
  /** Called synchronously after each change. A listener that throws is logged, nothing else. */
  on(event: 'change', listener: (change: AclChange) => void): void
  off(event: 'change', listener: (change: AclChange) => void): void
}

export interface AclStoreOptions {
  /** the hot settings in force (read on each question: keep it cheap) */
  settings: () => { aclDefault: AclPermission }
  logger: Pick<Logger, 'info' | 'error'>
}

interface Row {
  id: number
  position: number
  username: string | null
  client_id: string | null
  anonymous: number
  topic: string
  action: AclRuleAction
  permission: AclPermission
  comment: string | null
  created_at: string
  updated_at: string
}

const COLUMNS = 'id, position, username, client_id, anonymous, topic, action, permission, comment, created_at, updated_at'

const toRule = (r: Row): AclRule => ({
  id: r.id,
  position: r.position,
  username: r.username,
  clientId: r.client_id,
  anonymous: r.anonymous === 1,
  topic: r.topic,
  action: r.action,
  permission: r.permission,
  comment: r.comment,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
})

const CHECKS = { create: Compile(AclRuleInput), update: Compile(AclRulePatch) }

const ANONYMOUS_WITH_USERNAME = {
  rule: 'anonymous without username',
  message: 'a rule for anonymous clients cannot name a user (a rule naming a user never matches an anonymous client)',
}

/**
 * Every broken field a create or update body shows by itself: its schema, then, for the fields that passed it, a
 * topic that is not a topic filter and `anonymous` with a username. (The position's upper bound and an update
 * conflicting with the rule's other fields need the stored rules: the store checks them too.)
 */
export function ruleBodyProblems(body: unknown, kind: 'create' | 'update'): FieldError[] {
  const check = CHECKS[kind]
  const out = check.Check(body) ? [] : fieldErrorsFromSchema(check.Errors(body))
  if (typeof body !== 'object' || body === null) return out
  const named = new Set(out.map((f) => f.field))
  const given = body as Partial<Record<keyof AclRule, unknown>>
  if (typeof given.topic === 'string' && !named.has('topic')) {
    const problem = ruleTopicProblem(given.topic)
    if (problem !== null) out.push({ field: 'topic', rule: 'an MQTT topic filter', message: problem })
  }
  if (given.anonymous === true && typeof given.username === 'string' && !named.has('anonymous') && !named.has('username')) {
    out.push({ field: 'anonymous', ...ANONYMOUS_WITH_USERNAME })
  }
  return out
}

/** Every broken field of a body against the stored rules: `next` = the rule as it would be; `positions` = the last position. */
function problems(body: unknown, kind: 'create' | 'update', next: Partial<AclRule>, positions: number): FieldError[] {
  const out = ruleBodyProblems(body, kind)
  const named = new Set(out.map((f) => f.field))
  const given = (typeof body === 'object' && body !== null ? body : {}) as Partial<Record<keyof AclRule, unknown>>
  if (Number.isInteger(given.position) && (given.position as number) > positions && !named.has('position')) {
    out.push({ field: 'position', rule: `maximum ${positions}`, message: `must be between 1 and ${positions}` })
  }
  if (next.anonymous === true && typeof next.username === 'string' && !named.has('anonymous') && !named.has('username')) {
    out.push({ field: given.anonymous !== undefined ? 'anonymous' : 'username', ...ANONYMOUS_WITH_USERNAME })
  }
  return out
}

/** The keys of `patch` that are not undefined (nothing when it is not an object: its schema check names that). */
const defined = <T extends object>(patch: T): Partial<T> =>
  typeof patch === 'object' && patch !== null
    ? Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<T>
    : {}

/** A new rule checked against `count` stored rules: its fields and its position, or InvalidInputError. */
export function planCreate(input: AclRuleInput, count: number): { rule: Omit<AclRule, 'id'> } {
  const next = { username: null, clientId: null, anonymous: false, ...defined(input) } as AclRuleInput
  const broken = problems(input, 'create', next, count + 1)
  if (broken.length > 0) throw new InvalidInputError(broken)
  const now = new Date().toISOString()
  return {
    rule: {
      position: input.position ?? count + 1, username: next.username ?? null, clientId: next.clientId ?? null,
      anonymous: next.anonymous === true, topic: next.topic, action: next.action, permission: next.permission,
      comment: trimmedOrNull(input.comment), createdAt: now, updatedAt: now,
    },
  }
}

/** A rule changed by `patch`, checked against `count` stored rules, or InvalidInputError. */
export function planUpdate(before: AclRule, patch: AclRulePatch, count: number): AclRule {
  const next: AclRule = { ...before, ...defined(patch), updatedAt: new Date().toISOString() }
  const broken = problems(patch, 'update', next, count)
  if (broken.length > 0) throw new InvalidInputError(broken)
  next.comment = patch.comment === undefined ? before.comment : trimmedOrNull(patch.comment)
  return next
}

export const aclRuleNotFound = (id: number) => new NotFoundError(`there is no ACL rule ${id}`)

export function createAclStore(db: Database, opts: AclStoreOptions): AclStore {
  const log = opts.logger
  const selectAll = db.prepare<[], Row>(`SELECT ${COLUMNS} FROM acl_rules ORDER BY position`)
  const selectOne = db.prepare<[number], Row>(`SELECT ${COLUMNS} FROM acl_rules WHERE id = ?`)
  const count = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM acl_rules')
  const insert = db.prepare<[number, string | null, string | null, number, string, string, string, string | null, string, string]>(
    `INSERT INTO acl_rules (position, username, client_id, anonymous, topic, action, permission, comment, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const updateRow = db.prepare<[number, string | null, string | null, number, string, string, string, string | null, string, number]>(
    `UPDATE acl_rules SET position = ?, username = ?, client_id = ?, anonymous = ?, topic = ?, action = ?, permission = ?,
     comment = ?, updated_at = ? WHERE id = ?`,
  )
  const deleteRow = db.prepare<[number]>('DELETE FROM acl_rules WHERE id = ?')
  // Positions are UNIQUE and SQLite checks that row by row, so a shift goes through negative positions:
  // first the range to -(position + delta), then every negative one back.
  const shiftOut = db.prepare<[number, number, number]>('UPDATE acl_rules SET position = -(position + ?) WHERE position BETWEEN ? AND ?')
  const park = db.prepare<[number, number]>('UPDATE acl_rules SET position = ? WHERE id = ?')
  const shiftIn = db.prepare('UPDATE acl_rules SET position = -position WHERE position < 0')

  /** Rules at positions lo..hi move by delta; rule `parked` (if any) goes to `target` in the same step. */
  const shift = (lo: number, hi: number, delta: number, parked?: { id: number; target: number }) => {
    if (parked) park.run(-parked.target, parked.id)
    if (lo <= hi) shiftOut.run(delta, lo, hi)
    shiftIn.run()
  }

  const listeners = new Set<(change: AclChange) => void>()
  let rules: AclRule[] = []
  let compiled: CompiledRules<AclRule> = compileRules([])
  let version = 1
  /** the default in force: read from the settings when they change (settingsChanged), never per question */
  let defaultNow: AclPermission = opts.settings().aclDefault

  const reload = () => {
    rules = selectAll.all().map((r) => Object.freeze(toRule(r)))
    compiled = compileRules(rules)
  }
  reload()

  const emit = (what: AclChange['what'], ruleId: number | null) => {
    const change: AclChange = { version, what, ruleId }
    for (const listener of listeners) {
      try {
        listener(change)
      } catch (err) {
        log.error({ err, aclVersion: version }, 'an ACL change listener failed')
      }
    }
  }

  /** After a committed write: the new rules in force, a new version, the log line, the listeners. */
  const changed = (what: 'created' | 'updated' | 'deleted', rule: AclRule) => {
    reload()
    version++
    log.info(
      { aclVersion: version, ruleId: rule.id, position: rule.position, topic: rule.topic, permission: rule.permission },
      `ACL rule ${rule.id} ${what} (${rule.permission} ${rule.action} ${rule.topic} at position ${rule.position}); ACL version ${version}`,
    )
    emit(what, rule.id)
  }

  const mustGet = (id: number): Row => {
    const row = Number.isSafeInteger(id) ? selectOne.get(id) : undefined
    if (row === undefined) throw aclRuleNotFound(id)
    return row
  }

  const write = (r: AclRule, position: number, id: number) =>
    updateRow.run(position, r.username, r.clientId, r.anonymous ? 1 : 0, r.topic, r.action, r.permission, r.comment, r.updatedAt, id)

  const createTx = db.transaction((input: AclRuleInput): AclRule => {
    const n = count.get()!.n
    const { rule: r } = planCreate(input, n)
    shift(r.position, n, 1)
    const result = insert.run(r.position, r.username, r.clientId, r.anonymous ? 1 : 0, r.topic, r.action,
      r.permission, r.comment, r.createdAt, r.updatedAt)
    return toRule(selectOne.get(Number(result.lastInsertRowid))!)
  })

  const insertWithId = db.prepare<[number, number, string | null, string | null, number, string, string, string, string | null, string, string]>(
    `INSERT INTO acl_rules (id, position, username, client_id, anonymous, topic, action, permission, comment, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const deleteAll = db.prepare('DELETE FROM acl_rules')
  const replicateTx = db.transaction((next: readonly AclRule[]) => {
    deleteAll.run()
    for (const r of next) {
      insertWithId.run(r.id, r.position, r.username, r.clientId, r.anonymous ? 1 : 0, r.topic, r.action, r.permission,
        r.comment, r.createdAt, r.updatedAt)
    }
  })
  const sameRules = (a: readonly AclRule[], b: readonly AclRule[]) =>
    a.length === b.length && a.every((r, i) => JSON.stringify(r) === JSON.stringify(toRule(fromRule(b[i]))))
  const fromRule = (r: AclRule): Row => ({
    id: r.id, position: r.position, username: r.username, client_id: r.clientId, anonymous: r.anonymous ? 1 : 0,
    topic: r.topic, action: r.action, permission: r.permission, comment: r.comment, created_at: r.createdAt, updated_at: r.updatedAt,
  })

  const updateTx = db.transaction((id: number, patch: AclRulePatch): AclRule => {
    const before = toRule(mustGet(id))
    const next = planUpdate(before, patch, count.get()!.n)
    const from = before.position
    const to = next.position
    if (to < from) shift(to, from - 1, 1, { id, target: to })
    else if (to > from) shift(from + 1, to, -1, { id, target: to })
    write(next, to, id)
    return toRule(mustGet(id))
  })

  const deleteTx = db.transaction((id: number): AclRule => {
    const rule = toRule(mustGet(id))
    deleteRow.run(id)
    shift(rule.position + 1, Number.MAX_SAFE_INTEGER, -1)
    return rule
  })

  return {
    list: () => rules.slice(),
    get: (id) => rules.find((r) => r.id === id) ?? null,
    create(input) {
      const rule = createTx.immediate(input)
      changed('created', rule)
      return rule
    },
    update(id, patch) {
      const rule = updateTx.immediate(id, patch)
      changed('updated', rule)
      return rule
    },
    delete(id) {
      changed('deleted', deleteTx.immediate(id))
    },
    replicate(next) {
      const sorted = [...next].sort((a, b) => a.position - b.position)
      if (sameRules(rules, sorted)) return false
      replicateTx.immediate(sorted)
      reload()
      version++
      log.info({ aclVersion: version, aclRules: rules.length }, `ACL rules copied from the cluster: ${rules.length} rules; ACL version ${version}`)
      emit('replicated', null)
      return true
    },
    // read per PUBLISH and per delivery: plain state, nothing computed or looked up
    get version() {
      return version
    },
    get allowsEverything() {
      return defaultNow === 'allow' && compiled.denies === 0
    },
    allowed: (subject, action, topic) => isAllowed(compiled, subject, action, topic, defaultNow),
    defaultPermission: () => defaultNow,
    check: (subject, action, topic) => evaluate(compiled, subject, action, topic, defaultNow),
    settingsChanged() {
      const d = opts.settings().aclDefault
      if (d === defaultNow) return
      defaultNow = d
      version++
      log.info({ aclVersion: version, aclDefault: d }, `ACL default policy is now ${d}; ACL version ${version}`)
      emit('default', null)
    },
    on(_event, listener) {
      listeners.add(listener)
    },
    off(_event, listener) {
      listeners.delete(listener)
    },
  }
}
