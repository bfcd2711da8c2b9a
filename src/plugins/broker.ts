// The one place that ties the broker core to the stores: settings reach the core through applySettings(), the
// core asks the MQTT users (authenticator) and the ACL rules (authorizer) through their contracts, and its failure and
// latency events reach the failure log.
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import { Broker } from '../mqtt/broker.ts'
import { SysPublisher } from '../mqtt/sys.ts'

declare module 'fastify' {
  interface FastifyInstance {
    broker: Broker
  }
}

export default fp(
  async (app) => {
    // A stored settings version is already an immutable snapshot (frozen, values frozen): the core runs on it as is.
    const broker = new Broker({
      settings: app.settingsStore.current(),
      logger: app.log.child({ component: 'broker' }),
      // who may connect (MQTT users, allowAnonymous) and what they may touch (ACL rules, aclDefault)
      authenticator: app.authenticator,
      authorizer: app.acl,
      // retained messages and sessions: in SQLite (written behind) or in memory, per MQTT_STATE
      retained: app.mqttState.retained,
      sessions: app.mqttState.sessions,
      // STALL_CREDIT=off: deadlines on the wall clock alone (the broker's own stalls counted against clients)
      stallCredit: app.config.stallCredit === 'on',
      // cluster mode: messages to and from the other nodes, shared subscriptions across them
      ...(app.cluster !== null && { cluster: app.cluster.bus }),
    })
    if (app.cluster !== null) {
      app.cluster.bus.attach(broker)
      app.cluster.ownership.attach(broker)
    }
    app.decorate('broker', broker)
    const restored = broker.restore()
    if (restored.sessions > 0) {
      app.log.info(restored, `resumed ${restored.sessions} stored sessions (${restored.wills} with a Will pending)`)
    }

    // In force before the REST response returns: the store emits 'change' synchronously after its commit.
    app.settingsStore.on('change', (v) => broker.applySettings(v))

    // Admin-path code never takes the broker down: the core emits its events safely (a throwing listener is logged,
    // the connection goes on), and the failure log only buffers.
    broker.on('failure', (e) => app.failureLog.record(e))
    broker.on('connected', (e) => app.failureLog.recordConnectLatency(e.connectLatencyMs))

    // $SYS/ topics every sysIntervalSec, named as in package.json (from src/ and from dist/ alike)
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; version: string }
    const sys = new SysPublisher(broker, { version: `${pkg.name} version ${pkg.version}` })

    // preClose: tell clients before the HTTP server stops (v5 clients get DISCONNECT 0x8B).
    app.addHook('preClose', async () => {
      sys.stop()
      await broker.close()
    })
  },
  { name: 'broker', dependencies: ['settings', 'failures', 'access', 'acl', 'cluster', 'mqtt-state'] },
)
