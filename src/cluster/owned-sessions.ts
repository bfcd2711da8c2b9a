// The session store of a cluster node: the JetStream store (./sessions.ts) with client-id ownership (./ownership.ts).
// A session not held here is read only after this node owns its client id (the node that held it has released it);
// a claim that another node overtook while the session was being read fails that CONNECT; a session that ends gives
// its client id up.
import type { Session } from '../contracts/state.ts'
import type { ClusterBuckets } from './buckets.ts'
import { RELEASE_TIMEOUT_MS, type Ownership } from './ownership.ts'
import { JetStreamSessionStore, type JetStreamSessionOptions } from './sessions.ts'

export class OwnedSessionStore extends JetStreamSessionStore {
  readonly #ownership: Ownership

  readonly #onMoved: ((clientId: string) => void) | undefined
  /** sessions a take-up is still reading kept messages for: released to another node only after that */
  readonly #holds = new Map<string, Promise<unknown>>()

  /**
   * `onMoved(clientId)`: a session was just taken from another node (called once its CONNECT has it, before the
   * CONNACK); `forgetTimeoutMs` (default 2,500) stays below the time a claimer waits for a release.
   */
  constructor(buckets: ClusterBuckets, ownership: Ownership,
    opts: Omit<JetStreamSessionOptions, 'beforeResume'> & { onMoved?: (clientId: string) => void } = {}) {
    super(buckets, {
      forgetTimeoutMs: RELEASE_TIMEOUT_MS - 500, ...opts,
      beforeResume: (clientId) => ownership.claim(clientId),
      beforeWrite: () => ownership.settled(),
    })
    this.#ownership = ownership
    this.#onMoved = opts.onMoved
  }

  /** Released to another node: written, then dropped; if it cannot be written in time, dropped anyway (the new owner goes on from what the store has, and no second writer stays). */
  /** Keep the session of `clientId` here (a release waits) until `until` settles. */
  hold(clientId: string, until: Promise<unknown>): void {
    this.#holds.set(clientId, until)
    const done = () => {
      if (this.#holds.get(clientId) === until) this.#holds.delete(clientId)
    }
    until.then(done, done)
  }

  async settled(clientId: string): Promise<void> {
    await this.#holds.get(clientId)?.catch(() => {})
  }

  override async forget(clientId: string): Promise<void> {
    // (a dead node's session being taken up here: the kept messages it missed are read first, so the node it goes to
    // gets them with its queue)
    await this.settled(clientId)
    try {
      await super.forget(clientId)
    } catch (err) {
      this.discard(clientId)
      throw err
    }
  }

  override resume(clientId: string): Session | undefined | Promise<Session | undefined> {
    const r = super.resume(clientId)
    if (!(r instanceof Promise)) return r
    return r.then(async (session) => {
      try {
        this.#ownership.check(clientId)
      } catch (err) {
        // the other node has it now: what was read goes
        this.discard(clientId)
        throw err
      }
      // taken from another node: what was published while neither node routed it is read again
      if (session !== undefined && this.#ownership.takeMoved(clientId)) this.#onMoved?.(clientId)
      return session
    }, (err: unknown) => {
      this.#ownership.abandon(clientId)
      throw err
    })
  }

  override delete(clientId: string): void {
    super.delete(clientId)
    // (a clean start ends the old session and opens a new one at once: the client id is still this node's then)
    setImmediate(() => {
      if (this.get(clientId) === undefined) void this.#ownership.drop(clientId)
    })
  }
}
