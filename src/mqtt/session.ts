// The in-memory SessionStore: the MQTT sessions this process holds, as the working Session objects themselves. The
// change notes (saved*/dropped*) have nothing to do here: a durable store (src/state/) writes them behind. The shapes
// and the interface are in src/contracts/state.ts; one client connection is a Connection (./connection.ts).
import type { Session, SessionEntry, SessionStore } from '../contracts/state.ts'

export { NEVER_EXPIRES, newSession } from '../contracts/state.ts'
export type { Outgoing, Queued, Session, SessionEntry, SessionStore } from '../contracts/state.ts'

export class MemorySessionStore implements SessionStore {
  readonly #byClient = new Map<string, Session>()

  get size(): number {
    return this.#byClient.size
  }

  get(clientId: string): Session | undefined {
    return this.#byClient.get(clientId)
  }

  resume(clientId: string): Session | undefined | Promise<Session | undefined> {
    return this.#byClient.get(clientId)
  }

  set(session: Session): void {
    this.#byClient.set(session.clientId, session)
  }

  delete(clientId: string): void {
    this.#byClient.delete(clientId)
  }

  all(): IterableIterator<Session> {
    return this.#byClient.values()
  }

  savedSession(_session: Session): void {}
  savedSubscription(_session: Session, _filter: string): void {}
  savedEntry(_session: Session, _entry: SessionEntry): void {}
  droppedEntry(_session: Session, _entry: SessionEntry): void {}

  flush(): Promise<void> {
    return Promise.resolve()
  }
}
