// One client connection: one mqtt-packet parser fed every chunk, the protocol gate (awaiting_connect | connected |
// closed), the connect and keepalive deadlines, and the failure record of its end. Its pending output is its Outbox
// (./outbox.ts), what it is sent is decided in ./delivery.ts, and what outlives it is its Session (./session.ts).
// The packet handlers (./handlers/) act on it; the broker routes messages to it.
// Longer than most files (~370 lines) on purpose: the parser callbacks, the gate, the deadlines and the failure
// record all read the same private state (phase, the first bytes, the parser's half-read packet), and splitting them
// would turn that state into public fields of a per-connection object that is kept small for memory's sake.
import mqttPacket, { type Packet } from 'mqtt-packet'
import type { ConnectionInput, ConnectionMeta, Transport } from '../contracts/connection.ts'
import { FIRST_BYTES_MAX, type FailureEvent, type FailureReason } from '../contracts/failure.ts'
import type { Broker } from './broker.ts'
import type { Will } from './message.ts'
import type { Session } from './session.ts'
import { Deadline } from './timer.ts'
import { Outbox } from './outbox.ts'
import { dispatch } from './handlers/index.ts'
import { failureEvent } from './failure-event.ts'
import { packetSize, peekConnectVersion, redactSecrets } from './wire.ts'
import { connectProgress, hints } from './explain.ts'
import { RC, V3 } from './codes.ts'
import { MAX_CONNECT_BYTES, MAX_INFLIGHT, RECEIVE_MAXIMUM } from './limits.ts'
import { resumeDelivery, type RetainedDelivery } from './delivery.ts'
import type { ConnectionAcl } from './access.ts'

const { parser: createParser, generate } = mqttPacket

export type Phase = 'awaiting_connect' | 'connected' | 'closed'

/** The parts of the mqtt-packet parser the connection reads beyond its typed API: the packet being assembled and
 * the bytes it holds unparsed (none: the next chunk starts on a packet boundary). */
interface ParserInternals {
  packet: { cmd: string | null; length: number }
  _list: { length: number }
}

const GEN_V4 = { protocolVersion: 4 }
const GEN_V5 = { protocolVersion: 5 }

let lastId = 0

export class Connection implements ConnectionInput {
  readonly id = ++lastId
  readonly broker: Broker
  readonly transport: Transport
  readonly meta: ConnectionMeta
  phase: Phase = 'awaiting_connect'

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

  readonly outbox: Outbox
  readonly #parser: ReturnType<typeof createParser>
  /** the connect deadline while awaiting CONNECT, then the keepalive deadline (armed only when keepalive > 0) */
  readonly #deadline: Deadline<Connection>
  #firstBytes: Buffer | null = null
  #firstLength = 0
  /** the chunk being parsed, for the bytes of a failure after CONNECT (null when it did not start on a packet
   * boundary: its CONNECTs, if any, could not be found to hide their passwords) */
  #chunk: Buffer | null = null
  /** packets that arrived while the CONNECT waits for an asynchronous step (a password check), in order */
  #held: Packet[] | null = null

