// The broker: the registry of connections and client sessions, routing of published messages, retained messages,
// Wills, and the one entry point for hot settings. Transport-agnostic: an adapter hands it a Transport per
// connection and feeds the returned ConnectionInput; the broker plugin hands it settings and listens to its events.
import { EventEmitter } from 'node:events'
import type { SettingsSnapshot } from '../contracts/settings.ts'
import type { FailureEvent, FailureReason } from '../contracts/failure.ts'
import type { ConnectionInput, ConnectionMeta, LiveConnection, Transport } from '../contracts/connection.ts'
import type { Logger } from '../contracts/logger.ts'
import type { BrokerEvents, BrokerStats } from './types.ts'
import { Session, queueMessage, type Will } from './session.ts'
import { MemoryRouter, type Router, type Subscription } from './router.ts'
import { MemoryRetainedStore, type RetainedStore } from './retained.ts'
import { MemorySessionStore, NEVER_EXPIRES, newSessionState, type SessionState, type SessionStore } from './session-store.ts'
import { expiryFrom, ownPayload, type Message } from './message.ts'
import { Fanout } from './outgoing.ts'

export interface BrokerOptions {
  settings: SettingsSnapshot
  logger?: Logger
  /** routing between sessions (default: in memory) */
  router?: Router
  /** retained messages (default: in memory) */
  retained?: RetainedStore
  /** session state of clients, online and offline (default: in memory) */
  sessions?: SessionStore
}

const WARN_REASONS: ReadonlySet<FailureReason> = new Set(['protocol_error', 'packet_too_large', 'connect_rejected', 'websocket_error'])

/**
 * The counters the sessions bump, and the gauges read from the sets and stores they count, so that they cannot
 * drift from them (expired retained messages leave the store when a subscribe finds them: a copied count missed that).
 * A class, not an object literal with getters: such a literal is a dictionary-mode object, slow for the counters
 * bumped per packet.
 */
class Stats implements BrokerStats {
  connectsTotal = 0
  packetsReceived = 0
  packetsSent = 0
  bytesReceived = 0
  bytesSent = 0
  messagesPublished = 0
  messagesDelivered = 0
  messagesDropped = 0
  readonly #open: ReadonlySet<unknown>
  readonly #clients: ReadonlyMap<string, unknown>
  readonly #router: Router
  readonly #retained: RetainedStore

  constructor(open: ReadonlySet<unknown>, clients: ReadonlyMap<string, unknown>, router: Router, retained: RetainedStore) {
    this.#open = open
    this.#clients = clients
    this.#router = router
    this.#retained = retained
  }

  get connectionsOpen(): number {
    return this.#open.size
  }

  get clientsConnected(): number {
    return this.#clients.size
  }

  get retainedMessages(): number {
    return this.#retained.size
  }

  get subscriptions(): number {
    return this.#router.size
  }
}

export class Broker extends EventEmitter<BrokerEvents> {
  settings: SettingsSnapshot
  readonly logger: Logger | undefined
  readonly router: Router
  readonly retained: RetainedStore
  readonly sessions: SessionStore
  readonly stats: BrokerStats

  /** every open connection, connected or not */
  readonly #open = new Set<Session>()
  /** connected clients by client id */
  readonly #clients = new Map<string, Session>()
  /** Wills waiting for their delay [MQTT-3.1.3-9] */
  readonly #delayedWills = new Map<string, { timer: NodeJS.Timeout; will: Will }>()
  /** sessions waiting for their expiry after their connection ended */
  readonly #expiries = new Map<string, NodeJS.Timeout>()
  #dirty: Session[] = []
  #flushScheduled = false
  #closing = false

