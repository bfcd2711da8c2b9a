// Sessions that change node without their old node's help: a dead node's, taken up by a survivor, and a session a
// client took from a living node (whose routes left the old node before the new one routed them). In both, what was
// published in between is read again from the kept QoS 1/2 messages (./replay.ts), from when each session was last
// written (less 100 ms: a message routed while that batch was being written) up to the moment this node routes it,
// and given to each session that matches it and does not hold it already (queued or in flight, by its cluster id).
import type { ClusterPeer } from '../contracts/cluster.ts'
import type { Logger } from '../contracts/logger.ts'
import type { Session } from '../contracts/state.ts'
import type { ClusterBuckets } from './buckets.ts'
import type { NatsBus } from './bus.ts'
import type { NodeHeartbeat } from './nodes.ts'
import type { OwnedSessionStore } from './owned-sessions.ts'
import { TakenElsewhereError, type Ownership } from './ownership.ts'
import { keptEnd, KEPT_FOR_MS, replayKept } from './replay.ts'

/** client ids claimed and read at a time when a dead node is taken up */
const TAKE_UP_CONCURRENCY = 64
/** a batch of the session store is written a little after its notes: messages routed meanwhile are read again */
const WRITE_SLACK_MS = 100

export interface TakeUpOptions {
  clusterName: string
  buckets: ClusterBuckets
  bus: NatsBus
  ownership: Ownership
  sessions: OwnedSessionStore
  /** the broker (made after this) */
  peer(): ClusterPeer
  logger?: Logger
}

export class TakeUp {
  readonly #o: TakeUpOptions

  constructor(opts: TakeUpOptions) {
    this.#o = opts
  }

  /**
   * A dead node's sessions (or this node's previous boot's): each client id it still owns is claimed, its session
   * read and taken up here, then the kept messages read again for them. Rejects when some could not be taken (the
   * caller tries again; those taken stay taken).
   */
  async deadNode(dead: NodeHeartbeat): Promise<void> {
    const { ownership, sessions, logger } = this.#o
    const endedAt = Date.parse(dead.lastHeartbeat)
    const ids = await ownership.heldBy(dead.id)
    const total = { sessions: 0, wills: 0, failed: 0 }
    const taken: string[] = []
    // a client that comes back on another node during the take-up gets its session once the kept messages were read
    let settled!: () => void
    const done = new Promise<void>((r) => { settled = r })
    let replayed = 0
    try {
      for (let i = 0; i < ids.length; i += TAKE_UP_CONCURRENCY) {
        const batch = await Promise.all(ids.slice(i, i + TAKE_UP_CONCURRENCY).map(async (clientId): Promise<Session | undefined> => {
          try {
            if (!(await ownership.claimOrphan(clientId, dead.id, dead.boot))) return undefined
            sessions.hold(clientId, done)
            const session = await sessions.adopt(clientId, endedAt)
            // a client that came back on another node meanwhile took it from this one: it is that node's
            ownership.check(clientId)
            if (session === undefined) await ownership.drop(clientId)
            return session
          } catch (err) {
            ownership.abandon(clientId)
            // (a client back on another node won it: nothing failed)
            if (err instanceof TakenElsewhereError) return undefined
            total.failed++
            logger?.warn({ err, clientId, node: dead.id }, `the session of "${clientId}" could not be taken up`)
            return undefined
          }
        }))
        // (only those still held here: a release may have come between the read and now)
        const held = batch.filter((s): s is Session => s !== undefined && sessions.get(s.clientId) === s)
        const r = this.#o.peer().adoptSessions(held, endedAt)
        total.sessions += r.sessions
        total.wills += r.wills
        for (const s of held) taken.push(s.clientId)
      }
      replayed = await this.#replay(taken)
    } finally {
      settled()
    }
    logger?.warn({ node: dead.id, ...total, replayed },
      `took up ${total.sessions} sessions of node ${dead.id} (${total.wills} with a Will; ${replayed} kept messages read again for them)`)
    if (total.failed > 0) throw new Error(`${total.failed} sessions of node ${dead.id} could not be taken up`)
  }

  /** A session this node took from a living node (its CONNECT has just routed it here). */
  async moved(clientId: string): Promise<void> {
    const replayed = await this.#replay([clientId])
    if (replayed > 0) this.#o.logger?.debug({ clientId, replayed }, 'kept messages read again for a session taken from another node')
  }

  /** Read the kept messages again for the sessions of `clientIds` held here; how many messages were read. */
  async #replay(clientIds: string[]): Promise<number> {
    const { sessions, buckets, clusterName, bus } = this.#o
    const since: [string, number][] = []
    const held = new Map<string, Set<string>>()
    for (const clientId of clientIds) {
      const s = sessions.get(clientId)
      const at = sessions.lastWrittenAt(clientId)
      if (s === undefined || at === undefined || s.expiryIntervalSec === 0) continue
      since.push([clientId, at - WRITE_SLACK_MS])
      const ids = new Set<string>()
      for (const e of s.queue ?? []) if (e.message.id !== undefined) ids.add(e.message.id)
      for (const e of s.inflight?.values() ?? []) if (e.message.id !== undefined) ids.add(e.message.id)
      held.set(clientId, ids)
    }
    if (since.length === 0) return 0
    // the end: the last kept message once this node's subscriptions are in force (later ones come live)
    await bus.flush()
    const end = await keptEnd(buckets.jsm, clusterName)
    since.sort((x, y) => x[1] - y[1])
    const from = Math.max(since[0][1], Date.now() - KEPT_FOR_MS)
    const eligible = new Set<string>()
    let next = 0
    const peer = this.#o.peer()
    return replayKept(buckets.js, clusterName, from, end, (m, at) => {
      while (next < since.length && since[next][1] <= at) eligible.add(since[next++][0])
      if (eligible.size > 0) peer.redeliver(m, (c) => eligible.has(c) && (m.id === undefined || !held.get(c)!.has(m.id)))
    }, this.#o.logger)
  }
}
