// The MQTT users store: the usernames and passwords clients present in CONNECT, in SQLite (table mqtt_users).
// A small factory closed over the database, statements prepared once, every write in one transaction.
// Passwords are write-only: only a salted scrypt record is stored (src/access/password.ts), no method returns it,
// and the one way to use it is the `verify` of a login record, which the authenticator calls.
import { trimmedOrNull } from './text.ts'
import type { Database } from 'better-sqlite3'
import { ConflictError, InvalidInputError, NotFoundError, type FieldError } from '../contracts/errors.ts'
import type { Logger } from '../contracts/logger.ts'
import { hashPassword, SCRYPT_PARAMS, verifyPassword, type ScryptParams } from './password.ts'

/** One user as the API shows it. No password, no hash. */
export interface MqttUser {
  username: string
  enabled: boolean
  note: string | null
  /** ISO 8601 */
  createdAt: string
  updatedAt: string
}

export interface MqttUserPage {
  /** by username (binary order: case-sensitive, 'B' before 'a') */
  items: MqttUser[]
  /** pass as `after` for the next page; null on the last page */
  nextCursor: string | null
}

export interface NewMqttUser {
  username: string
  password: string
  enabled?: boolean
  note?: string | null
}

/** At least one key. `note: null` clears the note. */
export interface MqttUserPatch {
  password?: string
  enabled?: boolean
  note?: string | null
}

/** What the authenticator needs of a user: whether it may log in, and a check of a presented password. */
export interface LoginRecord {
  username: string
  enabled: boolean
  /** scrypt off the event loop, compared in constant time; rejects when the stored record is unreadable */
  verify(password: Buffer): Promise<boolean>
}

export interface WriteOptions {
  /** who made the change (the admin token's name), for the log line */
  actor?: string
}

/**
 * Who changes the MQTT users: the store itself on one node, the control plane in cluster mode (PostgreSQL first,
 * then this node's replica). The routes take either.
 */
export interface MqttUserWriter {
  create(user: NewMqttUser, opts?: WriteOptions): Promise<MqttUser>
  update(username: string, patch: MqttUserPatch, opts?: WriteOptions): Promise<MqttUser>
  delete(username: string, opts?: WriteOptions): void | Promise<void>
}

/** A user as stored, with its password record (for the replica of cluster mode: hashes travel as stored). */
export interface StoredMqttUser extends MqttUser {
  passwordHash: string
}

/** A checked create: the user to store and the scrypt record of its password. */
export interface PreparedUser {
  user: MqttUser
  passwordHash: string
}

/** A checked patch: the keys it gives, and the scrypt record of a new password (null: the password stays). */
export interface PreparedPatch {
  given: string[]
  passwordHash: string | null
}

export interface MqttUserStore extends MqttUserWriter {
  list(query?: { limit?: number; after?: string }): MqttUserPage
  get(username: string): MqttUser | null
  delete(username: string, opts?: WriteOptions): void
  /** for the authenticator only: a user's login record, or null when there is no such user */
  loginRecord(username: string): LoginRecord | null
  /**
   * Checks a new user (InvalidInputError; ConflictError for a name this node holds) and hashes its password, storing
   * nothing (the control plane stores it).
   */
  prepareCreate(user: NewMqttUser): Promise<PreparedUser>
  /** Checks a patch (InvalidInputError) and hashes a new password, storing nothing. */
  preparePatch(patch: MqttUserPatch): Promise<PreparedPatch>
  /**
   * The replica's side of cluster mode: makes the table equal to `users` (rows that differ written, missing ones
   * deleted) in one transaction. The authenticator reads the table at each CONNECT. Returns the rows changed.
   */
  replicate(users: readonly StoredMqttUser[]): number
  /** Every user with its password record, by username (to seed a new cluster with this node's users). */
  stored(): StoredMqttUser[]
}

/** `user` with `patch` applied (the note trimmed, empty = null), updated now. */
export function patchedUser(user: MqttUser, patch: MqttUserPatch, now = new Date()): MqttUser {
  return {
    ...user,
    enabled: patch.enabled ?? user.enabled,
    note: patch.note === undefined ? user.note : trimmedOrNull(patch.note),
    updatedAt: now.toISOString(),
  }
}

/** The answer to a username that is taken (409, naming the field). */
export const mqttUserConflict = (username: string) => new ConflictError(`there is already an MQTT user ${JSON.stringify(username)}`,
  [field('username', 'unique', 'is already taken')])

export const USERNAME_MAX_CHARS = 256
export const PASSWORD_MAX_BYTES = 1024
export const NOTE_MAX_CHARS = 1000
export const LIST_MAX_LIMIT = 1000
export const LIST_DEFAULT_LIMIT = 100

/** C0, DEL and C1 controls, and lone surrogates (not encodable as UTF-8, so no MQTT client could send them). */
const CONTROL_OR_LONE_SURROGATE = /[\p{Cc}\p{Cs}]/u

