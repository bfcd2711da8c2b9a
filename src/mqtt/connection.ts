// One client connection: the protocol gate (awaiting_connect | connected | closed), the connect and keepalive
// deadlines, and the failure record of its end. Its input (parser, early judgement of packets, kept bytes) is its
// Inbound (./inbound.ts), its pending output its Outbox (./outbox.ts), what it is sent is decided in ./delivery.ts,
// and what outlives it is its Session (./session.ts). The packet handlers (./handlers/) act on it; the broker routes
// messages to it.
import mqttPacket, { type Packet } from 'mqtt-packet'
import type { ConnectionInput, ConnectionMeta, Transport } from '../contracts/connection.ts'
import type { FailureEvent, FailureReason } from '../contracts/failure.ts'
import type { SettingsValues } from '../contracts/settings.ts'
import type { Broker } from './broker.ts'
import type { Will } from './message.ts'
import type { Session } from './session.ts'
import { Deadline } from './timer.ts'
import { MAX_STALL_CREDIT_MS, MIN_STALL_CREDIT_MS, stallGivenText } from './stall.ts'
import { Outbox } from './outbox.ts'
import { Inbound } from './inbound.ts'
import { failureEvent } from './failure-event.ts'
import { hints } from './explain.ts'
import type { OutboundAliases } from './aliases.ts'
import { RC, V3 } from './codes.ts'
import { MAX_CONNECT_BYTES, MAX_INFLIGHT } from './limits.ts'
import { resumeDelivery, type RetainedDelivery } from './delivery.ts'
import type { ConnectionAcl } from './access.ts'
import type { Resolved } from './profiles.ts'

const { generate } = mqttPacket

export type Phase = 'awaiting_connect' | 'connected' | 'closed'

/** From this lag on, a timeout's hint says the broker was slow too. */
const STALL_WORTH_SAYING_MS = 200

const GEN_V4 = { protocolVersion: 4 }
const GEN_V5 = { protocolVersion: 5 }

let lastId = 0

export class Connection implements ConnectionInput {
  readonly id = ++lastId
  readonly broker: Broker
  readonly transport: Transport
  readonly meta: ConnectionMeta
  phase: Phase = 'awaiting_connect'
  /** the timeout profile this connection runs under (./profiles.ts), null = the global values */
  profile: string | null = null
  /**
   * The settings this connection runs on: the global values with its profile's overrides. Decided when the socket
   * opens, again at CONNECT, and on every settings version (a connection may change profile).
   */
  values: Readonly<SettingsValues>
  /** the CONNECT's identity was matched against the profiles (stage 2) */
  #profiledAtConnect = false

  bytesReceived = 0
  packetsReceived = 0
  packetsSent = 0

  // Known once CONNECT has been read.
  protocolVersion = 0
  clientId: string | null = null
  /** the username the CONNECT sent (shown and recorded; not a proof of identity) */
  username: string | null = null
  /** who authentication says the client is: a known user's name, or null for an anonymous client (ACL subject) */
  identity: string | null = null
  /** the ACL's per-connection state (cached answers, denial counts); created at the first question */
  acl: ConnectionAcl | null = null
  requestedKeepaliveSec: number | null = null
  /** keepalive in force (after server policy), seconds; 0 = none */
  keepaliveSec = 0
  connectedAt = 0
  /** when bytes last arrived (epoch ms) */
  lastPacketAt = 0
  /** the MQTT session (subscriptions, in-flight, queue): what outlives this connection; set at CONNACK */
  session: Session | null = null
  will: Will | null = null
  /** the client's v5 Receive Maximum, capped by MAX_INFLIGHT */
  sendWindow = MAX_INFLIGHT
  /** in-flight messages of a resumed session not yet sent again (the window had no room for them) */
  unsent = 0
  /** retained messages due to new subscriptions, sent as the output takes them */
  retainedBacklog: RetainedDelivery[] | null = null
  /** the client's v5 Maximum Packet Size (0 = none) [MQTT-3.1.2-24] */
  clientMaxPacketSize = 0
  /** v5 topic aliases the client set (client -> server) */
  topicAliases: Map<number, string> | null = null
  /** v5 topic aliases the broker assigns to what it sends; null when the client accepts none [MQTT-3.1.2-27] */
  outboundAliases: OutboundAliases | null = null

