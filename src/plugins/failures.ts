// Decorates `failureLog`: the failure log store on the app's database, pruned by the current settings,
// flushed and stopped when the app closes. A database error never reaches the broker: the store logs it and
// counts the records it lost.
import { hostname } from 'node:os'
import fp from 'fastify-plugin'
import { createFailureLog, type FailureLog, type FailureLogLimits, type FailureLogOptions } from '../failures/store.ts'
import { DEFAULT_SETTINGS } from '../settings/schema.ts'
import type { SettingsStore } from '../settings/store.ts'
import { nodeIdOf } from '../config.ts'

declare module 'fastify' {
  interface FastifyInstance {
    failureLog: FailureLog
  }
}

/** Tuning for tests and benchmarks; the defaults suit production. */
export type FailuresPluginOptions = Omit<FailureLogOptions, 'limits' | 'defaultLimits' | 'logger' | 'node'>

/** The failure log's retention in the settings in force (read at each pruning pass, here and in PostgreSQL). */
export const failureLimits = (settings: SettingsStore) => (): FailureLogLimits => {
  const v = settings.current().values
  return { maxRows: v.failureLogMaxRows, maxAgeDays: v.failureLogMaxAgeDays }
}

export default fp<FailuresPluginOptions>(
  async (app, opts) => {
    const failureLog = createFailureLog(app.db, {
      ...opts,
      limits: failureLimits(app.settingsStore),
      defaultLimits: { maxRows: DEFAULT_SETTINGS.failureLogMaxRows, maxAgeDays: DEFAULT_SETTINGS.failureLogMaxAgeDays },
      logger: app.log.child({ component: 'failure-log' }),
      // every record names the node it happened on (NODE_ID, or hostname:port)
      node: nodeIdOf(app.config, hostname()),
    })
    app.decorate('failureLog', failureLog)
    // Runs before the database plugin's onClose (reverse order of registration): the last records are written.
    app.addHook('onClose', async () => {
      failureLog.close()
    })
  },
  { name: 'failures', dependencies: ['database', 'settings'] },
)
