// Settings versions in cluster mode. A change is a new row in PostgreSQL (newest + 1, in one transaction with its
// NOTIFY; the primary key decides a race, and the loser merges again on the new newest), then adopted into this
// node's SQLite replica under the same number and put in force there before the answer. Every node pulls the
// versions newer than its own on a notification, on a timer and after its LISTEN connection comes back.
import type { Pool } from 'pg'
import { DomainError, StoreUnavailableError, VersionNotFoundError } from '../contracts/errors.ts'
import type { Logger } from '../contracts/logger.ts'
import type { SettingsValues } from '../settings/schema.ts'
import {
  checkChange, fromStored, nextVersion, storedVersion,
  type SettingsStore, type SettingsVersion, type SettingsWriter, type StoredSettingsVersion, type UpdateOptions,
} from '../settings/store.ts'
import { coalesce } from './coalesce.ts'
import { describePgError, inTransaction, pgCode, UNIQUE_VIOLATION } from './pg.ts'

const COLUMNS = 'version, values_json AS "valuesJson", created_at AS "createdAt", actor, comment'

/** Two writers racing for one version number: the loser tries again on the new newest, at most this many times. */
const MAX_ATTEMPTS = 8

export interface SettingsReplica extends SettingsWriter {
  update(values: Partial<SettingsValues>, opts: UpdateOptions): Promise<SettingsVersion>
  rollback(version: number, opts: Omit<UpdateOptions, 'replace'>): Promise<SettingsVersion>
  /** adopts the versions newer than this node's newest */
  pull(): Promise<void>
  /** makes this node's history PostgreSQL's (start-up) */
  syncAll(): Promise<void>
}

export function createSettingsReplica(o: { pool: Pool; store: SettingsStore; channel: string; log: Logger }): SettingsReplica {
  const { pool, store, channel, log } = o

  const pull = coalesce(async () => {
    const { rows } = await pool.query<StoredSettingsVersion>(
      `SELECT ${COLUMNS} FROM settings_versions WHERE version > $1 ORDER BY version`, [store.current().version])
    if (rows.length > 0) store.adopt(rows)
  })

  const unavailable = (err: unknown) => {
    log.error({ err: describePgError(err) }, 'settings change not stored: PostgreSQL could not be written')
    return new StoreUnavailableError(`PostgreSQL: ${describePgError(err)}`, store.current().version, err)
  }

  async function update(values: Partial<SettingsValues>, opts: UpdateOptions): Promise<SettingsVersion> {
    const comment = checkChange(values, opts)
    let next: SettingsVersion | null = null
    for (let attempt = 1; next === null; attempt++) {
      try {
        next = await inTransaction(pool, async (c) => {
          const { rows } = await c.query<StoredSettingsVersion>(`SELECT ${COLUMNS} FROM settings_versions ORDER BY version DESC LIMIT 1`)
          if (rows.length === 0) throw new Error('PostgreSQL holds no settings version')
          const v = nextVersion(fromStored(rows[0]), values, opts, comment)
          const s = storedVersion(v)
          await c.query('INSERT INTO settings_versions (version, values_json, created_at, actor, comment) VALUES ($1, $2, $3, $4, $5)',
            [s.version, s.valuesJson, s.createdAt, s.actor, s.comment])
          await c.query('SELECT pg_notify($1, $2)', [channel, String(s.version)])
          return v
        })
      } catch (err) {
        if (err instanceof DomainError) throw err
        // another node took this number first: merge again on top of its version
        if (pgCode(err) === UNIQUE_VIOLATION && attempt < MAX_ATTEMPTS) continue
        throw unavailable(err)
      }
    }
    try {
      // the versions up to this one, in order: then it is in force here
      await pull()
    } catch (err) {
      log.warn({ err: describePgError(err), settingsVersion: next.version },
        'settings version stored in PostgreSQL but not read back: put in force from what was written')
      store.adopt([storedVersion(next)])
    }
    return store.get(next.version) ?? next
  }

  return {
    update,
    async rollback(version, opts) {
      let target: StoredSettingsVersion | undefined
      try {
        target = Number.isSafeInteger(version)
          ? (await pool.query<StoredSettingsVersion>(`SELECT ${COLUMNS} FROM settings_versions WHERE version = $1`, [version])).rows[0]
          : undefined
      } catch (err) {
        throw unavailable(err)
      }
      if (target === undefined) {
        const newest = store.current().version
        throw new VersionNotFoundError(version, newest,
          [{ field: 'version', rule: `an existing version (1..${newest})`, message: `version ${version} does not exist` }])
      }
      return update({ ...fromStored(target).values }, { ...opts, replace: true, comment: opts.comment ?? `rollback to version ${version}` })
    },
    pull,
    async syncAll() {
      const { rows } = await pool.query<StoredSettingsVersion>(`SELECT ${COLUMNS} FROM settings_versions ORDER BY version`)
      store.adopt(rows, { all: true })
    },
  }
}
