// MQTT users and ACL rules in cluster mode. A write goes to PostgreSQL first, in one transaction that bumps the
// table's revision (so writers of one table take turns) and NOTIFYs; its constraints decide races (a username taken
// on another node meanwhile: 409, a rule deleted there: 404). Then every node, the writer first, copies the table
// into its SQLite replica when its revision moved: the authenticator reads the users table at each CONNECT, and the
// ACL store compiles the rules it is given into a new ACL version. Password hashes travel as stored.
import type { Pool, PoolClient } from 'pg'
import { DomainError } from '../contracts/errors.ts'
import type { Logger } from '../contracts/logger.ts'
import {
  mqttUserConflict, mqttUserNotFound, patchedUser,
  type MqttUser, type MqttUserStore, type MqttUserWriter, type StoredMqttUser,
} from '../access/users.ts'
import { aclRuleNotFound, planCreate, planUpdate, type AclStore, type AclWriter } from '../access/acl.ts'
import type { AclRule } from '../access/acl-schema.ts'
import { coalesce } from './coalesce.ts'
import { ControlPlaneUnavailableError, describePgError, inTransaction, pgCode, UNIQUE_VIOLATION } from './pg.ts'

export type AccessTable = 'mqtt_users' | 'acl_rules'
export const ACCESS_TABLES: readonly AccessTable[] = ['mqtt_users', 'acl_rules']

const USER_COLUMNS = `username, password_hash AS "passwordHash", enabled, note, created_at AS "createdAt", updated_at AS "updatedAt"`
const RULE_COLUMNS = `id, position, username, client_id AS "clientId", anonymous, topic, action, permission, comment,
  created_at AS "createdAt", updated_at AS "updatedAt"`

type UserRow = Omit<StoredMqttUser, 'enabled'> & { enabled: number }
type RuleRow = Omit<AclRule, 'id' | 'anonymous'> & { id: string; anonymous: number }

const toStoredUser = (r: UserRow): StoredMqttUser => ({ ...r, enabled: r.enabled === 1 })
const toUser = ({ passwordHash: _hash, ...user }: StoredMqttUser): MqttUser => user
const toRule = (r: RuleRow): AclRule => ({ ...r, id: Number(r.id), anonymous: r.anonymous === 1 })

export interface AccessReplica {
  users: MqttUserWriter
  acl: AclWriter
  /** copies a table whose revision moved since this node last copied it (or every table: `force`) */
  pull(table: AccessTable, force?: boolean): Promise<void>
  /** reads the revisions and copies the tables whose revision moved (the timer's catch-up) */
  catchUp(): Promise<void>
  /** a notification: `table:revision` */
  notified(payload: string): void
  /** the revision this node's replica of `table` is at (-1: not copied yet) */
  revision(table: AccessTable): number
}

