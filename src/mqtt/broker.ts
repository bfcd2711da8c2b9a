// The broker: the registry of connections and MQTT sessions, routing of published messages, retained messages, and
// the one entry point for hot settings; sessions around their connections (Wills, expiry, restore) live in
// ./lifecycle.ts. Transport-agnostic: an adapter hands it a Transport per connection and feeds the returned
// ConnectionInput; the broker plugin hands it settings and listens to its events.
import { EventEmitter } from 'node:events'
import type { SettingsSnapshot } from '../contracts/settings.ts'
import type { FailureEvent, FailureReason } from '../contracts/failure.ts'
import type { ConnectionInput, ConnectionMeta, LiveConnection, Transport, TransportKind } from '../contracts/connection.ts'
import type { Logger } from '../contracts/logger.ts'
import type { Authenticator, Authorizer } from '../contracts/access.ts'
import type { ClusterLink, ClusterPeer } from '../contracts/cluster.ts'
import type { BrokerEvents, BrokerStats } from './types.ts'
import { Stats } from './stats.ts'
import { Connection } from './connection.ts'
import { deliver, queueMessage } from './delivery.ts'
import { failureEvent } from './failure-event.ts'
import { MemoryRouter, type Match, type Router, type Subscription } from './router.ts'
import { InterestRouter } from './interest.ts'
import { MemoryRetainedStore, type RetainedStore } from './retained.ts'
import { MemorySessionStore, type Session, type SessionStore } from './session.ts'
import { ownPayload, type Message, type Will } from './message.ts'
import { isSysTopic } from './topics.ts'
import { SessionLifecycle } from './lifecycle.ts'
import { StallClock } from './stall.ts'
import { LogFold } from './log-fold.ts'
import { liveView } from './live.ts'
import { Fanout } from './outgoing.ts'
import { ProfileSet } from './profiles.ts'
import { SERVE_CONNECT_TIMEOUT_MS } from './limits.ts'

export interface BrokerOptions {
  settings: SettingsSnapshot
  logger?: Logger
  /** routing between sessions (default: in memory) */
  router?: Router
  /** retained messages (default: in memory) */
  retained?: RetainedStore
  /** session state of clients, online and offline (default: in memory) */
  sessions?: SessionStore
  /** who may connect (default: everyone, the username as sent is the identity) */
  authenticator?: Authenticator
  /**
   * a deadline gives back the time the broker itself was stalled (./stall.ts) and is judged only after what waited
   * to be read has been read (default: true); false: deadlines on the wall clock alone
   */
  stallCredit?: boolean
  /** how long the broker may take to serve a CONNECT that arrived whole (default SERVE_CONNECT_TIMEOUT_MS) */
  serveConnectTimeoutMs?: number
  /** what a client may publish and subscribe to (default: everything) */
  authorizer?: Authorizer
  /**
   * cluster mode: the other nodes. Messages routed here go to them too, the filters held here are announced, and a
   * shared subscription is served by one node of the cluster per message.
   */
  cluster?: ClusterLink
}

/** Without an authenticator: every client is accepted, and is who it says it is. */
const ACCEPT_ALL: Authenticator = { authenticate: (c) => ({ ok: true, username: c.username }) }
/** Without an authorizer: nothing is denied. */
const ALLOW_ALL: Authorizer = { version: 0, allowsEverything: true, allowed: () => true }

/** The broker's own `$SYS/` values are few and always kept. */
const NO_LIMIT = { maxMessages: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER }

/** The profiles' names and match conditions, in order: what decides which profile a connection is under. */
const matchesOf = (v: SettingsSnapshot['values']): string => JSON.stringify(v.profiles.map((p) => [p.name, p.match]))

const WARN_REASONS: ReadonlySet<FailureReason> = new Set(['protocol_error', 'packet_too_large', 'connect_rejected', 'websocket_error', 'auth_failed', 'tls_error'])

