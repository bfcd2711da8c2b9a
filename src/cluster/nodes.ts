// The nodes of a cluster: each writes a heartbeat (what GET /api/nodes shows) to a JetStream KV bucket every second.
// A node is dead when its heartbeat has not changed for DEAD_AFTER_MS by this node's own clock (never by comparing
// clocks) and it does not answer a ping over NATS, or at once when its last heartbeat says it is leaving (a graceful
// stop). One survivor, chosen by creating a marker key (compare-and-set), takes up its sessions: their Wills are
// published, their subscriptions route on the survivor, their queued messages wait there for their clients; then it
// is removed from the list. A node that finds the marker of its own boot was taken for dead while it was stalled: it
// is fenced (it must stop at once, before it writes over what the survivor took). A node that starts again under
// the same NODE_ID takes up what its previous boot left.
import type { KV } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import type { Logger } from '../contracts/logger.ts'
import { keyToken } from './ownership.ts'

export const HEARTBEAT_MS = 1000
/** a node whose heartbeat has not changed this long (and that does not answer a ping) is dead */
export const DEAD_AFTER_MS = 3000
const PING_TIMEOUT_MS = 1000

export interface NodeHeartbeat {
  id: string
  /** where its HTTP/WebSocket listener is (host:port) */
  address: string
  /** ISO 8601 */
  upSince: string
  /** open MQTT connections */
  connections: number
  /** the settings version it runs */
  settingsVersion: number
  /** ISO 8601 */
  lastHeartbeat: string
  /** this start of the node (a restarted node is a new boot) */
  boot: string
  /** the last heartbeat of a node stopping gracefully: its sessions are taken up at once */
  leaving?: boolean
}

export interface NodeView extends NodeHeartbeat {
  alive: boolean
  self: boolean
}

export interface NodesOptions {
  nodeId: string
  boot: string
  clusterName: string
  logger?: Logger
  /** this node's heartbeat fields, read at each beat */
  describe(): Omit<NodeHeartbeat, 'id' | 'lastHeartbeat' | 'boot'>
  /** take up a dead node's (or this node's previous boot's) sessions; rejects when some could not be taken */
  takeUp(dead: NodeHeartbeat): Promise<void>
  /** this node was taken for dead by the others (its sessions are theirs now): it must stop serving at once */
  fenced(): void
}

export const pingSubject = (clusterName: string, nodeId: string): string => `${clusterName}.node.${keyToken(nodeId)}.ping`

export class Nodes {
  readonly #kv: KV
  readonly #nc: NatsConnection
  readonly #o: NodesOptions
  /** the last heartbeat read of each node, and when (by this node's clock) it last changed */
  readonly #seen = new Map<string, { hb: NodeHeartbeat; changedAt: number }>()
  /** dead boots being taken up by this node */
  readonly #reaping = new Set<string>()
  #timer: NodeJS.Timeout | null = null
  #beating: Promise<void> | null = null
  #fenced = false

  constructor(kv: KV, nc: NatsConnection, opts: NodesOptions) {
    this.#kv = kv
    this.#nc = nc
    this.#o = opts
  }