export function createAccessReplica(o: {
  pool: Pool; users: MqttUserStore; acl: AclStore; channel: string; log: Logger
}): AccessReplica {
  const { pool, users, acl, channel, log } = o
  const applied: Record<AccessTable, number> = { mqtt_users: -1, acl_rules: -1 }

  /** The table and its revision from one snapshot, into the replica; the rows are read only when the revision moved. */
  async function copy(table: AccessTable): Promise<void> {
    const { revision, rows } = await inTransaction(pool, async (c) => {
      await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY')
      const rev = (await c.query<{ revision: string }>('SELECT revision FROM control_revisions WHERE name = $1', [table])).rows[0]
      const revision = Number(rev?.revision ?? 0)
      if (revision === applied[table]) return { revision, rows: null }
      const rows = table === 'mqtt_users'
        ? (await c.query<UserRow>(`SELECT ${USER_COLUMNS} FROM mqtt_users ORDER BY username`)).rows
        : (await c.query<RuleRow>(`SELECT ${RULE_COLUMNS} FROM acl_rules ORDER BY position`)).rows
      return { revision, rows }
    })
    if (rows === null) return
    if (table === 'mqtt_users') {
      const changed = users.replicate((rows as UserRow[]).map(toStoredUser))
      if (changed > 0) log.info({ mqttUsersRevision: revision, changed }, `MQTT users copied from the cluster: ${changed} changed`)
    } else {
      acl.replicate((rows as RuleRow[]).map(toRule))
    }
    applied[table] = revision
  }
  const pulls: Record<AccessTable, () => Promise<void>> = {
    mqtt_users: coalesce(() => copy('mqtt_users')),
    acl_rules: coalesce(() => copy('acl_rules')),
  }

  /**
   * One write of `table` in PostgreSQL: its revision bumped first (the row lock makes writers of the table take
   * turns), then `fn`, then the NOTIFY, all in one transaction; then this node's replica catches up.
   */
  async function write<T>(table: AccessTable, what: string, fn: (c: PoolClient) => Promise<T>, onUnique?: () => DomainError): Promise<T> {
    let result: T
    try {
      result = await inTransaction(pool, async (c) => {
        const { rows } = await c.query<{ revision: string }>(
          'UPDATE control_revisions SET revision = revision + 1 WHERE name = $1 RETURNING revision', [table])
        const value = await fn(c)
        await c.query('SELECT pg_notify($1, $2)', [channel, `${table}:${rows[0].revision}`])
        return value
      })
    } catch (err) {
      if (err instanceof DomainError) throw err
      if (onUnique !== undefined && pgCode(err) === UNIQUE_VIOLATION) throw onUnique()
      log.error({ err: describePgError(err) }, `${what}: not stored, PostgreSQL could not be written`)
      throw new ControlPlaneUnavailableError(what, describePgError(err), err)
    }
    try {
      await pulls[table]()
    } catch (err) {
      log.warn({ err: describePgError(err) }, `${what}: stored in PostgreSQL, not yet copied here (caught up on the next try)`)
    }
    return result
  }

  const logUser = (actor: string | undefined, username: string, what: string, extra: object = {}) =>
    log.info({ mqttUser: username, actor, ...extra }, `MQTT user ${JSON.stringify(username)} ${what}${actor ? ` by ${actor}` : ''}`)

  const userWriter: MqttUserWriter = {
    async create(input, opts = {}) {
      // a name this node already knows is refused before a hash is spent on it; PostgreSQL decides the rest
      const { user, passwordHash } = await users.prepareCreate(input)
      await write('mqtt_users', `MQTT user ${JSON.stringify(user.username)}`, async (c) => {
        await c.query('INSERT INTO mqtt_users (username, password_hash, enabled, note, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)',
          [user.username, passwordHash, user.enabled ? 1 : 0, user.note, user.createdAt, user.updatedAt])
      }, () => mqttUserConflict(user.username))
      logUser(opts.actor, user.username, 'created', { enabled: user.enabled })
      return user
    },
    async update(username, patch, opts = {}) {
      const { given, passwordHash } = await users.preparePatch(patch)
      const updated = await write('mqtt_users', `MQTT user ${JSON.stringify(username)}`, async (c) => {
        const { rows } = await c.query<UserRow>(`SELECT ${USER_COLUMNS} FROM mqtt_users WHERE username = $1 FOR UPDATE`, [username])
        if (rows.length === 0) throw mqttUserNotFound(username)
        const next = patchedUser(toUser(toStoredUser(rows[0])), patch)
        await c.query('UPDATE mqtt_users SET password_hash = COALESCE($1, password_hash), enabled = $2, note = $3, updated_at = $4 WHERE username = $5',
          [passwordHash, next.enabled ? 1 : 0, next.note, next.updatedAt, username])
        return next
      })
      logUser(opts.actor, username, `updated: ${given.join(', ')}`, { changed: given })
      return updated
    },
    async delete(username, opts = {}) {
      await write('mqtt_users', `MQTT user ${JSON.stringify(username)}`, async (c) => {
        const { rowCount } = await c.query('DELETE FROM mqtt_users WHERE username = $1', [username])
        if (rowCount === 0) throw mqttUserNotFound(username)
      })
      logUser(opts.actor, username, 'deleted')
    },
  }

  const countRules = async (c: PoolClient) => Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM acl_rules')).rows[0].n)
  const ruleFor = async (c: PoolClient, id: number): Promise<AclRule> => {
    const row = Number.isSafeInteger(id)
      ? (await c.query<RuleRow>(`SELECT ${RULE_COLUMNS} FROM acl_rules WHERE id = $1 FOR UPDATE`, [id])).rows[0]
      : undefined
    if (row === undefined) throw aclRuleNotFound(id)
    return toRule(row)
  }
  /** After a write: the rule as this node's replica holds it (the one written when it is not copied yet). */
  const local = (rule: AclRule) => acl.get(rule.id) ?? rule

  // Positions are unique at commit (a deferred constraint): a shift may pass through duplicates on the way.
  const aclWriter: AclWriter = {
    async create(input) {
      return local(await write('acl_rules', 'ACL rule', async (c) => {
        const { rule } = planCreate(input, await countRules(c))
        await c.query('UPDATE acl_rules SET position = position + 1 WHERE position >= $1', [rule.position])
        const { rows } = await c.query<{ id: string }>(
          `INSERT INTO acl_rules (position, username, client_id, anonymous, topic, action, permission, comment, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
          [rule.position, rule.username, rule.clientId, rule.anonymous ? 1 : 0, rule.topic, rule.action, rule.permission,
            rule.comment, rule.createdAt, rule.updatedAt])
        return { id: Number(rows[0].id), ...rule }
      }))
    },
    async update(id, patch) {
      return local(await write('acl_rules', `ACL rule ${id}`, async (c) => {
        const before = await ruleFor(c, id)
        const next = planUpdate(before, patch, await countRules(c))
        const from = before.position
        const to = next.position
        if (to < from) await c.query('UPDATE acl_rules SET position = position + 1 WHERE position >= $1 AND position < $2', [to, from])
        else if (to > from) await c.query('UPDATE acl_rules SET position = position - 1 WHERE position > $1 AND position <= $2', [from, to])
        await c.query(
          `UPDATE acl_rules SET position = $1, username = $2, client_id = $3, anonymous = $4, topic = $5, action = $6,
           permission = $7, comment = $8, updated_at = $9 WHERE id = $10`,
          [to, next.username, next.clientId, next.anonymous ? 1 : 0, next.topic, next.action, next.permission, next.comment,
            next.updatedAt, id])
        return next
      }))
    },
    async delete(id) {
      await write('acl_rules', `ACL rule ${id}`, async (c) => {
        const rule = await ruleFor(c, id)
        await c.query('DELETE FROM acl_rules WHERE id = $1', [id])
        await c.query('UPDATE acl_rules SET position = position - 1 WHERE position > $1', [rule.position])
      })
    },
  }

  return {
    users: userWriter,
    acl: aclWriter,
    pull(table, force = false) {
      if (force) applied[table] = -1
      return pulls[table]()
    },
    async catchUp() {
      const { rows } = await pool.query<{ name: AccessTable; revision: string }>('SELECT name, revision FROM control_revisions')
      for (const r of rows) {
        if (ACCESS_TABLES.includes(r.name) && Number(r.revision) !== applied[r.name]) await pulls[r.name]()
      }
    },
    notified(payload) {
      const [table, revision] = payload.split(':')
      if (!ACCESS_TABLES.includes(table as AccessTable) || Number(revision) <= applied[table as AccessTable]) return
      pulls[table as AccessTable]().catch((err: unknown) => {
        log.warn({ err: describePgError(err), table }, 'a change could not be copied from PostgreSQL (caught up on the next try)')
      })
    },
    revision: (table) => applied[table],
  }
}