export class Broker extends EventEmitter<BrokerEvents> implements ClusterPeer {
  /** the global settings in force; a connection runs on its own `values` (these with its profile's overrides) */
  settings: SettingsSnapshot
  /** the timeout profiles of `settings`, compiled (./profiles.ts) */
  profiles: ProfileSet
  readonly logger: Logger | undefined
  readonly router: Router
  readonly retained: RetainedStore
  readonly sessions: SessionStore
  readonly authenticator: Authenticator
  readonly authorizer: Authorizer
  readonly stats: BrokerStats
  /** how long the broker itself was stalled (deadlines give that time back to clients; failure records show it) */
  readonly stall = new StallClock()
  /** BrokerOptions.stallCredit */
  readonly stallCredit: boolean
  /** BrokerOptions.serveConnectTimeoutMs */
  readonly serveConnectTimeoutMs: number
  /** BrokerOptions.cluster (null on one node) */
  readonly cluster: ClusterLink | null
  /** failure lines folded in floods (./log-fold.ts); null without a logger */
  readonly #logFold: LogFold | null

  /** every open connection, connected or not */
  readonly #open = new Set<Connection>()
  /** connections still waiting for their CONNECT, oldest first (bounded by maxPendingConnects) */
  readonly #awaiting = new Set<Connection>()
  /** connected clients by client id */
  readonly #clients = new Map<string, Connection>()
  /** sessions around their connections: open, Will and expiry at the end, restore after a restart */
  readonly #life: SessionLifecycle
  /** the broker's own `$SYS/` retained messages: current values for this process, never written to a store */
  readonly #sysRetained = new MemoryRetainedStore()
  /** the profile of each session's last connection: an offline session's queue is bounded by its values */
  readonly #sessionProfile = new WeakMap<Session, string | null>()
  /** connections with output waiting for the next flush */
  #dirty: Connection[] = []
  #flushScheduled = false
  #closing = false