/** Characters as SQLite's length() and JSON Schema count them: code points. */
const chars = (s: string) => {
  let n = 0
  for (const _ of s) n++
  return n
}

const field = (name: string, rule: string, message: string): FieldError => ({ field: name, rule, message })

function usernameErrors(username: unknown): FieldError[] {
  if (typeof username !== 'string') return [field('username', 'type string', 'must be a string')]
  const n = chars(username)
  if (n < 1) return [field('username', 'minLength 1', 'must not be empty')]
  if (n > USERNAME_MAX_CHARS) return [field('username', `maxLength ${USERNAME_MAX_CHARS}`, `must be at most ${USERNAME_MAX_CHARS} characters`)]
  if (CONTROL_OR_LONE_SURROGATE.test(username)) return [field('username', 'no control characters', 'must not contain control characters')]
  return []
}

function passwordErrors(password: unknown): FieldError[] {
  if (typeof password !== 'string') return [field('password', 'type string', 'must be a string')]
  const bytes = Buffer.byteLength(password, 'utf8')
  if (bytes < 1) return [field('password', 'minLength 1', 'must not be empty')]
  if (bytes > PASSWORD_MAX_BYTES) return [field('password', `at most ${PASSWORD_MAX_BYTES} bytes`, `must be at most ${PASSWORD_MAX_BYTES} bytes as UTF-8`)]
  return []
}

function enabledErrors(enabled: unknown): FieldError[] {
  return enabled === undefined || typeof enabled === 'boolean' ? [] : [field('enabled', 'type boolean', 'must be true or false')]
}

/** A note as stored: trimmed, empty -> null. */
function noteErrors(note: unknown): FieldError[] {
  if (note === undefined || note === null) return []
  if (typeof note !== 'string') return [field('note', 'null or type string', 'must be a string or null')]
  if (chars(note.trim()) > NOTE_MAX_CHARS) return [field('note', `null or maxLength ${NOTE_MAX_CHARS}`, `must be at most ${NOTE_MAX_CHARS} characters`)]
  return []
}

const throwIfAny = (errors: FieldError[]) => {
  if (errors.length > 0) throw new InvalidInputError(errors)
}

export const mqttUserNotFound = (username: string) => new NotFoundError(`there is no MQTT user ${JSON.stringify(username)}`)

interface Row {
  username: string
  password_hash: string
  enabled: 0 | 1
  note: string | null
  created_at: string
  updated_at: string
}

const toUser = (row: Row): MqttUser => ({
  username: row.username,
  enabled: row.enabled === 1,
  note: row.note,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
})

const PUBLIC_COLUMNS = 'username, enabled, note, created_at, updated_at'

/** Checks a patch (InvalidInputError naming every bad field); returns the keys it gives. */
function checkPatch(patch: MqttUserPatch): string[] {
  const given = Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined)
  throwIfAny([
    ...(given.length === 0 ? [field('(body)', 'minProperties 1', 'give at least one of password, enabled, note')] : []),
    ...(patch.password === undefined ? [] : passwordErrors(patch.password)), ...enabledErrors(patch.enabled), ...noteErrors(patch.note),
  ])
  return given
}

