// The versioned settings store: every change is a new row holding every value; the newest row is in force.
// A small factory closed over the database, statements prepared once, every write in one transaction.
// better-sqlite3 is synchronous, so read-newest -> merge -> insert inside one transaction cannot interleave with
// another change: two racing PATCHes are applied one after the other and neither loses a field.
import type { Database } from 'better-sqlite3'
import { Compile } from 'typebox/compile'
import {
  CROSS_FIELD_RULES,
  DEFAULT_SETTINGS,
  SETTING_KEYS,
  SettingsPatch,
  SettingsValues,
  type SettingKey,
} from './schema.ts'
import {
  DomainError,
  fieldErrorsFromSchema,
  InvalidInputError,
  SettingsCorruptError,
  StaleVersionError,
  StoreUnavailableError,
  VersionNotFoundError,
  type FieldError,
} from '../contracts/errors.ts'
import type { Logger } from '../contracts/logger.ts'
import { parseCidr } from '../contracts/cidr.ts'

/** One stored version, as GET /api/settings shows it. Frozen. */
export interface SettingsVersion {
  readonly version: number
  /** ISO 8601 */
  readonly updatedAt: string
  /** the admin token's name, or 'system' for the seed */
  readonly updatedBy: string
  readonly comment: string | null
  readonly values: Readonly<SettingsValues>
}

export interface SettingsChange {
  key: SettingKey
  from: unknown
  to: unknown
}

/** A version with what it changed compared with the version before it (empty for the first). */
export interface SettingsHistoryEntry extends SettingsVersion {
  readonly diff: SettingsChange[]
}

export interface SettingsHistoryPage {
  items: SettingsHistoryEntry[]
  /** pass as `before` for the next (older) page; null when this page reaches version 1 */
  nextCursor: number | null
}

export interface UpdateOptions {
  actor: string
  comment?: string | null
  /** the version the caller last saw (If-Match); a different current version fails with 412 and changes nothing */
  ifMatch?: number | readonly number[]
  /** true: `values` must hold every key and replaces the current values (PUT); false: merged into them (PATCH) */
  replace?: boolean
}

/**
 * Who changes the settings: the store itself on one node (synchronous), the control plane in cluster mode (a
 * Promise: the new version is stored in PostgreSQL first, then adopted here). The routes take either.
 */
export interface SettingsWriter {
  update(values: Partial<SettingsValues>, opts: UpdateOptions): SettingsVersion | Promise<SettingsVersion>
  rollback(version: number, opts: Omit<UpdateOptions, 'replace'>): SettingsVersion | Promise<SettingsVersion>
}

/** A version as stored, in the columns of settings_versions (here and in PostgreSQL). */
export interface StoredSettingsVersion {
  version: number
  valuesJson: string
  createdAt: string
  actor: string
  comment: string | null
}

export interface SettingsStore extends SettingsWriter {
  current(): SettingsVersion
  get(version: number): SettingsVersion | null
  update(values: Partial<SettingsValues>, opts: UpdateOptions): SettingsVersion
  rollback(version: number, opts: Omit<UpdateOptions, 'replace'>): SettingsVersion
  /**
   * The replica's side of cluster mode: takes versions made elsewhere (PostgreSQL), in one transaction, each under
   * its own number (a local row of that number is replaced); the newest of them becomes the newest here, rows
   * above it go. With `all`, `versions` is the whole history and rows it lacks go too. The newest is validated as
   * at start-up (SettingsCorruptError: nothing changes). When the version in force changes it is logged and the
   * 'change' listeners run, as for update(). Returns the version in force.
   */
  adopt(versions: readonly StoredSettingsVersion[], opts?: { all?: boolean }): SettingsVersion
  /** Every stored version, oldest first (to seed a new cluster's history with this node's). */
  stored(): StoredSettingsVersion[]
  history(query?: { limit?: number; before?: number }): SettingsHistoryPage
  defaults(): SettingsValues
  /** Called synchronously after each commit, before update() returns. A listener that throws is logged, nothing else. */
  on(event: 'change', listener: (v: SettingsVersion) => void): void
  off(event: 'change', listener: (v: SettingsVersion) => void): void
}

export const COMMENT_MAX_LENGTH = 500
export const HISTORY_MAX_LIMIT = 500
export const HISTORY_DEFAULT_LIMIT = 50

const checkWhole = Compile(SettingsValues)
const checkPartial = Compile(SettingsPatch)

/**
 * Every broken rule of `values` (a PATCH's keys, or with `partial: false` a whole set), by field: unknown keys,
 * wrong types, out-of-range values. Field names are the setting keys; the object itself is `values`.
 */
