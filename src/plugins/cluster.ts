// Decorates `cluster`: cluster mode's data plane on NATS (null on one node). Connects to NATS_URL (one line naming it
// if it cannot), opens the buckets of client-id ownership and of the nodes, and makes the message bus. The broker
// plugin hands the bus to the core (BrokerOptions.cluster) and attaches the core to it; the state plugin keeps
// retained messages and sessions in JetStream and claims a client id before reading its session.
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import fp from 'fastify-plugin'
import { Kvm, type KV } from '@nats-io/kv'
import { nodeIdOf } from '../config.ts'
import { connectNats, redactUrl, replicasOf, type NatsLinks } from '../cluster/connect.ts'
import { NatsBus } from '../cluster/bus.ts'
import { Ownership } from '../cluster/ownership.ts'
import { Nodes, type NodeHeartbeat } from '../cluster/nodes.ts'
import { ensureKeptStream } from '../cluster/replay.ts'
import { subjectsOf } from '../cluster/subjects.ts'
import { jetstreamManager } from '@nats-io/jetstream'

/** how long leaving the cluster may take at shutdown before the NATS connections are closed anyway */
const CLOSE_TIMEOUT_MS = 3000
/** after NATS came back, the client ids this node holds are checked at once and again this much later */
const VERIFY_AGAIN_MS = 5000

export interface ClusterRuntime {
  nodeId: string
  /** this start of this node */
  boot: string
  links: NatsLinks
  bus: NatsBus
  ownership: Ownership
  nodes: Nodes
  /** a survivor takes up a dead node's sessions (set by the state plugin, which holds the session store) */
  takeUp: ((dead: NodeHeartbeat) => Promise<void>) | null
  /** the NATS connection that carries messages: connected now, and the last time it was lost (ISO) */
  natsStatus(): { connected: boolean; server: string; lostAt: string | null; reconnects: number }
}

declare module 'fastify' {
  interface FastifyInstance {
    cluster: ClusterRuntime | null
  }
}

export default fp(
  async (app) => {
    const url = app.config.natsUrl
    if (url === null) {
      app.decorate('cluster', null)
      return
    }
    const log = app.log.child({ component: 'cluster' })
    const nodeId = nodeIdOf(app.config, hostname())
    const clusterName = app.config.clusterName
    const links = await connectNats(url, `mqtt-broker ${clusterName} ${nodeId}`)
    const kvm = new Kvm(links.main)
    let owners: KV
    let nodesKv: KV
    try {
      // on a NATS cluster of 3 or more servers every bucket has 3 replicas: it outlives one server
      const replicas = replicasOf(links.main)
      owners = await kvm.create(`${clusterName}_owners`, { history: 1, replicas })
      // a marker of a dead node taken up is kept an hour; heartbeats are written every second
      nodesKv = await kvm.create(`${clusterName}_nodes`, { history: 1, ttl: 3_600_000, replicas })
      // QoS 1/2 messages kept a while, for the sessions of a node that dies (../cluster/replay.ts)
      await ensureKeptStream(await jetstreamManager(links.main), clusterName, subjectsOf(clusterName).kept, replicas)
    } catch (err) {
      await links.main.close()
      await links.shared.close()
      throw new Error(`NATS_URL: ${redactUrl(url)} has no JetStream for the cluster's buckets (${(err as Error).message})`)
    }
    // the message connection's state, for /readyz and /metrics (the NATS client reconnects by itself)
    let connected = true
    let lostAt: string | null = null
    let reconnects = 0
    const boot = randomBytes(6).toString('hex')
    const upSince = new Date().toISOString()
    const runtime: ClusterRuntime = {
      nodeId, boot, links,
      bus: new NatsBus(links, { nodeId, clusterName, logger: log }),
      ownership: new Ownership(links.main, owners, { nodeId, boot, clusterName, logger: log }),
      nodes: new Nodes(nodesKv, links.main, {
        nodeId, boot, clusterName, logger: log,
        describe: () => {
          const a = app.server.address() as AddressInfo | null
          return {
            address: a === null ? '' : `${a.address}:${a.port}`,
            upSince,
            connections: app.broker.clientCount,
            settingsVersion: app.settingsStore.current().version,
          }
        },
        takeUp: (dead) => runtime.takeUp?.(dead) ?? Promise.resolve(),
        // taken for dead while stalled: a survivor holds this node's sessions now, so it stops at once, writing
        // nothing more (a graceful close would write its stale sessions over the survivor's)
        fenced: () => {
          log.fatal({ nodeId, boot }, `node ${nodeId} was taken for dead by the cluster (it stalled for over 3 s and did not answer): its sessions are another node's now; exiting`)
          process.exit(1)
        },
      }),
      takeUp: null,
      natsStatus: () => ({ connected, server: links.main.getServer(), lostAt, reconnects }),
    }
    void (async () => {
      for await (const s of links.main.status()) {
        if (s.type === 'disconnect') {
          connected = false
          lostAt = new Date().toISOString()
          log.warn({ server: s.server }, `lost NATS server ${s.server}: reconnecting (messages to other nodes wait)`)
          // (session writes wait until the client ids another node took meanwhile are known)
          runtime.ownership.suspend()
        } else if (s.type === 'reconnect') {
          connected = true
          reconnects++
          log.info({ server: s.server }, `NATS connection back, on ${s.server}`)
          // a release request sent while this node was away is lost: give up what another node took meanwhile; again
          // a little later, for a claim made before this node's subscriptions reached every NATS server
          const verify = () => void runtime.ownership.verify().catch((err: unknown) => log.warn({ err }, 'checking the client ids this node owns failed'))
          verify()
          setTimeout(verify, VERIFY_AGAIN_MS).unref()
        }
      }
    })().catch(() => {})
    app.decorate('cluster', runtime)
    log.info({ nodeId, clusterName, nats: redactUrl(url) }, `cluster node ${nodeId} of "${clusterName}" on NATS ${redactUrl(url)}`)

    // the first heartbeat once every plugin is up (the broker exists); the listener's address follows at the next
    app.addHook('onReady', async () => {
      await runtime.nodes.start()
      // /readyz names NATS while this node cannot reach it (it still serves its own clients)
      if (app.hasDecorator('readiness')) {
        app.readiness.add('nats', () => {
          const s = runtime.natsStatus()
          return s.connected
            ? { ok: true, detail: `NATS at ${s.server} answers` }
            : { ok: false, detail: `NATS lost at ${s.lostAt}: reconnecting; messages to and from other nodes wait` }
        })
      }
    })
    // after the broker has closed and the stores have written (onClose runs in reverse order of registration)
    // (bounded: with NATS unreachable, a graceful stop must not wait for its requests to time out one by one)
    app.addHook('onClose', async () => {
      const graceful = (async () => {
        await runtime.nodes.stop()
        await Promise.allSettled([links.main.drain(), links.shared.drain()])
      })()
      const timer = new Promise((r) => setTimeout(r, CLOSE_TIMEOUT_MS).unref())
      await Promise.race([graceful, timer])
      await Promise.allSettled([links.main.close(), links.shared.close()])
    })
  },
  { name: 'cluster', dependencies: ['settings'] },
)
