// The control plane of cluster mode, put together: PostgreSQL (DATABASE_URL) is the source of truth of the settings
// versions, the MQTT users, the ACL rules and the failure log; this node's SQLite tables are its replica, which every
// read path keeps reading. Start-up connects (a bad or unreachable DATABASE_URL stops it, in one line), migrates and
// seeds under a lock, and copies PostgreSQL into the replica. Then each node LISTENs (<cluster>_settings, _access,
// _failures), catches up every `catchUpMs` and whenever its LISTEN connection comes back, and ships its own failure
// records. PostgreSQL away: the broker serves on the replica; writes of settings, users and ACL get 503 and change
// nothing; failure records wait.
import type { Database } from 'better-sqlite3'
import type { Logger } from '../contracts/logger.ts'
import type { SettingsStore } from '../settings/store.ts'
import type { MqttUserStore } from '../access/users.ts'
import type { AclStore } from '../access/acl.ts'
import type { FailureLog, FailureLogLimits } from '../failures/store.ts'
import { rateLimitedWarn } from '../failures/warn.ts'
import { createAccessReplica, type AccessReplica } from './access.ts'
import { createFailureReplica, type FailureReplica, type FailureReplicaStats } from './failures.ts'
import { createListener, type Listener } from './listen.ts'
import { migrate } from './migrate.ts'
import { ControlPlaneBootError, createListenClient, createPool, describePgError, whereOf } from './pg.ts'
import { seedIfNew } from './seed.ts'
import { createSettingsReplica, type SettingsReplica } from './settings.ts'

export { redactUrl } from './pg.ts'

export interface ControlPlaneOptions {
  /** DATABASE_URL */
  url: string
  clusterName: string
  node: string
  db: Database
  settings: SettingsStore
  users: MqttUserStore
  acl: AclStore
  failureLog: FailureLog
  failureLimits: () => FailureLogLimits
  logger: Logger
  /** ms between catch-ups (default 2000) */
  catchUpMs?: number
  /** ms between prunings of PostgreSQL's failure table (default 60000) */
  pruneEveryMs?: number
  /** ms to connect at start-up before giving up (default 3000) */
  connectTimeoutMs?: number
}

export interface ControlPlaneStatus {
  ok: boolean
  /** what was seen, in words */
  detail: string
  listening: boolean
  settingsVersion: number
  mqttUsersRevision: number
  aclRevision: number
  failures: FailureReplicaStats
}

export interface ControlPlane {
  settings: SettingsReplica
  users: AccessReplica['users']
  acl: AccessReplica['acl']
  /** pulls everything new now (tests; the timer does it every catchUpMs) */
  catchUp(): Promise<void>
  status(): ControlPlaneStatus
  close(): Promise<void>
}

