// Decorates `controlPlane`: who the routes ask to change the settings, the MQTT users and the ACL rules. On one node
// (DATABASE_URL unset) that is the SQLite stores themselves, as before. In cluster mode it is the control plane in
// PostgreSQL (src/control/): a change is stored there first, then adopted into this node's SQLite replica, which
// every read path keeps reading. Registered after the stores it replicates and before the broker: the settings of
// the cluster are in force before the broker starts.
import fp from 'fastify-plugin'
import { startControlPlane, type ControlPlaneStatus } from '../control/index.ts'
import type { SettingsWriter } from '../settings/store.ts'
import type { MqttUserWriter } from '../access/users.ts'
import type { AclWriter } from '../access/acl.ts'
import { failureLimits } from './failures.ts'

export interface ControlPlaneFace {
  /** DATABASE_URL is set: PostgreSQL is the source of truth */
  readonly clustered: boolean
  settings: SettingsWriter
  users: MqttUserWriter
  acl: AclWriter
  /** cluster mode: PostgreSQL's state as this node sees it; null on one node */
  status(): ControlPlaneStatus | null
  /** cluster mode: pull everything new from PostgreSQL now (the node does it every 2 s on its own) */
  catchUp(): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    controlPlane: ControlPlaneFace
  }
}

export default fp(
  async (app) => {
    const url = app.config.databaseUrl
    if (url === null) {
      app.decorate('controlPlane', {
        clustered: false, settings: app.settingsStore, users: app.mqttUsers, acl: app.acl,
        status: () => null, catchUp: async () => {},
      } satisfies ControlPlaneFace)
      return
    }
    const plane = await startControlPlane({
      url,
      clusterName: app.config.clusterName,
      node: app.failureLog.node,
      db: app.db,
      settings: app.settingsStore,
      users: app.mqttUsers,
      acl: app.acl,
      failureLog: app.failureLog,
      failureLimits: failureLimits(app.settingsStore),
      logger: app.log.child({ component: 'control-plane' }),
    })
    app.decorate('controlPlane', {
      clustered: true, settings: plane.settings, users: plane.users, acl: plane.acl,
      status: plane.status, catchUp: plane.catchUp,
    } satisfies ControlPlaneFace)
    // /readyz names PostgreSQL when it does not answer (the node still serves, from its replica)
    app.addHook('onReady', async () => {
      if (app.hasDecorator('readiness')) {
        app.readiness.add('postgresql', () => {
          const s = plane.status()
          return { ok: s.ok, detail: s.detail }
        })
      }
    })
    // onClose runs in reverse order of registration: before the failure log and the database close
    app.addHook('onClose', async () => {
      await plane.close()
    })
  },
  { name: 'control-plane', dependencies: ['database', 'settings', 'access', 'acl', 'failures'] },
)
