// Client-id ownership across the cluster: the same client id connecting on two nodes at once ends with exactly one
// connection. The owner of each client id is one key of a JetStream KV bucket, changed only by compare-and-set
// (`update(key, value, revision)`); never a broadcast race. A node that takes a client id from a living node asks it,
// over NATS request/reply, to release the session (its connection is taken over, v5 DISCONNECT 0x8E, and its last
// changes are written) before reading the session from the shared store. A second index key per (node, client id)
// lets a survivor find the sessions of a dead node.
// The old owner is always asked, whatever its heartbeat looks like (a JetStream stall makes every heartbeat old while
// the nodes still serve): a dead node has no subscriber left, and NATS says so at once. A request lost while the old
// owner's NATS connection was down is made good by verify(): once back, a node gives up each client id whose owner
// key names another node now, writing nothing.
import { errors, type NatsConnection } from '@nats-io/transport-node'
import type { KV, KvEntry } from '@nats-io/kv'
import type { ClusterPeer } from '../contracts/cluster.ts'
import type { Logger } from '../contracts/logger.ts'

import { decodeToken, encodeToken as keyToken } from './keys.ts'

export { keyToken }

/** How long a node waits for the old owner to release a session before it goes on without it. */
export const RELEASE_TIMEOUT_MS = 3000
/** compare-and-set attempts lost to other nodes before a CONNECT gives up */
const CLAIM_ATTEMPTS = 8
/** how long a claim keeps trying while JetStream cannot write (a leader election after a NATS server died) */
const CLAIM_TIMEOUT_MS = 8000
/** how long verify() keeps reading keys it could not read, and session writes wait for it at most */
const VERIFY_TIMEOUT_MS = 30_000
/** owner keys read at once by verify() */
const VERIFY_BATCH = 64

/** NATS's answer to a request nobody subscribes to (the node is gone). */
const isNoResponders = (err: unknown): boolean => err instanceof errors.RequestError && err.isNoResponders()

/** JetStream's answer to a compare-and-set that lost: the key changed since it was read. */
const isWrongSequence = (err: unknown): boolean => /wrong last sequence|key exists/i.test(String((err as Error)?.message ?? err))

/** Thrown into a CONNECT whose client id another node took while it was being served. */
export class TakenElsewhereError extends Error {
  readonly code = 'ERR_CLIENT_ID_TAKEN_ELSEWHERE'
}

export interface OwnershipOptions {
  nodeId: string
  /** this start of the node: an owner key names node and boot, so a restarted node tells its old keys apart */
  boot: string
  clusterName: string
  logger?: Logger
}

export class Ownership {
  readonly #nc: NatsConnection
  readonly #kv: KV
  readonly #o: OwnershipOptions
  /** the revision of the owner key this node wrote, per client id it holds */
  readonly #held = new Map<string, number>()
  /** client ids taken by another node while this node was still claiming them */
  readonly #lost = new Set<string>()
  /** client ids being claimed now, or whose session is being read after the claim (until check()) */
  readonly #claiming = new Set<string>()
  /** client ids whose last claim took the session from another node (read by takeMoved) */
  readonly #moved = new Set<string>()
  #peer: ClusterPeer | null = null
  /** set while the NATS connection was lost and verify() has not finished since (session writes wait on it) */
  #gate: { promise: Promise<void>; resolve(): void } | null = null
  /** NATS connections lost so far (a verify() lifts the gate only if none was lost while it ran) */
  #losses = 0
  /** how many claims took a session from another node that answered */
  takeovers = 0
  /** client ids this node gave up when it found another node's owner key on them (verify) */
  lostFound = 0

  constructor(nc: NatsConnection, kv: KV, opts: OwnershipOptions) {
    this.#nc = nc
    this.#kv = kv
    this.#o = opts
  }

  static releaseSubject(clusterName: string, nodeId: string): string {
    return `${clusterName}.node.${keyToken(nodeId)}.release`
  }