  constructor(opts: BrokerOptions) {
    super()
    this.settings = opts.settings
    this.logger = opts.logger
    this.router = opts.router ?? new MemoryRouter()
    this.retained = opts.retained ?? new MemoryRetainedStore()
    this.sessions = opts.sessions ?? new MemorySessionStore()
    this.stats = new Stats(this.#open, this.#clients, this.router, this.retained)
  }

  // ---- The outer contract ----

  /** The one entry point for hot settings, with the scopes DESIGN.md gives. */
  applySettings(next: SettingsSnapshot): void {
    const prev = this.settings.values
    this.settings = next
    const v = next.values
    if (v.connectTimeoutMs !== prev.connectTimeoutMs) {
      // connections still waiting for CONNECT: deadline re-computed from their open time (past = closed now)
      for (const s of this.#open) s.setConnectTimeout(v.connectTimeoutMs)
    }
    if (v.keepaliveMultiplier !== prev.keepaliveMultiplier) {
      for (const s of this.#clients.values()) s.setKeepaliveMultiplier(v.keepaliveMultiplier)
    }
    this.#emitSafely('settingsApplied', next)
  }

  /** A new transport connection; the adapter feeds the returned input. */
  handleConnection(transport: Transport, meta: ConnectionMeta): ConnectionInput {
    const session = new Session(this, transport, meta)
    this.#open.add(session)
    if (this.#closing) session.shutdown()
    return session
  }

  /** An upgrade the adapter refused (wrong path, bad subprotocol): a `websocket_error` in phase `handshake`. */
  reportHandshakeFailure(meta: ConnectionMeta, detail: string, hint: string): void {
    const now = Date.now()
    this.reportFailure({
      occurredAt: now,
      reason: 'websocket_error',
      phase: 'handshake',
      clientId: null,
      username: null,
      protocolVersion: null,
      keepaliveSec: null,
      remoteAddress: meta.remoteAddress,
      remotePort: meta.remotePort,
      userAgent: meta.userAgent,
      origin: meta.origin,
      subprotocol: meta.subprotocol,
      durationMs: now - meta.openedAt,
      bytesReceived: 0,
      packetsReceived: 0,
      firstBytesHex: '',
      detail,
      hint,
      settingsVersion: this.settings.version,
    })
  }

  connections(): LiveConnection[] {
    const out: LiveConnection[] = []
    for (const s of this.#clients.values()) {
      out.push({
        id: s.id,
        clientId: s.clientId!,
        username: s.username,
        remoteAddress: s.meta.remoteAddress,
        remotePort: s.meta.remotePort,
        userAgent: s.meta.userAgent,
        protocolVersion: s.protocolVersion,
        keepaliveSec: s.keepaliveSec,
        requestedKeepaliveSec: s.requestedKeepaliveSec ?? 0,
        keepaliveTimeoutMs: s.keepaliveTimeoutMs,
        connectedAt: new Date(s.connectedAt).toISOString(),
        lastPacketAt: new Date(s.lastPacketAt).toISOString(),
        packetsReceived: s.packetsReceived,
        packetsSent: s.packetsSent,
        subscriptions: s.state?.subscriptions.size ?? 0,
      })
    }
    return out
  }

  /** Graceful: v5 clients get DISCONNECT 0x8B, the rest are closed; no failures, no Wills. */
  async close(): Promise<void> {
    this.#closing = true
    for (const s of [...this.#open]) s.shutdown()
    for (const d of this.#delayedWills.values()) clearTimeout(d.timer)
    this.#delayedWills.clear()
    for (const t of this.#expiries.values()) clearTimeout(t)
    this.#expiries.clear()
    this.#flushAll()
  }

  // ---- Used by sessions and handlers ----

  /** The connected session of `clientId`, if any. */
  clientSession(clientId: string): Session | undefined {
    return this.#clients.get(clientId)
  }

  get clientCount(): number {
    return this.#clients.size
  }

  /** Register a session that has just been accepted (after a take-over, if any). */
  register(session: Session): void {
    this.#clients.set(session.clientId!, session)
    this.stats.connectsTotal++
  }

  /** Emitted once the CONNACK is queued. */
  announceConnected(session: Session, sessionPresent: boolean): void {
    this.logger?.debug({ clientId: session.clientId, protocolVersion: session.protocolVersion,
      keepaliveSec: session.keepaliveSec, remoteAddress: session.meta.remoteAddress, sessionPresent }, 'client connected')
    this.#emitSafely('connected', {
      clientId: session.clientId!,
      protocolVersion: session.protocolVersion,
      keepaliveSec: session.keepaliveSec,
      remoteAddress: session.meta.remoteAddress,
      connectLatencyMs: session.connectedAt - session.meta.openedAt,
      sessionPresent,
    })
  }

  /**
   * The session state for a CONNECT: a new connection for a client id cancels its delayed Will and its pending
   * expiry; clean start discards the old state [MQTT-3.1.2-4]; otherwise it is resumed [MQTT-3.1.2-5].
   */
  openSession(clientId: string, cleanStart: boolean, expiryIntervalSec: number): { state: SessionState; present: boolean } {
    // clean start ends the old session, and a session's end sends its pending Will [MQTT-3.1.3-9]
    this.#cancelDelayedWill(clientId, cleanStart)
    const expiry = this.#expiries.get(clientId)
    if (expiry !== undefined) {
      clearTimeout(expiry)
      this.#expiries.delete(clientId)
    }
    let state = this.sessions.get(clientId)
    if (state !== undefined && cleanStart) {
      this.#endSession(state)
      state = undefined
    }
    if (state !== undefined) {
      state.expiryIntervalSec = expiryIntervalSec
      return { state, present: true }
    }
    state = newSessionState(clientId, expiryIntervalSec)
    this.sessions.set(state)
    return { state, present: false }
  }

  /** Route a message to every matching subscription; retained ones update the retained store first. */
  publish(msg: Message): void {
    const now = Date.now()
    this.stats.messagesPublished++
    if (msg.retain) {
      // [MQTT-3.3.1-5] store (replacing), [MQTT-3.3.1-10] an empty payload clears
      this.retained.set(msg.payload.length === 0 ? msg : { ...msg, payload: ownPayload(msg.payload) })
    }
    const matches = this.router.match(msg.topic)
    if (matches.length === 0) return
    const fan = new Fanout(msg, now)
    for (let i = 0; i < matches.length; i++) {
      const m = matches[i]
      if (m.noLocal && m.clientId === msg.from) continue // [MQTT-3.8.3-3] No Local
      const session = this.#clients.get(m.clientId)
      if (session !== undefined) {
        session.deliver(fan, m, false)
      } else if (msg.qos > 0 && m.qos > 0) {
        // an offline persistent session queues QoS 1/2 (bounded) [MQTT-3.1.2-5]
        const state = this.sessions.get(m.clientId)
        if (state !== undefined) {
          queueMessage(this, state, {
            message: msg, qos: msg.qos < m.qos ? msg.qos : m.qos, retain: m.retainAsPublished && msg.retain,
            subscriptionIds: m.subscriptionIds,
          })
        }
      }
    }
  }

  /** Add or replace a subscription of a session; returns whether it is new. */
  subscribe(state: SessionState, sub: Subscription): boolean {
    state.subscriptions.set(sub.filter, sub)
    return this.router.add(sub)
  }

  unsubscribe(state: SessionState, filter: string): boolean {
    const had = state.subscriptions.delete(filter)
    this.router.remove(state.clientId, filter)
    return had
  }

  /** Queue a session's bytes for the next flush (after the current I/O callbacks, so writes coalesce). */
  scheduleFlush(session: Session): void {
    this.#dirty.push(session)
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
        dirty[i].flush()
      } catch (err) {
        this.logger?.error({ err, clientId: dirty[i].clientId }, 'writing to a connection failed: closing it')
        dirty[i].transport.destroy()
      }
    }
  }

  /** Emit (and log) a failure event. */
  reportFailure(e: FailureEvent): void {
    if (this.logger !== undefined) {
      const level = WARN_REASONS.has(e.reason) ? 'warn' : 'info'
      this.logger[level]({ ...e }, `${e.reason}: ${e.detail}`)
    }
    this.#emitSafely('failure', e)
  }

  /** A connection ended: unregister, Will, session expiry, `disconnected`. */
  detach(session: Session, wasConnected: boolean, how: 'disconnect' | 'failure' | 'shutdown', publishWill: boolean): void {
    this.#open.delete(session)
    if (!wasConnected) return
    const clientId = session.clientId!
    if (this.#clients.get(clientId) === session) this.#clients.delete(clientId)
    const state = session.state!
    if (publishWill && session.will !== null && !this.#closing) this.#scheduleWill(clientId, session.will, state.expiryIntervalSec)
    if (this.sessions.get(clientId) === state) {
      if (state.expiryIntervalSec === 0) this.#endSession(state)
      else if (state.expiryIntervalSec !== NEVER_EXPIRES && !this.#closing) this.#scheduleExpiry(state)
    }
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

  // ---- Wills and session expiry ----

  /** [MQTT-3.1.2-8] publish the Will; v5: after Will Delay, or when the session ends if sooner [MQTT-3.1.3-9]. */
  #scheduleWill(clientId: string, will: Will, sessionExpirySec: number): void {
    const delaySec = Math.min(will.delaySec, sessionExpirySec)
    if (delaySec <= 0) {
      this.#publishWill(clientId, will)
      return
    }
    this.#cancelDelayedWill(clientId)
    const timer = setTimeout(() => {
      this.#delayedWills.delete(clientId)
      // a timer has no caller to catch for it: a throw here would end the process
      try {
        this.#publishWill(clientId, will)
      } catch (err) {
        this.logger?.error({ err, clientId }, 'publishing a delayed Will failed')
      }
    }, delaySec * 1000)
    timer.unref()
    this.#delayedWills.set(clientId, { timer, will })
  }

  #publishWill(clientId: string, will: Will): void {
    this.publish({
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      properties: will.properties,
      expiresAt: expiryFrom(will.expirySec, Date.now()),
      from: clientId,
    })
  }

  /** Drop a Will waiting for its delay; `publishNow` when its session ends before the delay is over. */
  #cancelDelayedWill(clientId: string, publishNow = false): void {
    const d = this.#delayedWills.get(clientId)
    if (d !== undefined) {
      clearTimeout(d.timer)
      this.#delayedWills.delete(clientId)
      if (publishNow) this.#publishWill(clientId, d.will)
    }
  }

  #scheduleExpiry(state: SessionState, dueAt: number = Date.now() + state.expiryIntervalSec * 1000): void {
    const clientId = state.clientId
    const timer = setTimeout(() => {
      this.#expiries.delete(clientId)
      if (this.#clients.has(clientId) || this.sessions.get(clientId) !== state) return
      // setTimeout holds at most ~24.8 days: longer expiries are re-armed
      if (Date.now() < dueAt) return this.#scheduleExpiry(state, dueAt)
      this.#endSession(state)
    }, Math.min(Math.max(dueAt - Date.now(), 0), 2 ** 31 - 1))
    timer.unref()
    this.#expiries.set(clientId, timer)
  }

  /** The session is over: its subscriptions leave the router and its state is dropped. */
  #endSession(state: SessionState): void {
    for (const filter of state.subscriptions.keys()) this.router.remove(state.clientId, filter)
    state.subscriptions.clear()
    if (this.sessions.get(state.clientId) === state) this.sessions.delete(state.clientId)
  }
}