export function checkValues(values: unknown, opts: { partial: boolean }): FieldError[] {
  const check = opts.partial ? checkPartial : checkWhole
  if (check.Check(values)) return []
  return fieldErrorsFromSchema(check.Errors(values), (p) => p || 'values')
}

/** The cross-field rules `values` breaks, naming preferably a field the change touched. */
export function checkCrossFieldRules(values: SettingsValues, touched: Iterable<string> = []): FieldError[] {
  const touchedSet = new Set(touched)
  return CROSS_FIELD_RULES.filter((r) => !r.holds(values)).map((r) => {
    const field = r.fields.find((f) => touchedSet.has(f)) ?? r.fields[0]
    const shown = r.fields.map((f) => `${f} is ${JSON.stringify(values[f])}`).join(', ')
    return { field, rule: r.rule, message: `${r.description} (${shown})` }
  })
}

/**
 * What the timeout profiles break beyond their schema: a name used twice, a CIDR that is no address block, and the
 * cross-field rules on each profile's effective values (the global values with its overrides), named at the profile.
 */
export function checkProfiles(values: SettingsValues): FieldError[] {
  const problems: FieldError[] = []
  const seen = new Map<string, number>()
  values.profiles.forEach((p, i) => {
    const at = `profiles.${i}`
    const first = seen.get(p.name)
    if (first !== undefined) {
      problems.push({ field: `${at}.name`, rule: 'unique', message: `"${p.name}" is already the name of profile ${first}` })
    } else {
      seen.set(p.name, i)
    }
    p.match.cidr?.forEach((c, j) => {
      if (parseCidr(c) === null) {
        problems.push({ field: `${at}.match.cidr.${j}`, rule: 'an IPv4 or IPv6 address with an optional /prefix', message: `"${c}" is not an address block like 10.0.0.0/8 or fd00::/8` })
      }
    })
    const effective = { ...values, ...p.overrides } as SettingsValues
    for (const r of CROSS_FIELD_RULES) {
      // a rule the global values already break is reported once, at the global key, unless this profile touches it
      if (r.holds(effective) || (!r.holds(values) && !r.fields.some((f) => f in p.overrides))) continue
      const field = r.fields.find((f) => f in p.overrides) ?? r.fields[0]
      const shown = r.fields.map((f) => `${f} is ${JSON.stringify(effective[f])}`).join(', ')
      problems.push({ field: `${at}.overrides.${field}`, rule: r.rule, message: `in profile "${p.name}": ${r.description} (${shown})` })
    }
  })
  return problems
}

/**
 * The checks of a change that need no stored version: the values (every key with `replace`, else some) and the
 * comment. Returns the comment as stored (trimmed, empty = null); throws InvalidInputError naming every bad field.
 */
export function checkChange(values: Partial<SettingsValues>, o: Pick<UpdateOptions, 'comment' | 'replace'>): string | null {
  const problems = checkValues(values, { partial: !o.replace })
  const comment = typeof o.comment === 'string' && o.comment.trim() !== '' ? o.comment.trim() : null
  if (o.comment !== undefined && o.comment !== null && typeof o.comment !== 'string') {
    problems.push({ field: 'comment', rule: 'null or type string', message: 'must be a string or null' })
  } else if (comment !== null && comment.length > COMMENT_MAX_LENGTH) {
    problems.push({ field: 'comment', rule: `maxLength ${COMMENT_MAX_LENGTH}`, message: `must be at most ${COMMENT_MAX_LENGTH} characters` })
  }
  if (problems.length > 0) throw new InvalidInputError(problems)
  return comment
}

/**
 * The version a checked change makes on top of `newest`: If-Match (StaleVersionError), the merge (PATCH) or the
 * replacement (PUT), the rules between keys and the profiles (InvalidInputError). Pure: the caller stores it.
 */
export function nextVersion(
  newest: SettingsVersion, values: Partial<SettingsValues>, o: UpdateOptions, comment: string | null, now = new Date(),
): SettingsVersion {
  if (o.ifMatch !== undefined) {
    const allowed = typeof o.ifMatch === 'number' ? [o.ifMatch] : o.ifMatch
    if (!allowed.includes(newest.version)) {
      throw new StaleVersionError(allowed.map((v) => `"${v}"`).join(', '), newest.version,
        [{ field: 'If-Match', rule: `the current version ("${newest.version}")`, message: `version ${newest.version} is in force` }])
    }
  }
  const next = (o.replace ? { ...values } : { ...newest.values, ...values }) as SettingsValues
  const broken = [...checkCrossFieldRules(next, Object.keys(values)), ...checkProfiles(next)]
  if (broken.length > 0) throw new InvalidInputError(broken)
  return toVersion({ version: newest.version + 1, values_json: serialize(next), created_at: now.toISOString(), actor: o.actor, comment }, next)
}