  /** Start answering release requests of other nodes. */
  attach(peer: ClusterPeer): void {
    this.#peer = peer
    this.#nc.subscribe(Ownership.releaseSubject(this.#o.clusterName, this.#o.nodeId), {
      callback: (err, msg) => {
        if (err !== null) return
        let req: { clientId: string; by: string }
        try {
          req = JSON.parse(new TextDecoder().decode(msg.data)) as { clientId: string; by: string }
        } catch {
          return
        }
        // (respond throws once the connection closes: a release answered during shutdown must not end the process)
        const reply = (ok: boolean) => {
          try {
            msg.respond(new TextEncoder().encode(`{"ok":${ok}}`))
          } catch {
            // the asking node goes on after its timeout
          }
        }
        this.#release(req.clientId, req.by).then(() => reply(true), (e: unknown) => {
          this.#o.logger?.error({ err: e, clientId: req.clientId }, 'releasing a session to another node failed')
          reply(false)
        })
      },
    })
  }

  /**
   * Make this node the owner of `clientId` (compare-and-set); when another living node held it, wait until it has
   * released the session. Resolves when the shared store holds the session's last state.
   */
  async claim(clientId: string): Promise<void> {
    // (until check(): a release that comes while the session is read makes check() fail)
    this.#claiming.add(clientId)
    try {
      await this.#claim(clientId)
    } catch (err) {
      this.#claiming.delete(clientId)
      throw err
    }
  }

  async #claim(clientId: string): Promise<void> {
    const key = `c.${keyToken(clientId)}`
    const me = this.#me()
    this.#lost.delete(clientId)
    this.#moved.delete(clientId)
    let lastError: unknown = null
    const deadline = Date.now() + CLAIM_TIMEOUT_MS
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const entry = await this.#kv.get(key)
      const prev = entry !== null && entry.operation === 'PUT' ? (entry.json<{ node: string }>()).node : null
      let revision: number
      try {
        revision = entry === null || entry.operation !== 'PUT'
          ? await this.#kv.create(key, me)
          : await this.#kv.update(key, me, entry.revision)
      } catch (err) {
        lastError = err
        // another node wrote the key between the read and the write: read again; JetStream without a leader for a
        // moment (a NATS server went away, its streams elect another): again a little later, for a few seconds
        if (!isWrongSequence(err)) {
          if (Date.now() > deadline) break
          await new Promise((r) => setTimeout(r, Math.min(1000, 100 * (attempt + 1))))
          attempt = Math.min(attempt, CLAIM_ATTEMPTS - 2)
        }
        continue
      }
      this.#held.set(clientId, revision)
      // (the value is the client id: a very long one is hashed in the key)
      await this.#kv.put(`n.${keyToken(this.#o.nodeId)}.${keyToken(clientId)}`, clientId)
      if (prev !== null && prev !== this.#o.nodeId) {
        // (what was published while neither node routed it is read again, from the old owner's last write)
        this.#moved.add(clientId)
        if (await this.#askRelease(prev, clientId)) this.takeovers++
        await this.#kv.delete(`n.${keyToken(prev)}.${keyToken(clientId)}`).catch(() => {})
      }
      return
    }
    throw new Error(isWrongSequence(lastError)
      ? `client id "${clientId}" is being claimed by other nodes at the same moment; try again`
      : `the owner of client id "${clientId}" could not be written (${String(lastError)})`)
  }

  /** Whether the last claim of `clientId` took its session from another node (asked once, then forgotten). */
  takeMoved(clientId: string): boolean {
    return this.#moved.delete(clientId)
  }

  /** After the session was read: throws when another node took the client id meanwhile (its claim came later). */
  check(clientId: string): void {
    this.#claiming.delete(clientId)
    if (this.#lost.delete(clientId)) {
      this.#moved.delete(clientId)
      throw new TakenElsewhereError(`client id "${clientId}" connected on another node meanwhile, which took its session`)
    }
  }

  /** The session of `clientId` ended here: the owner key goes, if it is still this node's. */
  async drop(clientId: string): Promise<void> {
    const revision = this.#held.get(clientId)
    this.#held.delete(clientId)
    if (revision === undefined) return
    await this.#kv.delete(`c.${keyToken(clientId)}`, { previousSeq: revision }).catch(() => {})
    await this.#kv.delete(`n.${keyToken(this.#o.nodeId)}.${keyToken(clientId)}`).catch(() => {})
  }

  /** The client ids the index says `nodeId` held (a dead node's, for a survivor to take up). */
  async heldBy(nodeId: string): Promise<string[]> {
    const prefix = `n.${keyToken(nodeId)}.`
    const out: string[] = []
    const keys = await this.#kv.keys(`${prefix}>`)
    for await (const k of keys) {
      const id = decodeToken(k.slice(prefix.length)) ?? (await this.#kv.get(k))?.string()
      if (id !== undefined) out.push(id)
    }
    return out
  }

  /**
   * A survivor takes a dead node's client id, only if the dead node still owns it (a client that came back on
   * another node meanwhile is left alone). Whether it did.
   */
  async claimOrphan(clientId: string, deadNode: string, deadBoot: string): Promise<boolean> {
    const key = `c.${keyToken(clientId)}`
    const entry = await this.#kv.get(key)
    const owner = entry !== null && entry.operation === 'PUT' ? entry.json<{ node: string; boot?: string }>() : null
    const index = `n.${keyToken(deadNode)}.${keyToken(clientId)}`
    // (the same node id may be this node, restarted: only the dead boot's keys are taken)
    if (owner === null || owner.node !== deadNode || (owner.boot !== undefined && owner.boot !== deadBoot)) {
      if (deadNode !== this.#o.nodeId) await this.#kv.delete(index).catch(() => {})
      return false
    }
    try {
      this.#held.set(clientId, await this.#kv.update(key, this.#me(), entry!.revision))
    } catch {
      return false // someone else took it at this moment
    }
    // (until check(), as for a claim: a client that comes back on another node while the session is read wins)
    this.#claiming.add(clientId)
    await this.#kv.put(`n.${keyToken(this.#o.nodeId)}.${keyToken(clientId)}`, clientId)
    if (deadNode !== this.#o.nodeId) await this.#kv.delete(index).catch(() => {})
    return true
  }

  /** A claim whose session read failed: nothing waits for check() any more. */
  abandon(clientId: string): void {
    this.#claiming.delete(clientId)
    this.#lost.delete(clientId)
    this.#moved.delete(clientId)
  }

  #me(): string {
    return JSON.stringify({ node: this.#o.nodeId, boot: this.#o.boot })
  }

  /** The owner of a client id, as the bucket says now. */
  async ownerOf(clientId: string): Promise<string | null> {
    const entry = await this.#kv.get(`c.${keyToken(clientId)}`)
    return entry !== null && entry.operation === 'PUT' ? entry.json<{ node: string }>().node : null
  }

  get held(): number {
    return this.#held.size
  }

  /** Whether `node` answered (a dead node has no subscriber: NATS tells at once). */
  async #askRelease(node: string, clientId: string): Promise<boolean> {
    const body = new TextEncoder().encode(JSON.stringify({ clientId, by: this.#o.nodeId }))
    try {
      await this.#nc.request(Ownership.releaseSubject(this.#o.clusterName, node), body, { timeout: RELEASE_TIMEOUT_MS })
      return true
    } catch (err) {
      // dead or stuck: its last changes written behind are in the store; what it wrote after is lost with it (a
      // living node that missed the request gives the client id up when it checks its keys: verify())
      if (!isNoResponders(err)) {
        this.#o.logger?.warn({ err, clientId, node }, `node ${node} did not release the session of "${clientId}" in ${RELEASE_TIMEOUT_MS} ms; going on without it`)
      }
      return false
    }
  }

  /** This node's NATS connection was lost: session writes wait (settled()) until verify() has run after it. */
  suspend(): void {
    this.#losses++
    if (this.#gate !== null) return
    let resolve!: () => void
    const promise = new Promise<void>((r) => { resolve = r })
    this.#gate = { promise, resolve }
  }

  /**
   * Resolves when no check of the held client ids is due (at once, unless the NATS connection was lost and verify()
   * has not yet finished since), or after VERIFY_TIMEOUT_MS at most.
   */
  settled(): Promise<void> {
    if (this.#gate === null) return Promise.resolve()
    return Promise.race([this.#gate.promise, new Promise<void>((r) => setTimeout(r, VERIFY_TIMEOUT_MS).unref())])
  }

  /**
   * Give up every client id held here whose owner key names another node or boot now, or is gone: another node took
   * it while its release request could not reach this one (this node's NATS connection was down, the request was
   * lost, or this node's subscription had not yet reached that node's NATS server). Its connection is taken over and
   * its session dropped here without writing (the other node writes it now). Run when this node's NATS connection
   * comes back, and again a little later. Keys that cannot be read (JetStream still electing) are read again each
   * second for up to VERIFY_TIMEOUT_MS. How many were given up.
   */
  async verify(): Promise<number> {
    let lost = 0
    const losses = this.#losses
    let pending = [...this.#held.keys()]
    const deadline = Date.now() + VERIFY_TIMEOUT_MS
    try {
      while (pending.length > 0) {
        const unread: string[] = []
        for (let i = 0; i < pending.length; i += VERIFY_BATCH) {
          await Promise.all(pending.slice(i, i + VERIFY_BATCH).map(async (clientId) => {
            const revision = this.#held.get(clientId)
            // (a claim under way settles itself: check() fails it if another node won)
            if (revision === undefined || this.#claiming.has(clientId)) return
            let entry: KvEntry | null
            try {
              entry = await this.#kv.get(`c.${keyToken(clientId)}`)
            } catch {
              unread.push(clientId)
              return
            }
            const owner = entry !== null && entry.operation === 'PUT' ? entry.json<{ node: string; boot?: string }>() : null
            if (owner !== null && (entry!.revision === revision || (owner.node === this.#o.nodeId && owner.boot === this.#o.boot))) return
            if (this.#held.get(clientId) !== revision) return // claimed again, or released, meanwhile
            this.#held.delete(clientId)
            lost++
            this.lostFound++
            const by = owner?.node ?? 'another node'
            this.#o.logger?.warn({ clientId, node: owner?.node ?? null }, `client id "${clientId}" was taken by ${owner === null ? 'another node' : `node ${by}`} while this node could not hear it: its connection here is closed and its session left to that node`)
            await this.#letGo(clientId, by, false).catch((err: unknown) =>
              this.#o.logger?.error({ err, clientId }, 'giving up a client id another node took failed'))
          }))
        }
        if (unread.length === 0 || Date.now() > deadline) break
        pending = unread
        await new Promise((r) => setTimeout(r, 1000))
      }
    } finally {
      if (this.#losses === losses) {
        this.#gate?.resolve()
        this.#gate = null
      }
    }
    return lost
  }

  /** The session leaves this node (written first, unless `write` is false); its index key goes behind. */
  async #letGo(clientId: string, by: string, write: boolean): Promise<void> {
    void this.#kv.delete(`n.${keyToken(this.#o.nodeId)}.${keyToken(clientId)}`).catch(() => {})
    await this.#peer?.releaseSession(clientId, by, { write })
  }

  async #release(clientId: string, by: string): Promise<void> {
    if (by === this.#o.nodeId) return
    this.#held.delete(clientId)
    // a claim of this node still reading the session fails (the other node's came later and won)
    if (this.#claiming.has(clientId)) this.#lost.add(clientId)
    // (the release first: a stalled JetStream must not keep the connection open past the claimer's wait)
    await this.#letGo(clientId, by, true)
  }
}