  constructor(broker: Broker, transport: Transport, meta: ConnectionMeta) {
    this.broker = broker
    this.transport = transport
    this.meta = meta
    this.outbox = new Outbox(this)
    this.#parser = createParser({ protocolVersion: 4 })
    // bound methods: lighter per connection than arrow-function fields
    this.#parser.on('packet', this.#onPacket.bind(this))
    this.#parser.on('error', this.#onParseError.bind(this))
    this.#deadline = new Deadline<Connection>(deadlineExpired, this)
    // connectTimeoutMs runs from the socket's open, not from this call
    this.#deadline.arm(broker.settings.values.connectTimeoutMs, meta.openedAt)
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
      this.lastPacketAt = now
      this.#deadline.refresh(now)
    } else if (this.#firstLength < FIRST_BYTES_MAX) {
      this.#keepFirstBytes(chunk)
    }
    this.#chunk = (this.#parser as unknown as ParserInternals)._list.length === 0 ? chunk : null
    this.#parser.parse(chunk)
    this.#chunk = null
    if ((this.phase as Phase) !== 'closed') this.#checkPartialPacket() // a handler may have ended it
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
      this.fail('closed_before_connect',
        `the client closed the connection after sending ${this.#connectProgress()} in ${ms} ms${how}`,
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
      `the client sent a WebSocket message of more than ${limit} bytes; maxPacketSize is ${this.broker.settings.values.maxPacketSize}`,
      hints.packetTooLarge(this.broker.settings.values), RC.packetTooLarge)
  }

  drained(): void {
    this.outbox.drained()
  }

  /** The outbox is writable again: what waited for room (queued QoS 1/2, retained messages) goes on. */
  outputDrained(): void {
    if (this.phase === 'connected') resumeDelivery(this)
  }

  /** Output stayed over maxOutputBytes for slowConsumerTimeoutMs: closed, with how much was pending. */
  slowConsumer(pendingBytes: number, overMs: number): void {
    const s = this.broker.settings.values
    this.fail('slow_consumer',
      `${pendingBytes} bytes waited for the client for ${overMs} ms without it reading (maxOutputBytes ${s.maxOutputBytes}, slowConsumerTimeoutMs ${s.slowConsumerTimeoutMs})`,
      hints.slowConsumer(s))
  }

  // ---- Parsing ----

  #onPacket(packet: Packet): void {
    if (this.phase === 'closed') return
    this.packetsReceived++
    this.broker.stats.packetsReceived++
    const size = packetSize(packet.length ?? 0)
    if (size > this.#sizeLimit()) return this.#packetTooLarge(packet.cmd, size)
    if (this.#held === null) return dispatch(this, packet)
    // reading is paused; what the last chunk already held waits its turn, within the bound of a Receive Maximum
    if (this.#held.length >= RECEIVE_MAXIMUM) {
      return this.protocolError(`more than ${RECEIVE_MAXIMUM} packets sent before the CONNACK`)
    }
    this.#held.push(packet)
  }

  /** The CONNECT waits for an asynchronous step: stop reading, and hold what was already parsed. */
  hold(): void {
    this.#held ??= []
    this.transport.pause()
  }

  /**
   * The asynchronous step is done: run `next` (the rest of the CONNECT), then the held packets in order, then read
   * again. Called from a promise, which has no caller to catch for it: a fault ends this connection only.
   */
  release(next: () => void): void {
    const held = this.#held ?? []
    this.#held = null
    try {
      if (this.phase === 'closed') return
      next()
      for (let i = 0; i < held.length && (this.phase as Phase) !== 'closed'; i++) dispatch(this, held[i])
      // read again, unless the output went over its cap meanwhile (the outbox resumes reading when it drains)
      if ((this.phase as Phase) !== 'closed' && !this.outbox.overCap) this.transport.resume()
    } catch (err) {
      this.broker.logger?.error({ err, clientId: this.clientId }, 'the broker failed while finishing a CONNECT: closing it')
      this.transport.destroy()
    }
  }

  #onParseError(err: Error): void {
    if (this.phase === 'closed') return
    if (this.phase === 'awaiting_connect' && err.message === 'Invalid protocol version') {
      // [MQTT-3.1.2-2] unacceptable protocol level: CONNACK 0x01, then close
      const version = this.#firstBytes === null ? null : peekConnectVersion(this.#firstBytes.subarray(0, this.#firstLength))
      this.protocolVersion = version ?? 0 // not 5: the CONNACK goes out in the 3.1.1 format
      this.reject(V3.unacceptableProtocolVersion, RC.unsupportedProtocolVersion,
        `the client asked for MQTT protocol level ${version ?? 'unknown'}, which is not served`, hints.unsupportedVersion)
      return
    }
    this.fail('protocol_error', `malformed ${this.#parserPacket().cmd?.toUpperCase() ?? 'packet'}: ${err.message}`,
      hints.protocolError, RC.malformedPacket)
  }

  #parserPacket(): ParserInternals['packet'] {
    return (this.#parser as unknown as ParserInternals).packet
  }

  /**
   * A packet whose fixed header is read but whose body is still arriving: judge it now, before buffering it all.
   * Refused early: over maxPacketSize, the reserved type 0, anything but CONNECT first [MQTT-3.1.0-1].
   */
  #checkPartialPacket(): void {
    const p = this.#parserPacket()
    if (p.cmd === null) return
    if (p.cmd === 'reserved') return this.protocolError('the client sent a packet of the reserved type 0', RC.malformedPacket)
    if (this.#beforeConnect() && p.cmd !== 'connect') {
      return this.protocolError(`the first packet was ${p.cmd.toUpperCase()}, not CONNECT`)
    }
    if (p.length < 0) return
    if (packetSize(p.length) > this.#sizeLimit()) this.#packetTooLarge(p.cmd, packetSize(p.length))
  }

  /** No CONNECT has arrived yet (one waiting for its password check has: what follows it is held, not judged as first). */
  #beforeConnect(): boolean {
    return this.phase === 'awaiting_connect' && this.#held === null
  }

  /** maxPacketSize; before CONNECT also MAX_CONNECT_BYTES, so a socket waiting for its CONNECT holds little. */
  #sizeLimit(): number {
    const max = this.broker.settings.values.maxPacketSize
    return this.#beforeConnect() && max > MAX_CONNECT_BYTES ? MAX_CONNECT_BYTES : max
  }

  #packetTooLarge(cmd: string, size: number): void {
    const max = this.broker.settings.values.maxPacketSize
    const limit = this.#beforeConnect() && max > MAX_CONNECT_BYTES
      ? `a CONNECT may be at most ${MAX_CONNECT_BYTES} bytes` : `maxPacketSize is ${max}`
    this.fail('packet_too_large', `the client sent a ${cmd.toUpperCase()} of ${size} bytes; ${limit}`,
      hints.packetTooLarge(this.broker.settings.values), RC.packetTooLarge)
  }

  /** maxPendingConnects: this connection waited longest for its CONNECT while too many were waiting. */
  evictWaiting(): void {
    const s = this.broker.settings.values
    this.fail('connect_timeout',
      `closed after ${Date.now() - this.meta.openedAt} ms with ${this.#connectProgress()}: more than maxPendingConnects ` +
      `(${s.maxPendingConnects}) connections were waiting for their CONNECT and this one had waited longest`,
      hints.pendingConnects(s))
  }

  #keepFirstBytes(chunk: Buffer): void {
    this.#firstBytes ??= Buffer.alloc(FIRST_BYTES_MAX)
    this.#firstLength += chunk.copy(this.#firstBytes, this.#firstLength, 0, FIRST_BYTES_MAX - this.#firstLength)
  }

  /** Bytes of the CONNECT received so far, and of how many when its fixed header has been read. */
  #connectProgress(): string {
    const p = this.#parserPacket()
    return connectProgress(this.bytesReceived, p.cmd === 'connect' && p.length >= 0 ? packetSize(p.length) : null)
  }

  // ---- Deadlines ----

  /** The deadline of the current phase passed. */
  deadlineExpired(): void {
    if (this.phase === 'awaiting_connect') this.#connectTimedOut()
    else if (this.phase === 'connected') this.#keepaliveTimedOut()
  }

  #connectTimedOut(): void {
    const s = this.broker.settings.values
    const ms = Date.now() - this.meta.openedAt
    this.fail('connect_timeout',
      `the client sent ${this.#connectProgress()} in ${ms} ms (connectTimeoutMs ${s.connectTimeoutMs})`,
      this.bytesReceived === 0 ? hints.connectTimeoutSilent(s) : hints.connectTimeoutPartial(s))
  }

  #keepaliveTimedOut(): void {
    const s = this.broker.settings.values
    this.fail('keepalive_timeout',
      `nothing received for ${Date.now() - this.lastPacketAt} ms (keepalive ${this.keepaliveSec} s x ` +
      `keepaliveMultiplier ${s.keepaliveMultiplier})`, hints.keepaliveTimeout(s), RC.keepAliveTimeout)
  }

  /** A new connectTimeoutMs reaches a connection still waiting for CONNECT, counted from its open. */
  setConnectTimeout(ms: number): void {
    if (this.phase === 'awaiting_connect') this.#deadline.reschedule(ms)
  }

  /** ms of silence after which the connection is dropped, null = never. */
  get keepaliveTimeoutMs(): number | null {
    return this.phase === 'connected' && this.keepaliveSec > 0 ? this.#deadline.ms : null
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
    this.#firstBytes = null
    this.connectedAt = now
    this.lastPacketAt = now
    this.keepaliveSec = keepaliveSec
    if (keepaliveSec > 0) {
      // [MQTT-3.1.2-24] close when nothing arrives for keepalive x multiplier (the spec's 1.5 by default)
      this.#deadline.arm(Math.round(keepaliveSec * this.broker.settings.values.keepaliveMultiplier * 1000), now)
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

  /** A normal DISCONNECT: not a failure. `publishWill` for v5 reason 0x04 (and any non-zero reason). */
  disconnect(publishWill: boolean): void {
    if (this.phase === 'closed') return
    this.#end('disconnect', null, publishWill)
  }

  /** Server shutdown: v5 clients get DISCONNECT 0x8B; not a failure. */
  shutdown(): void {
    if (this.phase === 'closed') return
    const farewell: Packet | null = this.phase === 'connected' && this.protocolVersion === 5
      ? { cmd: 'disconnect', reasonCode: RC.serverShuttingDown }
      : null
    this.#end('shutdown', farewell, false)
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
    this.#firstBytes = null
    if (farewell !== null) this.write(farewell)
    this.retainedBacklog = null
    this.outbox.flushFinal()
    this.transport.end()
    this.broker.detach(this, wasConnected, how, publishWill)
  }

  #failureEvent(reason: FailureReason, detail: string, hint: string): FailureEvent {
    const connected = this.phase === 'connected'
    const bytes = this.#firstBytes !== null ? this.#firstBytes.subarray(0, this.#firstLength) : this.#chunk
    return failureEvent(this.meta, this.broker.settings.version, {
      reason,
      phase: connected ? 'connected' : 'awaiting_connect',
      clientId: this.clientId,
      username: this.username,
      protocolVersion: this.protocolVersion === 0 ? null : this.protocolVersion,
      keepaliveSec: connected ? this.keepaliveSec : this.requestedKeepaliveSec,
      bytesReceived: this.bytesReceived,
      packetsReceived: this.packetsReceived,
      // a kept prefix never holds a password or v5 Authentication Data
      firstBytesHex: bytes === null ? '' : redactSecrets(bytes.subarray(0, FIRST_BYTES_MAX)).toString('hex'),
      detail,
      hint,
    })
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