  /**
   * Answer pings, take up what this node's previous boot left (a restart under the same NODE_ID), write the first
   * heartbeat and read the others, then beat every HEARTBEAT_MS.
   */
  async start(): Promise<void> {
    this.#nc.subscribe(pingSubject(this.#o.clusterName, this.#o.nodeId), {
      callback: (err, msg) => {
        if (err !== null) return
        try {
          msg.respond(new TextEncoder().encode(this.#o.boot))
        } catch {
          // closing
        }
      },
    })
    const previous = await this.#kv.get(this.#key(this.#o.nodeId))
    if (previous !== null && previous.operation === 'PUT') {
      const hb = parse(previous.json<unknown>())
      if (hb !== null && hb.boot !== this.#o.boot) void this.#reap(hb, true)
    }
    await this.#beat()
    this.#timer = setInterval(() => {
      if (this.#beating === null) {
        this.#beating = this.#beat().catch((err: unknown) => {
          this.#o.logger?.warn({ err }, 'the cluster heartbeat could not be written or read')
        }).finally(() => { this.#beating = null })
      }
    }, HEARTBEAT_MS)
    this.#timer.unref()
  }

  /** Stop beating; the last heartbeat says this node leaves, so a survivor takes its sessions up at once. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.#beating
    const hb: NodeHeartbeat = { ...this.#o.describe(), id: this.#o.nodeId, lastHeartbeat: new Date().toISOString(), boot: this.#o.boot, leaving: true }
    await this.#kv.put(this.#key(this.#o.nodeId), JSON.stringify(hb)).catch(() => {})
  }

  /** Is `nodeId` alive by what this node saw? An unknown node is taken as alive (it may have just started). */
  isAlive(nodeId: string, now = Date.now()): boolean {
    const s = this.#seen.get(nodeId)
    return s === undefined || (s.hb.leaving !== true && now - s.changedAt < DEAD_AFTER_MS)
  }

  /** Every node of the cluster, as the bucket says now. */
  async list(now = Date.now()): Promise<NodeView[]> {
    await this.#read(now)
    return [...this.#seen.values()]
      .map(({ hb }) => ({ ...hb, alive: hb.id === this.#o.nodeId || this.isAlive(hb.id, now), self: hb.id === this.#o.nodeId }))
      .sort((a, b) => a.id.localeCompare(b.id))
  }

  #key(nodeId: string): string {
    return `n.${keyToken(nodeId)}`
  }

  #marker(hb: NodeHeartbeat): string {
    return `reap.${keyToken(hb.id)}.${keyToken(hb.boot)}`
  }

  async #beat(): Promise<void> {
    if (this.#fenced) return
    // taken for dead while stalled: the sessions are a survivor's now
    if (await this.#kv.get(`reap.${keyToken(this.#o.nodeId)}.${keyToken(this.#o.boot)}`).then((e) => e !== null && e.operation === 'PUT')) {
      this.#fenced = true
      this.#o.fenced()
      return
    }
    const hb: NodeHeartbeat = { ...this.#o.describe(), id: this.#o.nodeId, lastHeartbeat: new Date().toISOString(), boot: this.#o.boot }
    await this.#kv.put(this.#key(this.#o.nodeId), JSON.stringify(hb))
    const now = Date.now()
    await this.#read(now)
    for (const { hb: other } of this.#seen.values()) {
      if (other.id !== this.#o.nodeId && !this.isAlive(other.id, now)) void this.#reap(other, false)
    }
  }

  async #read(now: number): Promise<void> {
    const keys = await this.#kv.keys('n.>')
    const seen = new Map<string, NodeHeartbeat>()
    for await (const k of keys) {
      const e = await this.#kv.get(k)
      if (e === null || e.operation !== 'PUT') continue
      const hb = parse(e.json<unknown>())
      if (hb !== null) seen.set(hb.id, hb)
    }
    for (const id of [...this.#seen.keys()]) if (!seen.has(id)) this.#seen.delete(id)
    for (const [id, hb] of seen) {
      const before = this.#seen.get(id)
      const changed = before === undefined || before.hb.lastHeartbeat !== hb.lastHeartbeat || before.hb.boot !== hb.boot
      this.#seen.set(id, { hb, changedAt: changed ? now : before.changedAt })
    }
  }

  /**
   * One survivor (the first to create the marker of this boot of the node) takes up its sessions, off the heartbeat:
   * a long take-up must not make this node look dead. `own`: this node's previous boot.
   */
  async #reap(dead: NodeHeartbeat, own: boolean): Promise<void> {
    const marker = this.#marker(dead)
    if (this.#reaping.has(marker)) return
    this.#reaping.add(marker)
    try {
      // a node that answers is alive, however old its heartbeat looks (a stalled JetStream, a slow disk)
      if (!own && dead.leaving !== true) {
        const answer = await this.#nc.request(pingSubject(this.#o.clusterName, dead.id), new Uint8Array(0), { timeout: PING_TIMEOUT_MS })
          .then((m) => new TextDecoder().decode(m.data), () => null)
        if (answer === dead.boot) {
          const s = this.#seen.get(dead.id)
          if (s !== undefined) s.changedAt = Date.now()
          return
        }
      }
      try {
        await this.#kv.create(marker, this.#o.nodeId)
      } catch {
        return // another survivor is on it, or it was taken up already
      }
      this.#o.logger?.warn({ node: dead.id, boot: dead.boot, lastHeartbeat: dead.lastHeartbeat, leaving: dead.leaving === true },
        own ? `taking up the sessions this node (${dead.id}) held before it started again`
          : `node ${dead.id} ${dead.leaving === true ? 'left' : `has sent no heartbeat since ${dead.lastHeartbeat}`}: taking up its sessions`)
      try {
        await this.#o.takeUp(dead)
      } catch (err) {
        // some could not be taken: the marker goes, so that the next beat (of any survivor) tries again
        this.#o.logger?.error({ err, node: dead.id }, `taking up the sessions of node ${dead.id} failed part-way: trying again`)
        await this.#kv.delete(marker).catch(() => {})
        return
      }
      if (own) return
      // (only the record of that boot: a node that came back meanwhile wrote a newer one)
      const e = await this.#kv.get(this.#key(dead.id))
      if (e !== null && e.operation === 'PUT' && parse(e.json<unknown>())?.boot === dead.boot) {
        await this.#kv.delete(this.#key(dead.id), { previousSeq: e.revision }).catch(() => {})
      }
      this.#seen.delete(dead.id)
    } finally {
      this.#reaping.delete(marker)
    }
  }
}

/** A heartbeat as stored, or null when it is not one this build reads. */
function parse(v: unknown): NodeHeartbeat | null {
  const hb = v as Partial<NodeHeartbeat> | null
  return hb !== null && typeof hb === 'object' && typeof hb.id === 'string' && typeof hb.boot === 'string' && typeof hb.lastHeartbeat === 'string'
    ? hb as NodeHeartbeat : null
}