  constructor(opts: BrokerOptions) {
    super()
    this.settings = opts.settings
    this.profiles = new ProfileSet(opts.settings.values)
    this.logger = opts.logger
    this.cluster = opts.cluster ?? null
    this.router = this.cluster === null
      ? opts.router ?? new MemoryRouter()
      : new InterestRouter(opts.router ?? new MemoryRouter({ sharedByCluster: true }), this.cluster)
    this.retained = opts.retained ?? new MemoryRetainedStore()
    this.sessions = opts.sessions ?? new MemorySessionStore()
    this.authenticator = opts.authenticator ?? ACCEPT_ALL
    this.authorizer = opts.authorizer ?? ALLOW_ALL
    this.stallCredit = opts.stallCredit ?? true
    this.serveConnectTimeoutMs = opts.serveConnectTimeoutMs ?? SERVE_CONNECT_TIMEOUT_MS
    this.#logFold = opts.logger === undefined ? null : new LogFold(opts.logger)
    this.stall.start()
    this.stats = new Stats(this.#open, this.#clients, this.router, this.retained, this.sessions)
    this.#life = new SessionLifecycle({
      sessions: this.sessions, router: this.router, logger: this.logger,
      isOnline: (clientId) => this.#clients.has(clientId), publish: (m) => this.publish(m),
    })
  }

  /**
   * Take up the sessions a store kept from before this process (after a restart or a crash): their subscriptions
   * route again, their expiry keeps counting from when their connection ended, and the Will of a connection that
   * ended without DISCONNECT (a crash ends every connection so) is published when its delay is over [MQTT-3.1.2-8].
   * Call once, before the first connection.
   */
  restore(now = Date.now()): { sessions: number; wills: number } {
    return this.#life.restore(now)
  }

  // ---- The outer contract ----

  /**
   * The one entry point for hot settings, with the scopes the README's settings table gives. Every open connection
   * resolves its timeout profile again and runs on its new values: a connection waiting for CONNECT gets its
   * connectTimeoutMs re-computed from its open time (past = closed now), a connected one its keepalive re-armed.
   */
  applySettings(next: SettingsSnapshot): void {
    // the same profiles matching the same way (only values changed): each connection keeps its profile by name,
    // without matching every connection's address and headers again
    const rematch = matchesOf(this.settings.values) !== matchesOf(next.values)
    this.settings = next
    this.profiles = new ProfileSet(next.values)
    for (const c of [...this.#open]) c.settingsChanged(rematch)
    this.#emitSafely('settingsApplied', next)
  }

  /** A new transport connection; the adapter feeds the returned input. */
  handleConnection(transport: Transport, meta: ConnectionMeta): ConnectionInput {
    const connection = new Connection(this, transport, meta)
    this.#open.add(connection)
    if (this.#closing) {
      connection.shutdown()
      return connection
    }
    this.#awaiting.add(connection)
    if (this.#awaiting.size > this.settings.values.maxPendingConnects) {
      // the one waiting longest makes room, so a flood of silent sockets never keeps a real client out
      const [oldest] = this.#awaiting
      oldest.evictWaiting()
    }
    return connection
  }

  /**
   * A transport's handshake that failed before the broker had a connection: an upgrade the WebSocket adapter refused
   * (`websocket_error`), a TLS handshake that failed or stalled (`tls_error`); phase `handshake`.
   */
  reportHandshakeFailure(meta: ConnectionMeta, reason: 'websocket_error' | 'tls_error', detail: string, hint: string): void {
    this.reportFailure(failureEvent(meta, this.settings.version, {
      profile: this.profiles.beforeConnect(meta).profile,
      reason,
      phase: 'handshake',
      clientId: null,
      username: null,
      protocolVersion: null,
      keepaliveSec: null,
      bytesReceived: 0,
      packetsReceived: 0,
      firstBytesHex: '',
      detail,
      hint,
      brokerLagMs: this.stall.recentLagMs,
    }))
  }

  /** Open connections (waiting for CONNECT or connected) per transport. */
  connectionsByTransport(): Record<TransportKind, number> {
    const counts: Record<TransportKind, number> = { ws: 0, wss: 0, tcp: 0, tls: 0 }
    for (const c of this.#open) counts[c.meta.transport]++
    return counts
  }

  connections(): LiveConnection[] {
    const out: LiveConnection[] = []
    for (const c of this.#clients.values()) out.push(liveView(c))
    return out
  }


  /**
   * Graceful: v5 clients get DISCONNECT 0x8B, the rest are closed; no failures, no Wills. Delayed Wills and session
   * expiries stop here and go on from the session store after a restart. Resolves when the store has written all.
   */
  async close(): Promise<void> {
    this.#closing = true
    this.stall.stop()
    this.#life.close()
    for (const c of [...this.#open]) c.shutdown()
    this.#flushAll()
    await this.sessions.flush()
    // last: failures reported while closing are in the window's summary
    this.#logFold?.flush()
  }

  /**
   * An operator ends a session (online or offline): its connection is closed (v5: DISCONNECT 0x98 Administrative
   * action; not a failure, no Will) and its state dropped. Whether there was one.
   */
  deleteSession(clientId: string): boolean {
    const c = this.#clients.get(clientId)
    c?.endByOperator()
    return this.#life.delete(clientId) || c !== undefined
  }

  /** When an offline session ends unless its client comes back (epoch ms); null when online or never. */
  sessionExpiresAt(session: Session): number | null {
    return this.#life.expiresAt(session)
  }

  /** Retained messages for a new subscription: the broker's `$SYS/` ones, or the store's. */
  retainedFor(filter: string, now: number): Message[] | Promise<Message[]> {
    return isSysTopic(filter) ? this.#sysRetained.match(filter, now) : this.retained.match(filter, now)
  }

  // ---- Used by connections and handlers ----

  /** The live connection of `clientId`, if any. */
  clientConnection(clientId: string): Connection | undefined {
    return this.#clients.get(clientId)
  }

  get clientCount(): number {
    return this.#clients.size
  }

  /** Its CONNECT has arrived whole: no longer one of the connections waiting for theirs (maxPendingConnects). */
  connectReceived(c: Connection): void {
    this.#awaiting.delete(c)
  }

  /** Register a connection that has just been accepted (after a take-over, if any). */
  register(c: Connection): void {
    this.#awaiting.delete(c)
    if (c.session !== null) this.#sessionProfile.set(c.session, c.profile)
    this.#clients.set(c.clientId!, c)
    this.stats.connectsTotal++
  }

  /** Emitted once the CONNACK is queued. */
  announceConnected(c: Connection, sessionPresent: boolean): void {
    this.logger?.debug({ clientId: c.clientId, protocolVersion: c.protocolVersion,
      keepaliveSec: c.keepaliveSec, remoteAddress: c.meta.remoteAddress, sessionPresent }, 'client connected')
    this.#emitSafely('connected', {
      clientId: c.clientId!,
      protocolVersion: c.protocolVersion,
      keepaliveSec: c.keepaliveSec,
      remoteAddress: c.meta.remoteAddress,
      connectLatencyMs: c.connectedAt - c.meta.openedAt,
      sessionPresent,
    })
  }

  /**
   * The MQTT session for a CONNECT: a new connection for a client id cancels its delayed Will and its pending
   * expiry; clean start discards the old state [MQTT-3.1.2-4]; otherwise it is resumed [MQTT-3.1.2-5].
   */
  openSession(clientId: string, cleanStart: boolean, expiryIntervalSec: number, will: Will | null): { session: Session; present: boolean } {
    return this.#life.open(clientId, cleanStart, expiryIntervalSec, will)
  }

  /**
   * Route a message to every matching subscription; retained ones update the retained store first. A retained
   * message for a new topic over maxRetainedMessages / maxRetainedBytes is not stored; when the publisher can be told
   * (`canRefuse`: v5 at QoS 1/2) it is not routed either and publish() returns false.
   */
  publish(msg: Message, canRefuse = false): boolean {
    const now = Date.now()
    // a message that is kept (in flight, queued, retained) holds its own copy, not a view into a large frame
    if (msg.qos > 0 || msg.retain) msg.payload = ownPayload(msg.payload)
    if (msg.retain) {
      const v = this.settings.values
      // [MQTT-3.3.1-5] store (replacing), [MQTT-3.3.1-10] an empty payload clears
      if (!this.retained.set(msg, { maxMessages: v.maxRetainedMessages, maxBytes: v.maxRetainedBytes })) {
        this.stats.retainedRefused++
        if (canRefuse) return false
      }
    }
    this.stats.messagesPublished++
    this.cluster?.publish(msg)
    this.#route(msg, now)
    return true
  }

  // ---- Cluster mode (ClusterPeer): what the other nodes hand this one ----

  /** A message published on another node: to the subscribers here (its retained state is shared, not stored again). */
  routeRemote(msg: Message): void {
    this.#route(msg, Date.now())
  }

  /** A message the cluster gave this node for a shared subscription: to one of its members here. */
  routeShared(sharedFilter: string, msg: Message): void {
    const m = this.router.pickShared?.(sharedFilter, this.#isOnline)
    if (m == null) return
    this.#deliverTo(m, msg, new Fanout(msg, Date.now()))
  }

  /**
   * Another node took the session of `clientId`: its connection here is taken over (v5: DISCONNECT 0x8E; a Will with
   * no delay goes out as on one node), then the session leaves this node: its routes, its pending Will delay and
   * expiry, and its working state once its last changes are written to the shared store.
   */
  async releaseSession(clientId: string, byNode: string, opts: { write?: boolean } = {}): Promise<void> {
    this.#clients.get(clientId)?.takenOverRemotely(byNode)
    await this.#life.release(clientId, opts.write ?? true)
  }

  /**
   * A message again, for some sessions only (a dead node's, taken up here, which may not have got it): to those
   * whose subscriptions match it, as routing would, and for whose client id `to` says yes.
   */
  redeliver(msg: Message, to: (clientId: string) => boolean): void {
    const matches = this.router.match(msg.topic, this.#isOnline)
    let fan: Fanout | null = null
    for (let i = 0; i < matches.length; i++) {
      if (to(matches[i].clientId)) this.#deliverTo(matches[i], msg, (fan ??= new Fanout(msg, Date.now())))
    }
  }

  /**
   * A session fetched from a clustered store for a CONNECT whose connection closed before it was served: held here
   * now with no connection, so it routes, expires and sends its Will as an offline session.
   */
  parkSession(clientId: string): void {
    const session = this.sessions.get(clientId)
    if (session === undefined || this.sessions.forget === undefined || this.#clients.has(clientId)) return
    this.#life.restoreSessions([session], Date.now())
  }

  /**
   * Take up sessions whose node died (the shared store held them): as after a restart, their subscriptions route
   * here, their expiry counts from `endedAt`, and their Wills are published.
   */
  adoptSessions(sessions: Session[], endedAt: number): { sessions: number; wills: number } {
    return this.#life.restoreSessions(sessions, endedAt)
  }

  /**
   * One of the broker's own `$SYS/` values (./sys.ts): kept in their own retained store (no quota, never written to a
   * store), routed like any message, not counted as a message received from a client.
   */
  publishSys(msg: Message): void {
    if (msg.retain) this.#sysRetained.set(msg, NO_LIMIT)
    this.#route(msg, Date.now())
  }

  #route(msg: Message, now: number): void {
    const matches = this.router.match(msg.topic, this.#isOnline)
    if (matches.length === 0) return
    const fan = new Fanout(msg, now)
    for (let i = 0; i < matches.length; i++) this.#deliverTo(matches[i], msg, fan)
  }

  #deliverTo(m: Match, msg: Message, fan: Fanout): void {
    if (m.noLocal && m.clientId === msg.from) return // [MQTT-3.8.3-3] No Local
    const connection = this.#clients.get(m.clientId)
    if (connection !== undefined) {
      deliver(connection, fan, m, false)
    } else if (msg.qos > 0 && m.qos > 0) {
      // an offline persistent session queues QoS 1/2 (bounded) [MQTT-3.1.2-5]
      const session = this.sessions.get(m.clientId)
      if (session !== undefined) {
        queueMessage(this, session, msg, msg.qos < m.qos ? msg.qos : m.qos, m.retainAsPublished && msg.retain,
          m.subscriptionIds, this.profiles.named(this.#sessionProfile.get(session) ?? null).values)
      }
    }
  }

  /** For shared subscriptions: a member whose client is connected is picked before one that is not. */
  readonly #isOnline = (clientId: string): boolean => this.#clients.has(clientId)

  /** Add or replace a subscription of a session; returns whether it is new. */
  subscribe(session: Session, sub: Subscription): boolean {
    session.subscriptions.set(sub.filter, sub)
    this.sessions.savedSubscription(session, sub.filter)
    return this.router.add(sub)
  }

  unsubscribe(session: Session, filter: string): boolean {
    const had = session.subscriptions.delete(filter)
    this.router.remove(session.clientId, filter)
    if (had) this.sessions.savedSubscription(session, filter)
    return had
  }

  /** Flush a connection's outbox after the current I/O callbacks, so that its writes of one turn coalesce. */
  scheduleFlush(c: Connection): void {
    this.#dirty.push(c)
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(this.#flushAll)
    }
  }

  readonly #flushAll = (): void => {
    this.#flushScheduled = false
    const dirty = this.#dirty
    this.#dirty = []
    for (let i = 0; i < dirty.length; i++) {
      // (setImmediate has no caller to catch for it; one failing transport must not end the process)
      try {
        dirty[i].outbox.flush()
      } catch (err) {
        this.logger?.error({ err, clientId: dirty[i].clientId }, 'writing to a connection failed: closing it')
        dirty[i].transport.destroy()
      }
    }
  }

  /** Emit (and log) a failure event. */
  reportFailure(e: FailureEvent): void {
    this.stats.failures[e.reason]++
    if (this.#logFold !== null) {
      const level = WARN_REASONS.has(e.reason) ? 'warn' : 'info'
      this.#logFold.log(level, e.reason, e.remoteAddress, { ...e }, `${e.reason}: ${e.detail}`)
    }
    this.#emitSafely('failure', e)
  }

  /** A connection ended: unregister, Will, session expiry, `disconnected`. */
  detach(c: Connection, wasConnected: boolean, how: 'disconnect' | 'failure' | 'shutdown', publishWill: boolean): void {
    this.#open.delete(c)
    this.#awaiting.delete(c)
    if (!wasConnected) return
    const clientId = c.clientId!
    if (this.#clients.get(clientId) === c) this.#clients.delete(clientId)
    this.#life.connectionEnded(c.session!, publishWill)
    this.#emitSafely('disconnected', { clientId, how })
  }

  /** A throwing listener (admin-path code) must not break the connection being served. */
  #emitSafely<K extends keyof BrokerEvents>(name: K, ...args: BrokerEvents[K]): void {
    try {
      // (the typed emit() cannot be called with a generic event name without this widening)
      const emit = this.emit as (n: K, ...a: BrokerEvents[K]) => boolean
      emit.call(this, name, ...args)
    } catch (err) {
      this.logger?.error({ err, event: name }, 'a broker event listener threw')
    }
  }


}
