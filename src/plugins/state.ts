// Decorates `mqttState`: where the broker keeps retained messages and sessions. MQTT_STATE=sqlite (the default):
// in DB_PATH, loaded here at start and written behind (src/state/), so they survive a restart and a kill -9 (at most
// the last ~50 ms of changes are lost). MQTT_STATE=memory: in memory only, gone at restart.
import fp from 'fastify-plugin'
import type { RetainedStore, SessionStore } from '../contracts/state.ts'
import { MemoryRetainedStore } from '../mqtt/retained.ts'
import { MemorySessionStore } from '../mqtt/session.ts'
import { DurableRetainedStore } from '../state/retained.ts'
import { DurableSessionStore } from '../state/sessions.ts'
import { WriteBehind } from '../state/write-behind.ts'
import { openBuckets } from '../cluster/buckets.ts'
import { JetStreamRetainedStore } from '../cluster/retained.ts'
import { OwnedSessionStore } from '../cluster/owned-sessions.ts'
import { replicasOf } from '../cluster/connect.ts'
import { TakeUp } from '../cluster/take-up.ts'

export interface MqttState {
  kind: 'sqlite' | 'memory' | 'jetstream'
  retained: RetainedStore
  sessions: SessionStore
  /** the SQLite writer (null in memory) */
  writeBehind: WriteBehind | null
  /** how long loading the stored state took at start, ms */
  loadMs: number
}

declare module 'fastify' {
  interface FastifyInstance {
    mqttState: MqttState
  }
}

export default fp(
  async (app) => {
    const cluster = app.cluster
    if (cluster !== null) {
      // cluster mode: every node reads and writes the same JetStream buckets (MQTT_STATE does not apply)
      const started = performance.now()
      const log = app.log.child({ component: 'mqtt-state' })
      const buckets = await openBuckets(cluster.links.main, app.config.clusterName, { replicas: replicasOf(cluster.links.main) })
      const retained = await JetStreamRetainedStore.open(buckets, new MemoryRetainedStore(), { nodeId: cluster.nodeId, logger: log })
      // (a session taken from a living node: what was published while neither node routed it, read again once its
      // CONNECT has routed it here)
      const sessions: OwnedSessionStore = new OwnedSessionStore(buckets, cluster.ownership, {
        nodeId: cluster.nodeId, logger: log,
        onMoved: (clientId) => setImmediate(() => takeUp.moved(clientId).catch((err: unknown) =>
          log.error({ err, clientId }, 'reading kept messages again for a session taken from another node failed'))),
      })
      const takeUp = new TakeUp({ clusterName: app.config.clusterName, buckets, bus: cluster.bus, ownership: cluster.ownership, sessions, peer: () => app.broker, logger: log })
      const loadMs = Math.round(performance.now() - started)
      app.decorate('mqttState', { kind: 'jetstream', retained, sessions, writeBehind: null, loadMs } satisfies MqttState)
      // a survivor takes up a dead node's sessions (src/cluster/take-up.ts)
      cluster.takeUp = (dead) => takeUp.deadNode(dead)
      log.info({ retained: retained.size, loadMs }, `MQTT state in JetStream (cluster "${app.config.clusterName}"): ${retained.size} retained messages loaded in ${loadMs} ms`)
      app.addHook('onClose', async () => {
        await Promise.allSettled([sessions.close(), retained.close()])
      })
      return
    }
    if (app.config.mqttState === 'memory') {
      app.decorate('mqttState', {
        kind: 'memory', retained: new MemoryRetainedStore(), sessions: new MemorySessionStore(), writeBehind: null, loadMs: 0,
      } satisfies MqttState)
      app.log.info('MQTT state in memory (MQTT_STATE=memory): retained messages and sessions end with the process')
      return
    }
    const started = performance.now()
    const writeBehind = new WriteBehind(app.db, app.log.child({ component: 'mqtt-state' }))
    // connections that held a session when the file was last written ended then (the process died after it)
    const crashedAt = writeBehind.aliveAt() ?? Date.now()
    const retained = new DurableRetainedStore(app.db, new MemoryRetainedStore(), writeBehind)
    const sessions = new DurableSessionStore(app.db, writeBehind, crashedAt)
    writeBehind.start()
    const loadMs = Math.round(performance.now() - started)
    app.decorate('mqttState', { kind: 'sqlite', retained, sessions, writeBehind, loadMs } satisfies MqttState)
    app.log.info({ retained: retained.size, sessions: sessions.size, loadMs },
      `MQTT state loaded from ${app.config.dbPath}: ${retained.size} retained messages, ${sessions.size} sessions in ${loadMs} ms`)
    // onClose runs in reverse order of registration: after the broker has closed its connections (preClose), before
    // the database closes
    app.addHook('onClose', async () => {
      writeBehind.close()
    })
  },
  { name: 'mqtt-state', dependencies: ['database', 'cluster'] },
)
