// The nodes of a cluster: each writes a heartbeat (what GET /api/nodes shows) to a JetStream KV bucket every second.
// A node whose heartbeat is older than DEAD_AFTER_MS is dead; one survivor, chosen by a compare-and-set on a marker
// key, takes up its sessions (their Wills are published, their subscriptions route on the survivor, their queued
// messages wait there for their clients) and removes it from the list.
import type { KV } from '@nats-io/kv'
import type { Logger } from '../contracts/logger.ts'
import { keyToken } from './ownership.ts'

export const HEARTBEAT_MS = 1000
/** a node silent this long is dead: its sessions' Wills go out within about this plus one heartbeat */
export const DEAD_AFTER_MS = 3000

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
}

export interface NodeView extends NodeHeartbeat {
  alive: boolean
  self: boolean
}

export interface NodesOptions {
  nodeId: string
  boot: string
  logger?: Logger
  /** this node's heartbeat fields, read at each beat */
  describe(): Omit<NodeHeartbeat, 'id' | 'lastHeartbeat' | 'boot'>
  /** one survivor takes up a dead node's sessions (resolves when done) */
  takeUp(dead: NodeHeartbeat): Promise<void>
}

export class Nodes {
  readonly #kv: KV
  readonly #o: NodesOptions
  /** the last heartbeat read of each node */
  readonly #seen = new Map<string, NodeHeartbeat>()
  #timer: NodeJS.Timeout | null = null
  #beating: Promise<void> | null = null

  constructor(kv: KV, opts: NodesOptions) {
    this.#kv = kv
    this.#o = opts
  }

  /** Write the first heartbeat and read the others, then beat every HEARTBEAT_MS. */
  async start(): Promise<void> {
    await this.#beat()
    this.#timer = setInterval(() => {
      if (this.#beating === null) this.#beating = this.#beat().catch((err: unknown) => {
        this.#o.logger?.warn({ err }, 'the cluster heartbeat could not be written or read')
      }).finally(() => { this.#beating = null })
    }, HEARTBEAT_MS)
    this.#timer.unref()
  }

  /** Stop beating and leave the list (a graceful stop: nothing to take up). */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.#beating
    await this.#kv.delete(`n.${keyToken(this.#o.nodeId)}`).catch(() => {})
  }

  /** Is `nodeId` alive by its last heartbeat read? An unknown node is taken as alive (it may have just started). */
  isAlive(nodeId: string, now = Date.now()): boolean {
    const hb = this.#seen.get(nodeId)
    return hb === undefined || now - Date.parse(hb.lastHeartbeat) < DEAD_AFTER_MS
  }

  /** Every node of the cluster, as the bucket says now. */
  async list(now = Date.now()): Promise<NodeView[]> {
    await this.#read()
    return [...this.#seen.values()]
      .map((hb) => ({ ...hb, alive: now - Date.parse(hb.lastHeartbeat) < DEAD_AFTER_MS, self: hb.id === this.#o.nodeId }))
      .sort((a, b) => a.id.localeCompare(b.id))
  }

  async #beat(): Promise<void> {
    const hb: NodeHeartbeat = { ...this.#o.describe(), id: this.#o.nodeId, lastHeartbeat: new Date().toISOString(), boot: this.#o.boot }
    await this.#kv.put(`n.${keyToken(this.#o.nodeId)}`, JSON.stringify(hb))
    await this.#read()
    const now = Date.now()
    for (const other of this.#seen.values()) {
      if (other.id !== this.#o.nodeId && now - Date.parse(other.lastHeartbeat) >= DEAD_AFTER_MS) await this.#reap(other)
    }
  }

  async #read(): Promise<void> {
    const keys = await this.#kv.keys('n.>')
    const seen = new Map<string, NodeHeartbeat>()
    for await (const k of keys) {
      const e = await this.#kv.get(k)
      if (e === null || e.operation !== 'PUT') continue
      try {
        const hb = e.json<NodeHeartbeat>()
        seen.set(hb.id, hb)
      } catch {
        // a record of another build: skipped
      }
    }
    this.#seen.clear()
    for (const [id, hb] of seen) this.#seen.set(id, hb)
  }

  /** One survivor (the first to create the marker of this boot of the dead node) takes up its sessions. */
  async #reap(dead: NodeHeartbeat): Promise<void> {
    try {
      await this.#kv.create(`reap.${keyToken(dead.id)}.${keyToken(dead.boot)}`, this.#o.nodeId)
    } catch {
      return // another survivor is on it
    }
    this.#o.logger?.warn({ node: dead.id, lastHeartbeat: dead.lastHeartbeat },
      `node ${dead.id} has sent no heartbeat since ${dead.lastHeartbeat}: taking up its sessions`)
    try {
      await this.#o.takeUp(dead)
    } finally {
      // (only the record of that boot: a node that came back meanwhile wrote a newer one)
      const e = await this.#kv.get(`n.${keyToken(dead.id)}`)
      if (e !== null && e.operation === 'PUT' && e.json<NodeHeartbeat>().boot === dead.boot) {
        await this.#kv.delete(`n.${keyToken(dead.id)}`, { previousSeq: e.revision }).catch(() => {})
      }
      this.#seen.delete(dead.id)
    }
  }
}
