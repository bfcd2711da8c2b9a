// The session store of a cluster node: the JetStream store (./sessions.ts) with client-id ownership (./ownership.ts).
// A session not held here is read only after this node owns its client id (the node that held it has released it);
// a claim that another node overtook while the session was being read fails that CONNECT; a session that ends gives
// its client id up.
import type { Session } from '../contracts/state.ts'
import type { ClusterBuckets } from './buckets.ts'
import type { Ownership } from './ownership.ts'
import { JetStreamSessionStore, type JetStreamSessionOptions } from './sessions.ts'

export class OwnedSessionStore extends JetStreamSessionStore {
  readonly #ownership: Ownership

  constructor(buckets: ClusterBuckets, ownership: Ownership, opts: Omit<JetStreamSessionOptions, 'beforeResume'> = {}) {
    super(buckets, { ...opts, beforeResume: (clientId) => ownership.claim(clientId) })
    this.#ownership = ownership
  }

  override resume(clientId: string): Session | undefined | Promise<Session | undefined> {
    const r = super.resume(clientId)
    if (!(r instanceof Promise)) return r
    return r.then(async (session) => {
      try {
        this.#ownership.check(clientId)
      } catch (err) {
        // the other node has it now: what was read goes
        await this.forget(clientId).catch(() => {})
        throw err
      }
      return session
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
