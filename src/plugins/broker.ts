// The one place that ties the broker core to the stores: settings reach the core through applySettings(),
// the core's failure and latency events reach the failure log.
import fp from 'fastify-plugin'
import { Broker } from '../mqtt/broker.ts'
import type { SettingsSnapshot } from '../settings/schema.ts'

declare module 'fastify' {
  interface FastifyInstance {
    broker: Broker
  }
}

const snapshot = (v: { version: number; values: SettingsSnapshot['values'] }): SettingsSnapshot =>
  Object.freeze({ version: v.version, values: Object.freeze({ ...v.values }) })

export default fp(
  async (app) => {
    const log = app.log.child({ component: 'broker' })
    const broker = new Broker({ settings: snapshot(app.settingsStore.current()), logger: log })
    app.decorate('broker', broker)

    // In force before the REST response returns: the store emits 'change' synchronously after its commit.
    app.settingsStore.on('change', (v) => {
      broker.applySettings(snapshot(v))
      log.info({ version: v.version }, 'settings applied to the broker')
    })

    // Admin-path code must never take the broker down: a failing store is logged, the broker goes on.
    broker.on('failure', (e) => {
      try {
        app.failureLog.record(e)
      } catch (err) {
        log.error({ err }, 'failure log rejected a record')
      }
    })
    broker.on('connected', (e) => {
      try {
        app.failureLog.recordConnectLatency(e.connectLatencyMs)
      } catch (err) {
        log.error({ err }, 'failure log rejected a latency sample')
      }
    })

    // preClose: tell clients before the HTTP server stops (v5 clients get DISCONNECT 0x8B).
    app.addHook('preClose', async () => {
      await broker.close()
    })
  },
  { name: 'broker', dependencies: ['settings', 'failures'] },
)
