// The admin tokens (table admin_tokens): who may call the admin API, and with which role. Only a SHA-256 of each
// secret is stored; the secret itself is answered once, when the token is made. Every check is answered from memory,
// so a revoked token is refused from the next request on. When a token was last used is kept in memory and written
// behind by flush() (a timer, once a minute): a request never costs a database write.
//
// The boot token (ADMIN_TOKEN, or the one generated on first start; see src/plugins/auth.ts) is always listed first,
// as id 0 and role admin; it is changed by restarting with another ADMIN_TOKEN, never revoked through the API.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Database } from 'better-sqlite3'
import { ConflictError, NotFoundError } from '../contracts/errors.ts'
import type { Logger } from '../contracts/logger.ts'
import { isRole, type Role } from '../contracts/roles.ts'

export const BOOT_TOKEN_NAME = 'admin'
export const BOOT_TOKEN_ID = 0
export const TOKEN_NAME_MAX_CHARS = 64
export const LAST_USED_FLUSH_MS = 60_000

export const sha256 = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest()

/** 32 random bytes, base64url: 43 characters. */
export const generateToken = (): string => randomBytes(32).toString('base64url')

/** A token as the API lists it: never its secret, never its hash. */
export interface AdminToken {
  id: number
  name: string
  role: Role
  /** ISO 8601 */
  createdAt: string
  /** ISO 8601; null = never used */
  lastUsedAt: string | null
  /** the boot token (ADMIN_TOKEN or the generated one): not revocable through the API */
  builtIn: boolean
}

/** Who a presented token is. */
export interface TokenHolder {
  id: number
  name: string
  role: Role
}

export interface AdminTokenStore {
  /** Tokens in force: the boot token first, then by id. */
  list(): AdminToken[]
  get(id: number): AdminToken | null
  /** A new token; `secret` is the only copy there will ever be. 409 for a name in use now or before. */
  create(input: { name: string; role: Role }): { token: AdminToken; secret: string }
  /** Refuses the token from now on; returns it as it was. 404 for no such token in force, 409 for the boot token. */
  revoke(id: number): AdminToken
  /** The holder of a presented secret (its use noted in memory), or null. */
  authenticate(secret: string): TokenHolder | null
  /** Writes the last uses noted since the previous flush. */
  flush(): void
  /** Stops the timer and flushes. */
  close(): void
}

/** The boot token the store starts with: its hash, and the stored row when it is the generated one in force. */
export interface BootToken {
  hash: Buffer
  createdAt: string
  rowId: number | null
}

interface Entry extends TokenHolder {
  hash: Buffer
  createdAt: string
  /** epoch ms, in memory */
  lastUsedAt: number | null
  /** the row its last use is written to; null: kept in memory only */
  rowId: number | null
  dirty: boolean
}

interface Row {
  id: number
  name: string
  role: string
  sha256_hex: string
  created_at: string
  last_used_at: string | null
}

/** The stored row of the generated boot token, if there is one. */
export function storedBootToken(db: Database): { id: number; hash: Buffer; createdAt: string } | null {
  const row = db.prepare<[string], Pick<Row, 'id' | 'sha256_hex' | 'created_at'>>(
    'SELECT id, sha256_hex, created_at FROM admin_tokens WHERE name = ?',
  ).get(BOOT_TOKEN_NAME)
  return row ? { id: row.id, hash: Buffer.from(row.sha256_hex, 'hex'), createdAt: row.created_at } : null
}

