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
import { keptEnd, KEPT_FOR_MS, replayKept } from '../cluster/replay.ts'

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
      const sessions = new OwnedSessionStore(buckets, cluster.ownership, { nodeId: cluster.nodeId, logger: log })
      const loadMs = Math.round(performance.now() - started)
      app.decorate('mqttState', { kind: 'jetstream', retained, sessions, writeBehind: null, loadMs } satisfies MqttState)
      // a survivor takes up a dead node's sessions: only those the dead node still owns, each read from the bucket
      cluster.takeUp = async (dead) => {
        const endedAt = Date.parse(dead.lastHeartbeat)
        const ids = await cluster.ownership.heldBy(dead.id)
        const total = { sessions: 0, wills: 0 }
        // a few at a time: each is a compare-and-set and a read of the bucket
        for (let i = 0; i < ids.length; i += 64) {
          const taken = await Promise.all(ids.slice(i, i + 64).map(async (clientId) => {
            if (!(await cluster.ownership.claimOrphan(clientId, dead.id))) return undefined
            const session = await sessions.adopt(clientId, endedAt)
            if (session === undefined) await cluster.ownership.drop(clientId)
            return session
          }))
          const r = app.broker.adoptSessions(taken.filter((s) => s !== undefined), endedAt)
          total.sessions += r.sessions
          total.wills += r.wills
        }
        // what the dead node may not have written, and what was published while no node held its sessions: the
        // kept QoS 1/2 messages since each session was last written, up to now that this node routes them
        const since = new Map<string, number>()
        for (const clientId of ids) {
          const at = sessions.lastWrittenAt(clientId)
          // (100 ms before its last write: a message routed while that batch was being written)
          if (at !== undefined && sessions.get(clientId) !== undefined) since.set(clientId, at - 100)
        }
        let replayed = 0
        if (since.size > 0) {
          await cluster.bus.flush()
          const end = await keptEnd(buckets.jsm, app.config.clusterName)
          const order = [...since].sort((x, y) => x[1] - y[1])
          const from = Math.max(order[0][1], Date.now() - KEPT_FOR_MS)
          // (a message a session holds already, queued or in flight, is not given to it again)
          const held = new Map<string, Set<string>>()
          for (const [clientId] of order) {
            const s = sessions.get(clientId)!
            const ids = new Set<string>()
            for (const e of [...(s.queue ?? []), ...(s.inflight?.values() ?? [])]) if (e.message.id !== undefined) ids.add(e.message.id)
            held.set(clientId, ids)
          }
          const eligible = new Set<string>()
          let next = 0
          replayed = await replayKept(buckets.js, app.config.clusterName, from, end, (m, at) => {
            while (next < order.length && order[next][1] <= at) eligible.add(order[next++][0])
            if (eligible.size > 0) app.broker.redeliver(m, (c) => eligible.has(c) && (m.id === undefined || !held.get(c)!.has(m.id)))
          }, log)
        }
        log.warn({ node: dead.id, ...total, replayed }, `took up ${total.sessions} sessions of node ${dead.id} (${total.wills} with a Will; ${replayed} kept messages read again for them)`)
      }
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