/** A version in the columns it is stored in. */
export const storedVersion = (v: SettingsVersion): StoredSettingsVersion => ({
  version: v.version, valuesJson: serialize(v.values), createdAt: v.updatedAt, actor: v.updatedBy, comment: v.comment,
})

/** A stored version as the store answers it (keys this build does not know dropped, new ones at their defaults). */
export const fromStored = (s: StoredSettingsVersion): SettingsVersion =>
  toVersion({ version: s.version, values_json: s.valuesJson, created_at: s.createdAt, actor: s.actor, comment: s.comment })

const same = (a: unknown, b: unknown) => a === b || JSON.stringify(a) === JSON.stringify(b)

/** Keys whose value differs between a and b, in schema order (lists such as profiles compared by content). */
export function diffValues(a: Readonly<SettingsValues> | null, b: Readonly<SettingsValues>): SettingsChange[] {
  if (a === null) return []
  return SETTING_KEYS.filter((k) => !same(a[k], b[k])).map((key) => ({ key, from: a[key], to: b[key] }))
}

interface Row {
  version: number
  values_json: string
  created_at: string
  actor: string
  comment: string | null
}

/** Stored JSON -> values: keys this build does not know are dropped, keys added since are filled with defaults. */
function parseValues(json: string): SettingsValues {
  const stored = JSON.parse(json) as Record<string, unknown>
  const values: Record<string, unknown> = { ...DEFAULT_SETTINGS }
  for (const key of SETTING_KEYS) if (key in stored) values[key] = stored[key]
  return values as SettingsValues
}

const toVersion = (row: Row, values = parseValues(row.values_json)): SettingsVersion =>
  Object.freeze({
    version: row.version,
    updatedAt: row.created_at,
    updatedBy: row.actor,
    comment: row.comment,
    values: Object.freeze(values),
  })

const serialize = (values: SettingsValues) => JSON.stringify(Object.fromEntries(SETTING_KEYS.map((k) => [k, values[k]])))

const sqliteCode = (err: unknown) => {
  const e = err as { code?: unknown; message?: string }
  return typeof e.code === 'string' ? `${e.code}: ${e.message}` : (e.message ?? String(err))
}