export function createUserStore(
  db: Database,
  opts: { logger?: Pick<Logger, 'info'>; scrypt?: ScryptParams } = {},
): MqttUserStore {
  const params = opts.scrypt ?? SCRYPT_PARAMS
  const selectOne = db.prepare<[string], Row>(`SELECT ${PUBLIC_COLUMNS} FROM mqtt_users WHERE username = ?`)
  const selectLogin = db.prepare<[string], Pick<Row, 'username' | 'enabled' | 'password_hash'>>(
    'SELECT username, enabled, password_hash FROM mqtt_users WHERE username = ?',
  )
  const selectPage = db.prepare<[string, number], Row>(
    `SELECT ${PUBLIC_COLUMNS} FROM mqtt_users WHERE username > ? ORDER BY username LIMIT ?`,
  )
  const insert = db.prepare<[string, string, number, string | null, string, string]>(
    'INSERT INTO mqtt_users (username, password_hash, enabled, note, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
  )
  const updateRow = db.prepare<[string | null, number, string | null, string, string]>(
    'UPDATE mqtt_users SET password_hash = COALESCE(?, password_hash), enabled = ?, note = ?, updated_at = ? WHERE username = ?',
  )
  const remove = db.prepare<[string]>('DELETE FROM mqtt_users WHERE username = ?')

  const log = (actor: string | undefined, username: string, what: string, extra: object = {}) =>
    opts.logger?.info({ mqttUser: username, actor, ...extra }, `MQTT user ${JSON.stringify(username)} ${what}${actor ? ` by ${actor}` : ''}`)

  const get = (username: string): MqttUser | null => {
    const row = typeof username === 'string' ? selectOne.get(username) : undefined
    return row ? toUser(row) : null
  }

  const selectStored = db.prepare<[], Row & { password_hash: string }>(
    `SELECT ${PUBLIC_COLUMNS}, password_hash FROM mqtt_users ORDER BY username`,
  )
  const upsert = db.prepare<[string, string, number, string | null, string, string]>(
    `INSERT INTO mqtt_users (username, password_hash, enabled, note, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, enabled = excluded.enabled,
       note = excluded.note, created_at = excluded.created_at, updated_at = excluded.updated_at`,
  )
  const toStored = (r: Row & { password_hash: string }): StoredMqttUser => ({ ...toUser(r), passwordHash: r.password_hash })
  const sameStored = (a: StoredMqttUser, b: StoredMqttUser) => a.passwordHash === b.passwordHash && a.enabled === b.enabled &&
    a.note === b.note && a.createdAt === b.createdAt && a.updatedAt === b.updatedAt
  const replicateTx = db.transaction((users: readonly StoredMqttUser[]): number => {
    const local = new Map(selectStored.all().map((r) => [r.username, toStored(r)]))
    let changed = 0
    for (const u of users) {
      const mine = local.get(u.username)
      local.delete(u.username)
      if (mine !== undefined && sameStored(mine, u)) continue
      upsert.run(u.username, u.passwordHash, u.enabled ? 1 : 0, u.note, u.createdAt, u.updatedAt)
      changed++
    }
    for (const username of local.keys()) changed += remove.run(username).changes
    return changed
  })

  const hashOf = (password: string) => hashPassword(Buffer.from(password, 'utf8'), params)

  async function prepareCreate(user: NewMqttUser): Promise<PreparedUser> {
    throwIfAny([
      ...usernameErrors(user.username), ...passwordErrors(user.password), ...enabledErrors(user.enabled), ...noteErrors(user.note),
    ])
    // refuse a name this node holds before spending a hash on it; the store that writes checks again
    if (get(user.username) !== null) throw mqttUserConflict(user.username)
    const passwordHash = await hashOf(user.password)
    const now = new Date().toISOString()
    return { user: { username: user.username, enabled: user.enabled ?? true, note: trimmedOrNull(user.note), createdAt: now, updatedAt: now }, passwordHash }
  }

  async function preparePatch(patch: MqttUserPatch): Promise<PreparedPatch> {
    const given = checkPatch(patch)
    return { given, passwordHash: patch.password === undefined ? null : await hashOf(patch.password) }
  }

  const insertUser = db.transaction((user: MqttUser, hash: string) => {
    if (selectOne.get(user.username) !== undefined) throw mqttUserConflict(user.username)
    insert.run(user.username, hash, user.enabled ? 1 : 0, user.note, user.createdAt, user.updatedAt)
  })

  /** Applies a patch to the row as it is at commit time; `hash` replaces the password when given. */
  const patchUser = db.transaction((username: string, patch: MqttUserPatch, hash: string | null): MqttUser => {
    const row = selectOne.get(username)
    if (row === undefined) throw mqttUserNotFound(username)
    const next = patchedUser(toUser(row), patch)
    updateRow.run(hash, next.enabled ? 1 : 0, next.note, next.updatedAt, username)
    return next
  })

  return {
    list(query = {}) {
      const limit = Math.min(Math.max(1, Math.trunc(query.limit ?? LIST_DEFAULT_LIMIT)), LIST_MAX_LIMIT)
      // one row more than asked: is there a next page?
      const rows = selectPage.all(query.after ?? '', limit + 1)
      const items = rows.slice(0, limit).map(toUser)
      return { items, nextCursor: rows.length > limit ? items[items.length - 1].username : null }
    },

    get,

    async create(user, o = {}) {
      const { user: created, passwordHash: hash } = await prepareCreate(user)
      // the transaction checks the name again at commit
      insertUser.immediate(created, hash)
      log(o.actor, created.username, 'created', { enabled: created.enabled })
      return created
    },

    async update(username, patch, o = {}) {
      const given = checkPatch(patch)
      // a user not here is refused before a hash is spent on it
      if (get(username) === null) throw mqttUserNotFound(username)
      const hash = patch.password === undefined ? null : await hashOf(patch.password)
      const updated = patchUser.immediate(username, patch, hash)
      log(o.actor, username, `updated: ${given.join(', ')}`, { changed: given })
      return updated
    },

    delete(username, o = {}) {
      if (remove.run(username).changes === 0) throw mqttUserNotFound(username)
      log(o.actor, username, 'deleted')
    },

    prepareCreate,
    preparePatch,
    replicate: (users) => replicateTx.immediate(users),
    stored: () => selectStored.all().map(toStored),

    loginRecord(username) {
      const row = selectLogin.get(username)
      if (row === undefined) return null
      const record = row.password_hash
      return { username: row.username, enabled: row.enabled === 1, verify: (password) => verifyPassword(password, record) }
    },
  }
}