  readonly inbound: Inbound
  readonly outbox: Outbox
  /** the connect deadline while awaiting CONNECT, then the keepalive deadline (armed only when keepalive > 0) */
  readonly #deadline: Deadline<Connection>
  /** the broker's stall total when the deadline was armed or last given back time (./stall.ts) */
  #stallMark = 0
  /** ms of the broker's own stalls given back to the current deadline */
  #stallGivenMs = 0
  /** keepalive / 2 in ms (Infinity without keepalive): a silence longer than this is counted in ./gaps.ts */
  #halfKeepaliveMs = Infinity
  /** the longest late silence so far, / keepalive (0 = none over half) */
  #maxGapRatio = 0
  /** the phase whose deadline expired and waits to be judged after pending reads, or null */
  #judging: Phase | null = null
  /** the CONNECT has arrived whole and the broker serves it (the deadline is the broker's own from then on) */
  #serving = false

  constructor(broker: Broker, transport: Transport, meta: ConnectionMeta) {
    this.broker = broker
    this.transport = transport
    this.meta = meta
    this.outbox = new Outbox(this)
    this.inbound = new Inbound(this)
    this.#deadline = new Deadline<Connection>(deadlineExpired, this)
    const stage1 = broker.profiles.beforeConnect(meta)
    this.profile = stage1.profile
    this.values = stage1.values
    // connectTimeoutMs runs from the socket's open, not from this call: so do the broker's stalls given back to it
    // (those of the upgrade or TLS handshake included)
    this.#stallMark = broker.stall.totalAt(meta.openedAt)
    this.#deadline.arm(this.values.connectTimeoutMs, meta.openedAt)
  }

  // ---- ConnectionInput: what the transport adapter calls ----