export function createSettingsStore(db: Database, opts: { logger: Pick<Logger, 'info' | 'error'> }): SettingsStore {
  const log = opts.logger
  const selectNewest = db.prepare<[], Row>('SELECT version, values_json, created_at, actor, comment FROM settings_versions ORDER BY version DESC LIMIT 1')
  const selectOne = db.prepare<[number], Row>('SELECT version, values_json, created_at, actor, comment FROM settings_versions WHERE version = ?')
  const selectPage = db.prepare<[number, number], Row>(
    'SELECT version, values_json, created_at, actor, comment FROM settings_versions WHERE version < ? ORDER BY version DESC LIMIT ?',
  )
  const insert = db.prepare<[number, string, string, string, string | null]>(
    'INSERT INTO settings_versions (version, values_json, created_at, actor, comment) VALUES (?, ?, ?, ?, ?)',
  )
  const listeners = new Set<(v: SettingsVersion) => void>()

  // First start: version 1 is the built-in defaults.
  db.transaction(() => {
    if (selectNewest.get() === undefined) {
      insert.run(1, serialize(DEFAULT_SETTINGS), new Date().toISOString(), 'system', 'built-in defaults')
    }
  }).immediate()

  let inForce = loadNewest()

  function loadNewest(): SettingsVersion {
    const row = selectNewest.get() as Row
    let values: SettingsValues
    try {
      values = parseValues(row.values_json)
    } catch (err) {
      throw new SettingsCorruptError(row.version, (err as Error).message)
    }
    const problems = [...checkValues(values, { partial: false }), ...checkCrossFieldRules(values)]
    if (problems.length === 0) problems.push(...checkProfiles(values))
    if (problems.length > 0) {
      throw new SettingsCorruptError(row.version, problems.map((p) => `${p.field}: ${p.rule}`).join('; '))
    }
    return toVersion(row, values)
  }

  const write = db.transaction((values: Partial<SettingsValues>, o: UpdateOptions, comment: string | null): SettingsVersion => {
    const next = nextVersion(toVersion(selectNewest.get() as Row), values, o, comment)
    const s = storedVersion(next)
    insert.run(s.version, s.valuesJson, s.createdAt, s.actor, s.comment)
    return next
  })

  const selectAll = db.prepare<[], Row>('SELECT version, values_json, created_at, actor, comment FROM settings_versions ORDER BY version')
  const upsert = db.prepare<[number, string, string, string, string | null]>(
    `INSERT INTO settings_versions (version, values_json, created_at, actor, comment) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (version) DO UPDATE SET values_json = excluded.values_json, created_at = excluded.created_at,
       actor = excluded.actor, comment = excluded.comment
     WHERE values_json IS NOT excluded.values_json OR created_at IS NOT excluded.created_at
       OR actor IS NOT excluded.actor OR comment IS NOT excluded.comment`,
  )
  const deleteAbove = db.prepare<[number]>('DELETE FROM settings_versions WHERE version > ?')
  const deleteOne = db.prepare<[number]>('DELETE FROM settings_versions WHERE version = ?')

  const adoptTx = db.transaction((versions: readonly StoredSettingsVersion[], all: boolean): SettingsVersion => {
    const given = new Set<number>()
    let newest = 0
    for (const v of versions) {
      upsert.run(v.version, v.valuesJson, v.createdAt, v.actor, v.comment)
      given.add(v.version)
      newest = Math.max(newest, v.version)
    }
    deleteAbove.run(newest)
    if (all) for (const row of selectAll.all()) if (!given.has(row.version)) deleteOne.run(row.version)
    // the newest must be one this build can run on, or nothing of it is kept
    return loadNewest()
  })

  /** After a commit that changed the newest version: in force, logged, announced. */
  function announce(before: SettingsVersion, next: SettingsVersion, how: string): void {
    inForce = next
    const changed = diffValues(before.values, next.values).map((c) => c.key)
    log.info(
      { settingsVersion: next.version, actor: next.updatedBy, changed, comment: next.comment },
      `settings version ${next.version} by ${next.updatedBy}${how}: ${changed.length > 0 ? changed.join(', ') : 'no value changed'}`,
    )
    for (const listener of listeners) {
      try {
        listener(next)
      } catch (err) {
        log.error({ err, settingsVersion: next.version }, 'a settings change listener failed')
      }
    }
  }

  function update(values: Partial<SettingsValues>, o: UpdateOptions): SettingsVersion {
    const comment = checkChange(values, o)
    const before = inForce
    let next: SettingsVersion
    try {
      next = write.immediate(values, o, comment)
    } catch (err) {
      if (err instanceof DomainError) throw err
      // read-only file, disk full, locked by another program, closed: nothing was committed
      log.error({ err, version: before.version }, 'settings change not stored: the database could not be written')
      throw new StoreUnavailableError(sqliteCode(err), before.version, err)
    }
    announce(before, next, '')
    return next
  }

  function adopt(versions: readonly StoredSettingsVersion[], o: { all?: boolean } = {}): SettingsVersion {
    if (versions.length === 0) return inForce
    const before = inForce
    const next = adoptTx.immediate(versions, o.all === true)
    const unchanged = next.version === before.version && next.updatedAt === before.updatedAt &&
      next.updatedBy === before.updatedBy && serialize(next.values) === serialize(before.values)
    if (!unchanged) announce(before, next, ' (from the cluster)')
    return inForce
  }

  function get(version: number): SettingsVersion | null {
    const row = selectOne.get(version)
    return row ? toVersion(row) : null
  }

  return {
    current: () => inForce,
    get,
    update,
    adopt,
    stored: () => selectAll.all().map((r) => ({
      version: r.version, valuesJson: r.values_json, createdAt: r.created_at, actor: r.actor, comment: r.comment,
    })),
    rollback(version, o) {
      const target = Number.isSafeInteger(version) ? get(version) : null
      if (target === null) {
        throw new VersionNotFoundError(version, inForce.version,
          [{ field: 'version', rule: `an existing version (1..${inForce.version})`, message: `version ${version} does not exist` }])
      }
      return update({ ...target.values }, { ...o, replace: true, comment: o.comment ?? `rollback to version ${version}` })
    },
    history(query = {}) {
      const limit = Math.min(Math.max(1, Math.trunc(query.limit ?? HISTORY_DEFAULT_LIMIT)), HISTORY_MAX_LIMIT)
      const before = query.before ?? Number.MAX_SAFE_INTEGER
      // one row more than asked: the oldest item's predecessor, for its diff
      const rows = selectPage.all(before, limit + 1).map((r) => toVersion(r))
      const items = rows.slice(0, limit).map((v, i) => Object.freeze({ ...v, diff: diffValues(rows[i + 1]?.values ?? null, v.values) }))
      const oldest = items[items.length - 1]
      return { items, nextCursor: rows.length > limit && oldest ? oldest.version : null }
    },
    defaults: () => ({ ...DEFAULT_SETTINGS }),
    on(_event, listener) {
      listeners.add(listener)
    },
    off(_event, listener) {
      listeners.delete(listener)
    },
  }
}
