// The life of MQTT sessions around their connections: opened or resumed at CONNECT, given their Will and expiry when
// the connection ends, ended (routes removed, state dropped) at expiry, at a clean start or by an operator, and taken
// up again from the store after a restart. Delayed Wills (./wills.ts) and expiries (./keyed-timers.ts) wait here.
import type { Message, Session, SessionStore, Will } from '../contracts/state.ts'
import type { Logger } from '../contracts/logger.ts'
import { NEVER_EXPIRES, newSession } from './session.ts'
import type { Router } from './router.ts'
import { KeyedTimers } from './keyed-timers.ts'
import { Wills } from './wills.ts'

export interface LifecycleHost {
  readonly sessions: SessionStore
  readonly router: Router
  readonly logger: Logger | undefined
  /** is a connection of this client id registered? */
  isOnline(clientId: string): boolean
  /** route a Will */
  publish(m: Message): void
}

export class SessionLifecycle {
  readonly #host: LifecycleHost
  /** Wills: published at once or after their delay [MQTT-3.1.3-9] */
  readonly #wills: Wills
  /** sessions waiting for their expiry after their connection ended, by client id */
  readonly #expiries: KeyedTimers<Session>
  #closing = false

  constructor(host: LifecycleHost) {
    this.#host = host
    this.#wills = new Wills((m, clientId) => this.#willSent(m, clientId), (err, clientId) =>
      host.logger?.error({ err, clientId }, 'publishing a delayed Will failed'))
    this.#expiries = new KeyedTimers<Session>(
      (clientId, session) => {
        if (!host.isOnline(clientId) && host.sessions.get(clientId) === session) this.end(session)
      },
      (err, clientId) => host.logger?.error({ err, clientId }, 'ending an expired session failed'),
    )
  }

  /**
   * Take up the sessions a store kept from before this process (after a restart or a crash): their subscriptions
   * route again, their expiry keeps counting from when their connection ended, and the Will of a connection that
   * ended without DISCONNECT (a crash ends every connection so) is published when its delay is over [MQTT-3.1.2-8].
   */
  restore(now: number): { sessions: number; wills: number } {
    return this.restoreSessions([...this.#host.sessions.all()], now)
  }

  /** restore() for the given sessions, held by the store (a dead node's, in cluster mode); `now`: when they ended. */
  restoreSessions(restored: Session[], now: number): { sessions: number; wills: number } {
    const { router } = this.#host
    for (const session of restored) {
      session.disconnectedAt ??= now
      for (const sub of session.subscriptions.values()) router.add(sub)
    }
    let wills = 0
    for (const session of restored) {
      // (the subscriptions of every session route before any Will is published)
      if (session.will !== null) {
        wills++
        const delaySec = Math.min(session.will.delaySec, session.expiryIntervalSec)
        this.#wills.scheduleAt(session.clientId, session.will, session.disconnectedAt! + delaySec * 1000)
      }
      if (session.expiryIntervalSec === 0) this.end(session)
      else if (session.expiryIntervalSec !== NEVER_EXPIRES) this.#scheduleExpiry(session)
    }
    return { sessions: restored.length, wills }
  }

  /**
   * The MQTT session for a CONNECT: a new connection for a client id cancels its delayed Will and its pending
   * expiry; clean start discards the old state [MQTT-3.1.2-4]; otherwise it is resumed [MQTT-3.1.2-5].
   */
  open(clientId: string, cleanStart: boolean, expiryIntervalSec: number, will: Will | null): { session: Session; present: boolean } {
    const sessions = this.#host.sessions
    const fetched = sessions.forget !== undefined ? sessions.get(clientId) : undefined
    // a clustered store may just have fetched it from another node: its subscriptions route here now (adding one
    // already routed replaces it), and the Will its last connection left (it ended without DISCONNECT, perhaps in a
    // crash nobody took up yet) goes out now or after its delay, unless this connection cancels it just below
    if (fetched !== undefined) {
      for (const sub of fetched.subscriptions.values()) this.#host.router.add(sub)
      if (fetched.will !== null && fetched.disconnectedAt !== null) {
        this.#wills.scheduleAt(clientId, fetched.will, fetched.disconnectedAt + Math.min(fetched.will.delaySec, fetched.expiryIntervalSec) * 1000)
      }
    }
    // clean start ends the old session, and a session's end sends its pending Will [MQTT-3.1.3-9]
    this.#wills.cancel(clientId, cleanStart)
    this.#expiries.delete(clientId)
    let session = sessions.get(clientId)
    if (session !== undefined && cleanStart) {
      this.end(session)
      session = undefined
    }
    const present = session !== undefined
    if (session === undefined) {
      session = newSession(clientId, expiryIntervalSec)
      sessions.set(session)
    }
    session.expiryIntervalSec = expiryIntervalSec
    session.disconnectedAt = null
    session.will = will
    sessions.savedSession(session)
    return { session, present }
  }

  /** The session's connection ended: its Will (unless `publishWill` is false) and its expiry start now. */
  connectionEnded(session: Session, publishWill: boolean): void {
    const { sessions } = this.#host
    const clientId = session.clientId
    if (sessions.get(clientId) !== session) {
      // taken over by a clean start, or deleted by an operator: this session is over, only its Will is left
      if (publishWill && session.will !== null && !this.#closing) this.#wills.schedule(clientId, session.will, 0)
      return
    }
    if (session.disconnectedAt !== null) return
    session.disconnectedAt = Date.now()
    if (!publishWill || this.#closing) session.will = null // a normal DISCONNECT or a shutdown discards it
    sessions.savedSession(session)
    // (after the note: publishing a Will at once clears it and notes that)
    if (session.will !== null) this.#wills.schedule(clientId, session.will, session.expiryIntervalSec)
    if (session.expiryIntervalSec === 0) this.end(session)
    else if (session.expiryIntervalSec !== NEVER_EXPIRES && !this.#closing) this.#scheduleExpiry(session)
  }

  /** An operator ends a session: no Will, no expiry; whether there was one. */
  delete(clientId: string): boolean {
    this.#wills.cancel(clientId)
    this.#expiries.delete(clientId)
    const session = this.#host.sessions.get(clientId)
    if (session === undefined) return false
    this.end(session)
    return true
  }

  /**
   * Cluster mode: another node holds the session now. Its Will delay and expiry stop here, its routes leave, and the
   * store writes its last changes and drops it from memory (not from the store).
   */
  async release(clientId: string, write = true): Promise<void> {
    const { sessions, router } = this.#host
    // a take-up still reading kept messages for it (they reach it by its routes) finishes first, Wills included
    if (write) await sessions.settled?.(clientId)
    this.#wills.cancel(clientId)
    this.#expiries.delete(clientId)
    const session = sessions.get(clientId)
    if (session !== undefined) {
      // (its record written now: the new node reads again what was published from this moment on)
      if (write) sessions.savedSession(session)
      for (const filter of session.subscriptions.keys()) router.remove(clientId, filter)
    }
    if (write) await sessions.forget?.(clientId)
    else sessions.discard?.(clientId)
  }

  /** When an offline session ends unless its client comes back (epoch ms); null when online or never. */
  expiresAt(session: Session): number | null {
    if (session.disconnectedAt === null || this.#host.isOnline(session.clientId)) return null
    if (session.expiryIntervalSec === NEVER_EXPIRES) return null
    return session.disconnectedAt + session.expiryIntervalSec * 1000
  }

  /** Shutdown: delayed Wills and expiries stop here and go on from the session store after a restart. */
  close(): void {
    this.#closing = true
    this.#wills.clear()
    this.#expiries.clear()
  }

  /** The session is over: its subscriptions leave the router and its state is dropped. */
  end(session: Session): void {
    const { sessions, router } = this.#host
    for (const filter of session.subscriptions.keys()) router.remove(session.clientId, filter)
    session.subscriptions.clear()
    if (sessions.get(session.clientId) === session) sessions.delete(session.clientId)
  }

  #scheduleExpiry(session: Session): void {
    this.#expiries.set(session.clientId, session.disconnectedAt! + session.expiryIntervalSec * 1000, session)
  }

  /** A Will went out: the session (if it is still there) no longer waits to send it. */
  #willSent(m: Message, clientId: string): void {
    const { sessions } = this.#host
    const session = sessions.get(clientId)
    if (session !== undefined && session.disconnectedAt !== null && session.will !== null) {
      session.will = null
      sessions.savedSession(session)
    }
    this.#host.publish(m)
  }
}