  push(chunk: Buffer): void {
    if (this.phase === 'closed') return
    this.bytesReceived += chunk.length
    this.broker.stats.bytesReceived += chunk.length
    if (this.phase === 'connected') {
      // [MQTT-3.1.2-24] any packet refreshes the keepalive; so does part of one still arriving (a client sending
      // a large packet over a slow link is not idle). One clock read per chunk, not per packet.
      const now = Date.now()
      if (now - this.lastPacketAt > this.#halfKeepaliveMs) this.#lateGap(now - this.lastPacketAt)
      this.lastPacketAt = now
      this.#deadline.refresh(now)
    }
    this.inbound.feed(chunk)
  }

  textFrame(): void {
    if (this.phase === 'closed') return
    // [MQTT-6.0.0-1] MQTT Control Packets are sent in WebSocket binary data frames
    this.fail('protocol_error', 'the client sent a WebSocket text frame; MQTT needs binary frames', hints.textFrame,
      RC.protocolError)
  }

  closed(detail?: string): void {
    if (this.phase === 'closed') return
    const how = detail ? ` (${detail})` : ''
    if (this.phase === 'awaiting_connect') {
      const ms = Date.now() - this.meta.openedAt
      this.fail('closed_before_connect', this.#serving
        ? `the client closed the connection ${ms} ms after its open, while the broker was serving its CONNECT${how}`
        : `the client closed the connection after sending ${this.inbound.connectProgress()} in ${ms} ms${how}`,
        hints.closedBeforeConnect)
    } else {
      this.fail('connection_lost',
        `the connection closed without DISCONNECT after ${Date.now() - this.connectedAt} ms connected, ` +
        `${Date.now() - this.lastPacketAt} ms after the last packet${how}`, hints.connectionLost)
    }
  }

  error(err: Error): void {
    if (this.phase === 'closed') return
    this.fail('websocket_error', `WebSocket error: ${err.message}`, hints.websocket)
  }

  messageTooLarge(limit: number): void {
    if (this.phase === 'closed') return
    this.fail('packet_too_large',
      `the client sent a WebSocket message of more than ${limit} bytes; maxPacketSize is ${this.values.maxPacketSize}`,
      hints.packetTooLarge(this.values), RC.packetTooLarge)
  }

  drained(): void {
    this.outbox.drained()
  }

  get awaitingConnect(): boolean {
    return this.phase === 'awaiting_connect'
  }

  tooMuchBeforeConnect(bytes: number): void {
    if (this.phase !== 'awaiting_connect') return
    this.fail('packet_too_large',
      `the client sent ${bytes} bytes without completing its CONNECT; a CONNECT may be at most ${MAX_CONNECT_BYTES} bytes`,
      hints.packetTooLarge(this.values))
  }

  /** The outbox is writable again: what waited for room (queued QoS 1/2, retained messages) goes on. */
  outputDrained(): void {
    if (this.phase === 'connected') resumeDelivery(this)
  }

  /** Output stayed over maxOutputBytes for slowConsumerTimeoutMs: closed, with how much was pending. */
  slowConsumer(pendingBytes: number, overMs: number): void {
    const s = this.values
    this.fail('slow_consumer',
      `${pendingBytes} bytes waited for the client for ${overMs} ms without it reading (maxOutputBytes ${s.maxOutputBytes}, slowConsumerTimeoutMs ${s.slowConsumerTimeoutMs})`,
      hints.slowConsumer(s))
  }

  /** maxPendingConnects: this connection waited longest for its CONNECT while too many were waiting. */
  evictWaiting(): void {
    const s = this.values
    this.fail('connect_timeout',
      `closed after ${Date.now() - this.meta.openedAt} ms with ${this.inbound.connectProgress()}: more than maxPendingConnects ` +
      `(${s.maxPendingConnects}) connections were waiting for their CONNECT and this one had waited longest`,
      hints.pendingConnects(s))
  }

  // ---- Deadlines ----

  /**
   * The deadline of the current phase passed. A timeout measures the client, never the broker: time the broker
   * itself was stalled during the wait (./stall.ts) is given back first; then what the broker had not yet read is
   * read (socket reads run before setImmediate), and only then is the client judged.
   */
  deadlineExpired(): void {
    if (this.phase === 'closed') return
    if (!this.broker.stallCredit) {
      this.#judging = this.phase
      this.judge()
      return
    }
    const stall = this.broker.stall
    const stalled = Math.min(stall.stalledSince(this.#stallMark, this.#deadline.start), MAX_STALL_CREDIT_MS - this.#stallGivenMs)
    this.#stallMark = stall.totalMs
    if (stalled >= MIN_STALL_CREDIT_MS) {
      this.#stallGivenMs += stalled
      this.#deadline.extend(stalled)
      return
    }
    if (this.#judging !== null) return
    this.#judging = this.phase
    setImmediate(judgeLater, this)
  }

  /** The deadline's expiry, after what was waiting to be read has been read. */
  judge(): void {
    const phase = this.#judging
    this.#judging = null
    // CONNECT completed meanwhile (a new deadline), or closed, or bytes arrived that moved the deadline
    if (phase !== this.phase || !this.#deadline.stillExpired()) return
    if (phase === 'awaiting_connect') {
      if (this.#serving) this.#serveTimedOut()
      else this.#connectTimedOut()
    } else if (phase === 'connected') this.#keepaliveTimedOut()
  }

  #serveTimedOut(): void {
    this.reject(V3.serverUnavailable, RC.serverBusy,
      `the client's CONNECT arrived whole, but the broker could not serve it within ${this.broker.serveConnectTimeoutMs} ms (a password check or a session read that did not finish)`,
      this.#withLag(hints.serveTimeout))
  }

  #connectTimedOut(): void {
    const s = this.values
    const ms = Date.now() - this.meta.openedAt
    this.fail('connect_timeout',
      `the client sent ${this.inbound.connectProgress()} in ${ms} ms (connectTimeoutMs ${s.connectTimeoutMs}${this.#ofProfile()}${this.#stallGiven()})`,
      this.#withLag(this.bytesReceived === 0 ? hints.connectTimeoutSilent(s) : hints.connectTimeoutPartial(s)))
  }

  #keepaliveTimedOut(): void {
    const s = this.values
    this.broker.stats.keepaliveGaps.droppedAfter(this.#maxGapRatio, this.keepaliveSec, this.profile)
    this.fail('keepalive_timeout',
      `nothing received for ${Date.now() - this.lastPacketAt} ms (keepalive ${this.keepaliveSec} s x ` +
      `keepaliveMultiplier ${s.keepaliveMultiplier}${this.#ofProfile()}${this.#stallGiven()})`, this.#withLag(hints.keepaliveTimeout(s)), RC.keepAliveTimeout)
  }

  /** The part of a timeout's detail that names the profile whose value it was. */
  #ofProfile(): string {
    return this.profile === null ? '' : ` of timeout profile "${this.profile}"`
  }

  /** The part of a timeout's detail that says how long the broker's own stalls added to the wait. */
  #stallGiven(): string {
    return stallGivenText(this.#stallGivenMs)
  }

  /** A timeout's hint, saying so when the broker itself was slow at the time. */
  #withLag(hint: string): string {
    const lag = this.broker.stall.recentLagMs
    return lag >= STALL_WORTH_SAYING_MS ? `${hints.brokerStalled(lag)} ${hint}` : hint
  }

  /** At CONNECT, once the client is authenticated: the profile for its client id and username too (stage 2). */
  profileAtConnect(): void {
    this.#profiledAtConnect = true
    this.#useProfile(this.broker.profiles.atConnect(this.meta, { clientId: this.clientId!, username: this.identity }))
  }

  /**
   * A new settings version: the profile again (stage 1 or 2, as far as this connection has got; when the profiles
   * match as before, `rematch` is false and the profile is kept by name with its new values), and its deadline with
   * the new values: connectTimeoutMs from the open while waiting, keepalive x multiplier when connected.
   */
  settingsChanged(rematch: boolean): void {
    if (this.phase === 'closed') return
    const before = this.values
    const profiles = this.broker.profiles
    this.#useProfile(!rematch
      ? profiles.named(this.profile)
      : this.#profiledAtConnect
        ? profiles.atConnect(this.meta, { clientId: this.clientId!, username: this.identity })
        : profiles.beforeConnect(this.meta))
    if (this.values.connectTimeoutMs !== before.connectTimeoutMs) this.setConnectTimeout(this.values.connectTimeoutMs)
    if (this.values.keepaliveMultiplier !== before.keepaliveMultiplier) this.setKeepaliveMultiplier(this.values.keepaliveMultiplier)
  }

  #useProfile(r: Resolved): void {
    this.profile = r.profile
    this.values = r.values
  }

  /** A new connectTimeoutMs reaches a connection still waiting for CONNECT, counted from its open. */
  setConnectTimeout(ms: number): void {
    if (this.phase === 'awaiting_connect' && !this.#serving) this.#deadline.reschedule(ms)
  }

  /**
   * The CONNECT has arrived whole: connectTimeoutMs has been met. What the broker then does before its CONNACK (a
   * password check, a session read from a clustered store) is bounded by serveConnectTimeoutMs, and a miss is
   * the broker's (Server busy), never a connect_timeout.
   */
  connectReceived(): void {
    this.#serving = true
    this.broker.connectReceived(this)
    this.#stallMark = this.broker.stall.totalMs
    this.#stallGivenMs = 0
    this.#deadline.arm(this.broker.serveConnectTimeoutMs)
  }

  /** ms of silence after which the connection is dropped, null = never. */
  get keepaliveTimeoutMs(): number | null {
    return this.phase === 'connected' && this.keepaliveSec > 0 ? this.#deadline.ms : null
  }

  /** A silence over half the keepalive ended: counted (off the hot path: one comparison in push()). */
  #lateGap(ms: number): void {
    const ratio = ms / (this.keepaliveSec * 1000)
    if (ratio > this.#maxGapRatio) this.#maxGapRatio = ratio
    this.broker.stats.keepaliveGaps.observe(ratio, this.keepaliveSec, this.profile)
  }

  /** A new keepaliveMultiplier re-arms the live keepalive deadline, still counted from the last packet. */
  setKeepaliveMultiplier(multiplier: number): void {
    if (this.phase === 'connected' && this.keepaliveSec > 0) {
      this.#deadline.reschedule(Math.round(this.keepaliveSec * multiplier * 1000))
    }
  }

  /** CONNACK accepted: the connection is live from here. */
  becomeConnected(keepaliveSec: number): void {
    const now = Date.now()
    this.phase = 'connected'
    this.#deadline.clear()
    this.inbound.forgetFirstBytes()
    this.connectedAt = now
    this.lastPacketAt = now
    this.keepaliveSec = keepaliveSec
    this.#halfKeepaliveMs = keepaliveSec > 0 ? keepaliveSec * 500 : Infinity
    if (keepaliveSec > 0) {
      // [MQTT-3.1.2-24] close when nothing arrives for keepalive x multiplier (the spec's 1.5 by default)
      this.#stallMark = this.broker.stall.totalMs
      this.#stallGivenMs = 0
      this.#deadline.arm(Math.round(keepaliveSec * this.values.keepaliveMultiplier * 1000), now)
    }
  }

  // ---- Writing ----

  /** Encode and queue one packet. */
  write(packet: Packet): void {
    let buf: Buffer
    try {
      buf = generate(packet, this.protocolVersion === 5 ? GEN_V5 : GEN_V4)
    } catch (err) {
      this.broker.logger?.error({ err, cmd: packet.cmd, clientId: this.clientId }, 'could not encode a packet')
      return
    }
    this.send(buf)
  }

  /** Queue encoded bytes; they go out in one transport write when the broker flushes (after the current I/O). */
  send(buf: Buffer): void {
    this.packetsSent++
    this.broker.stats.packetsSent++
    this.outbox.push(buf)
  }

  // ---- Ending ----

  /** End the connection with a failure event; `v5Reason` sends a DISCONNECT first to a connected v5 client. */
  fail(reason: FailureReason, detail: string, hint: string, v5Reason?: number): void {
    if (this.phase === 'closed') return
    const farewell: Packet | null = v5Reason !== undefined && this.phase === 'connected' && this.protocolVersion === 5
      ? { cmd: 'disconnect', reasonCode: v5Reason, properties: { reasonString: detail.slice(0, 200) } }
      : null
    this.#endWithFailure(reason, detail, hint, farewell)
  }

  /** A broken protocol rule: v5 clients get a DISCONNECT with `v5Reason` (default Protocol Error). */
  protocolError(detail: string, v5Reason: number = RC.protocolError): void {
    this.fail('protocol_error', detail, hints.protocolError, v5Reason)
  }

  /** Refuse the CONNECT: CONNACK with a v3 return code or v5 reason code (+ reason string), then close. */
  reject(v3Code: number, v5Code: number, detail: string, hint: string): void {
    this.refuse('connect_rejected', v3Code, v5Code, detail, hint)
  }

  /** Refuse the CONNECT with a CONNACK code, recorded as `reason` (connect_rejected, auth_failed). */
  refuse(reason: FailureReason, v3Code: number, v5Code: number, detail: string, hint: string): void {
    if (this.phase === 'closed') return
    const connack: Packet = this.protocolVersion === 5
      ? { cmd: 'connack', sessionPresent: false, reasonCode: v5Code, properties: { reasonString: detail.slice(0, 200) } }
      : { cmd: 'connack', sessionPresent: false, returnCode: v3Code }
    this.#endWithFailure(reason, detail, hint, connack)
  }

  /** Another connection took this client id: v5 gets DISCONNECT 0x8E. */
  takenOver(by: Connection): void {
    const from = by.meta.remoteAddress === null ? 'another connection' : `${by.meta.remoteAddress}:${by.meta.remotePort}`
    this.fail('taken_over', `client id "${this.clientId}" connected again from ${from}; this older connection was closed`,
      hints.takenOver, RC.sessionTakenOver)
  }

  /** Cluster mode: the same client id connected on another node, which took the session: v5 gets DISCONNECT 0x8E. */
  takenOverRemotely(byNode: string): void {
    this.fail('taken_over', `client id "${this.clientId}" connected again on node ${byNode}, which took its session; this older connection was closed`,
      hints.takenOver, RC.sessionTakenOver)
  }

  /** A normal DISCONNECT: not a failure. `publishWill` for v5 reason 0x04 (and any non-zero reason). */
  disconnect(publishWill: boolean): void {
    if (this.phase === 'closed') return
    this.#end('disconnect', null, publishWill)
  }

  /** An operator ended its session: v5 clients get DISCONNECT 0x98 (Administrative action); not a failure, no Will. */
  endByOperator(): void {
    this.#endQuietly('disconnect', RC.administrativeAction)
  }

  /** Server shutdown: v5 clients get DISCONNECT 0x8B; not a failure. */
  shutdown(): void {
    this.#endQuietly('shutdown', RC.serverShuttingDown)
  }

  /** Ended by the server, not for a fault of the client: a connected v5 client is told `reasonCode`; no Will. */
  #endQuietly(how: 'disconnect' | 'shutdown', reasonCode: number): void {
    if (this.phase === 'closed') return
    const farewell: Packet | null = this.phase === 'connected' && this.protocolVersion === 5
      ? { cmd: 'disconnect', reasonCode }
      : null
    this.#end(how, farewell, false)
  }

  /** The failure is recorded as the connection stood (phase, bytes), then it ends, with its Will. */
  #endWithFailure(reason: FailureReason, detail: string, hint: string, farewell: Packet | null): void {
    const event = this.#failureEvent(reason, detail, hint)
    this.#end('failure', farewell, true)
    this.broker.reportFailure(event)
  }

  #end(how: 'disconnect' | 'failure' | 'shutdown', farewell: Packet | null, publishWill: boolean): void {
    const wasConnected = this.phase === 'connected'
    this.phase = 'closed'
    this.#deadline.clear()
    this.inbound.forgetFirstBytes()
    if (farewell !== null) this.write(farewell)
    this.retainedBacklog = null
    this.outbox.flushFinal()
    this.transport.end()
    this.broker.detach(this, wasConnected, how, publishWill)
  }

  #failureEvent(reason: FailureReason, detail: string, hint: string): FailureEvent {
    const connected = this.phase === 'connected'
    const bytes = this.inbound.keptBytes()
    return failureEvent(this.meta, this.broker.settings.version, {
      reason,
      phase: connected ? 'connected' : 'awaiting_connect',
      clientId: this.clientId,
      username: this.username,
      protocolVersion: this.protocolVersion === 0 ? null : this.protocolVersion,
      keepaliveSec: connected ? this.keepaliveSec : this.requestedKeepaliveSec,
      bytesReceived: this.bytesReceived,
      packetsReceived: this.packetsReceived,
      firstBytesHex: bytes === null ? '' : bytes.toString('hex'),
      detail,
      hint,
      brokerLagMs: this.broker.stall.recentLagMs,
      profile: this.profile,
    })
  }
}

function judgeLater(c: Connection): void {
  try {
    c.judge()
  } catch (err) {
    c.broker.logger?.error({ err, clientId: c.clientId }, 'the broker failed on a connection deadline: closing it')
    c.transport.destroy()
  }
}

function deadlineExpired(c: Connection): void {
  // a timer has no caller to catch for it (the adapter guards only pushed bytes): a throw here, e.g. while the
  // Will of a timed-out client is routed, would end the process
  try {
    c.deadlineExpired()
  } catch (err) {
    c.broker.logger?.error({ err, clientId: c.clientId }, 'the broker failed on a connection deadline: closing it')
    c.transport.destroy()
  }
}