/** Stores the hash of a generated boot token; returns its row id. */
export function storeBootToken(db: Database, hash: Buffer, createdAt: string): number {
  return Number(db.prepare('INSERT INTO admin_tokens (name, role, sha256_hex, created_at) VALUES (?, ?, ?, ?)')
    .run(BOOT_TOKEN_NAME, 'admin', hash.toString('hex'), createdAt).lastInsertRowid)
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

const view = (e: Entry): AdminToken => ({
  id: e.id, name: e.name, role: e.role, createdAt: e.createdAt, lastUsedAt: iso(e.lastUsedAt), builtIn: e.id === BOOT_TOKEN_ID,
})

const nameTaken = (name: string, why: string) =>
  new ConflictError(`there is already an admin token named ${JSON.stringify(name)} (${why}); pick another name`,
    [{ field: 'name', rule: 'unique', message: 'is already taken (names are never reused)' }])

export function createAdminTokenStore(
  db: Database,
  opts: { boot: BootToken; flushIntervalMs?: number; logger?: Pick<Logger, 'info' | 'error'>; now?: () => number },
): AdminTokenStore {
  const now = opts.now ?? Date.now
  const insert = db.prepare<[string, string, string, string]>(
    'INSERT INTO admin_tokens (name, role, sha256_hex, created_at) VALUES (?, ?, ?, ?)',
  )
  const nameExists = db.prepare<[string], { revoked_at: string | null }>('SELECT revoked_at FROM admin_tokens WHERE name = ?')
  const revokeRow = db.prepare<[string, number]>('UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL')
  const writeLastUsed = db.prepare<[string, number]>('UPDATE admin_tokens SET last_used_at = ? WHERE id = ?')

  const boot: Entry = {
    id: BOOT_TOKEN_ID, name: BOOT_TOKEN_NAME, role: 'admin', hash: opts.boot.hash, createdAt: opts.boot.createdAt,
    lastUsedAt: null, rowId: opts.boot.rowId, dirty: false,
  }
  if (boot.rowId !== null) {
    const stored = db.prepare<[number], Pick<Row, 'last_used_at'>>('SELECT last_used_at FROM admin_tokens WHERE id = ?').get(boot.rowId)
    boot.lastUsedAt = stored?.last_used_at ? Date.parse(stored.last_used_at) : null
  }
  const entries = new Map<number, Entry>([[BOOT_TOKEN_ID, boot]])
  const rows = db.prepare<[string], Row>(
    'SELECT id, name, role, sha256_hex, created_at, last_used_at FROM admin_tokens WHERE revoked_at IS NULL AND name <> ? ORDER BY id',
  ).all(BOOT_TOKEN_NAME)
  for (const r of rows) {
    if (!isRole(r.role)) continue // the table's CHECK makes this impossible; a token of unknown role is never let in
    entries.set(r.id, {
      id: r.id, name: r.name, role: r.role, hash: Buffer.from(r.sha256_hex, 'hex'), createdAt: r.created_at,
      lastUsedAt: r.last_used_at === null ? null : Date.parse(r.last_used_at), rowId: r.id, dirty: false,
    })
  }

  const flushAll = db.transaction((dirty: Entry[]) => {
    for (const e of dirty) writeLastUsed.run(iso(e.lastUsedAt)!, e.rowId!)
  })

  function flush() {
    const dirty = [...entries.values()].filter((e) => e.dirty && e.rowId !== null && e.lastUsedAt !== null)
    if (dirty.length === 0) return
    try {
      flushAll(dirty)
      for (const e of dirty) e.dirty = false
    } catch (err) {
      // kept dirty: the next flush tries again
      opts.logger?.error({ err }, 'admin tokens: the last uses could not be written (retried at the next flush)')
    }
  }

  const timer = setInterval(flush, opts.flushIntervalMs ?? LAST_USED_FLUSH_MS)
  timer.unref()

  return {
    list: () => [...entries.values()].map(view),

    get(id) {
      const e = entries.get(id)
      return e ? view(e) : null
    },

    create({ name, role }) {
      const trimmed = name.trim()
      if (trimmed === BOOT_TOKEN_NAME) throw nameTaken(trimmed, 'the boot token')
      const existing = nameExists.get(trimmed)
      if (existing) throw nameTaken(trimmed, existing.revoked_at === null ? 'in force' : `revoked ${existing.revoked_at}`)
      const secret = generateToken()
      const hash = sha256(secret)
      const createdAt = new Date(now()).toISOString()
      const id = Number(insert.run(trimmed, role, hash.toString('hex'), createdAt).lastInsertRowid)
      const entry: Entry = { id, name: trimmed, role, hash, createdAt, lastUsedAt: null, rowId: id, dirty: false }
      entries.set(id, entry)
      opts.logger?.info({ adminToken: trimmed, role }, `admin token ${JSON.stringify(trimmed)} (${role}) created`)
      return { token: view(entry), secret }
    },

    revoke(id) {
      if (id === BOOT_TOKEN_ID) {
        throw new ConflictError('the boot token cannot be revoked: it is ADMIN_TOKEN (or the token generated on first start); restart with another ADMIN_TOKEN to replace it')
      }
      const e = entries.get(id)
      if (e === undefined) throw new NotFoundError(`there is no admin token ${id} in force`)
      const before = view(e)
      db.transaction(() => {
        revokeRow.run(new Date(now()).toISOString(), id)
        if (e.dirty && e.lastUsedAt !== null) writeLastUsed.run(iso(e.lastUsedAt)!, id)
      })()
      entries.delete(id)
      opts.logger?.info({ adminToken: e.name, role: e.role }, `admin token ${JSON.stringify(e.name)} revoked`)
      return before
    },

    authenticate(secret) {
      // equal-length hashes compared in constant time, against every token (no early exit)
      const presented = sha256(secret)
      let found: Entry | null = null
      for (const e of entries.values()) {
        if (timingSafeEqual(presented, e.hash) && found === null) found = e
      }
      if (found === null) return null
      found.lastUsedAt = now()
      found.dirty = true
      return { id: found.id, name: found.name, role: found.role }
    },

    flush,

    close() {
      clearInterval(timer)
      flush()
    },
  }
}