export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const log = o.logger
  const where = whereOf(o.url)
  const channels = { settings: `${o.clusterName}_settings`, access: `${o.clusterName}_access`, failures: `${o.clusterName}_failures` }
  const pgOptions = { url: o.url, applicationName: `${o.clusterName}:${o.node}`, connectTimeoutMs: o.connectTimeoutMs }
  const pool = createPool(pgOptions)
  // an idle connection that breaks is dropped by the pool; the next query makes a new one
  pool.on('error', (err) => warn('PostgreSQL connection lost', { err: describePgError(err) }))
  const warn = rateLimitedWarn(log, Date.now)

  try {
    await pool.query('SELECT 1')
  } catch (err) {
    await pool.end().catch(() => {})
    throw new ControlPlaneBootError(`DATABASE_URL: cannot connect to ${where} (${describePgError(err)})`, err)
  }

  const settings = createSettingsReplica({ pool, store: o.settings, channel: channels.settings, log })
  const access = createAccessReplica({ pool, users: o.users, acl: o.acl, channel: channels.access, log })
  let failures: FailureReplica
  try {
    const applied = await migrate(pool, async (c) => {
      const seeded = await seedIfNew(c, () => ({
        node: o.node, settings: o.settings.stored(), users: o.users.stored(), rules: o.acl.list(),
      }))
      if (seeded) log.info({ node: o.node }, `control plane: a new cluster, seeded with this node's settings, MQTT users and ACL rules`)
    })
    if (applied.length > 0) log.info({ applied }, `control plane: PostgreSQL migrations ${applied.join(', ')} applied`)
    // PostgreSQL wins: this node's replica becomes the cluster's
    await settings.syncAll()
    await access.pull('mqtt_users', true)
    await access.pull('acl_rules', true)
    failures = createFailureReplica({
      pool, db: o.db, failureLog: o.failureLog, node: o.node, channel: channels.failures, logger: log, limits: o.failureLimits,
    })
  } catch (err) {
    await pool.end().catch(() => {})
    if (err instanceof ControlPlaneBootError) throw err
    throw new ControlPlaneBootError(`DATABASE_URL: ${where}: ${describePgError(err)}`, err)
  }

  /** A catch-up that failed is logged (at most every 10 s) and tried again on the next tick. */
  const quietly = (what: string, run: () => Promise<void>) => run().then(
    () => undefined,
    (err: unknown) => warn(`control plane: ${what} failed (PostgreSQL: ${describePgError(err)}); serving from this node's replica, retrying`, {}),
  )
  let lastOk = Date.now()
  let lastError: string | null = null
  async function catchUp(): Promise<void> {
    try {
      await settings.pull()
      await access.catchUp()
      await failures.pull()
      await failures.ship()
      lastOk = Date.now()
      lastError = null
    } catch (err) {
      lastError = describePgError(err)
      throw err
    }
  }

  const listener: Listener = createListener({
    client: () => createListenClient(pgOptions),
    channels: Object.values(channels),
    onNotify(channel, payload) {
      if (channel === channels.settings) void quietly('settings pull', settings.pull)
      else if (channel === channels.access) access.notified(payload)
      else if (channel === channels.failures && payload !== o.node) void quietly('failure records pull', failures.pull)
    },
    // a notification sent while the connection was away is not replayed: catch up
    onConnected: () => void quietly('catch-up', catchUp),
    log,
  })
  try {
    await listener.start()
  } catch (err) {
    await listener.close()
    await pool.end().catch(() => {})
    throw new ControlPlaneBootError(`DATABASE_URL: cannot LISTEN on ${where} (${describePgError(err)})`, err)
  }

  const tick = setInterval(() => void quietly('catch-up', catchUp), o.catchUpMs ?? 2000)
  tick.unref()
  const pruneTimer = setInterval(() => void quietly('pruning the failure table', failures.prune), o.pruneEveryMs ?? 60_000)
  pruneTimer.unref()
  log.info({ postgres: where, node: o.node, cluster: o.clusterName, settingsVersion: o.settings.current().version },
    `control plane: PostgreSQL at ${where}, settings version ${o.settings.current().version} in force`)

  return {
    settings,
    users: access.users,
    acl: access.acl,
    catchUp,
    status() {
      const listening = listener.connected
      const staleMs = Date.now() - lastOk
      const ok = listening && lastError === null
      return {
        ok,
        detail: ok
          ? `PostgreSQL at ${where} answers`
          : `PostgreSQL at ${where}: ${lastError ?? 'not listening'} (last caught up ${Math.round(staleMs / 1000)} s ago); serving from this node's replica`,
        listening,
        settingsVersion: o.settings.current().version,
        mqttUsersRevision: access.revision('mqtt_users'),
        aclRevision: access.revision('acl_rules'),
        failures: failures.stats(),
      }
    },
    async close() {
      clearInterval(tick)
      clearInterval(pruneTimer)
      await listener.close()
      // what waits is shipped now if PostgreSQL answers, else at the next start (the cursor is in SQLite)
      await failures.ship().catch(() => {})
      failures.close()
      await pool.end().catch(() => {})
    },
  }
}
