// One connection's input: every chunk read into packets (./reader.ts: the common ones in place, the rest by
// mqtt-packet's parser), each packet judged from its fixed header before its body is buffered (first packet CONNECT,
// reserved type, size), packets dispatched in order (or held, in order, while the CONNECT waits for its password
// check), and the bytes a failure record keeps (the first bytes of the stream, or the chunk being parsed), with their
// secrets masked.
import type { Packet } from 'mqtt-packet'
import { FIRST_BYTES_MAX } from '../contracts/failure.ts'
import type { Connection, Phase } from './connection.ts'
import { dispatch } from './handlers/index.ts'
import { packetSize, peekConnectVersion, redactSecrets } from './wire.ts'
import { connectProgress, hints } from './explain.ts'
import { RC, V3 } from './codes.ts'
import { MAX_CONNECT_BYTES, RECEIVE_MAXIMUM } from './limits.ts'
import { PacketReader } from './reader.ts'

export class Inbound {
  readonly #c: Connection
  readonly #reader: PacketReader
  #firstBytes: Buffer | null = null
  #firstLength = 0
  /**
   * the chunk being parsed, for the bytes of a failure after CONNECT (null when it did not start on a packet
   * boundary: its CONNECTs, if any, could not be found to hide their passwords)
   */
  #chunk: Buffer | null = null
  /** packets that arrived while the CONNECT waits for an asynchronous step (a password check), in order */
  #held: Packet[] | null = null

  constructor(connection: Connection) {
    this.#c = connection
    // bound methods: lighter per connection than arrow-function fields
    this.#reader = new PacketReader(this.#onPacket.bind(this), this.#onParseError.bind(this))
  }

  /** Parse a chunk: any split, any number of packets. */
  feed(chunk: Buffer): void {
    const c = this.#c
    if (c.phase !== 'connected' && this.#firstLength < FIRST_BYTES_MAX) this.#keepFirstBytes(chunk)
    this.#chunk = this.#reader.atBoundary ? chunk : null
    // once connected, what a client sends most is read in place
    this.#reader.feed(chunk, c.phase === 'connected' && this.#held === null)
    this.#chunk = null
    if ((c.phase as Phase) !== 'closed') this.#checkPartialPacket() // a handler may have ended it
  }

  /**
   * A packet waits for an asynchronous step (a password check, a session read at CONNECT, a retained read at
   * SUBSCRIBE): stop reading, and hold what was already parsed, in order.
   */
  hold(): void {
    this.#held ??= []
    this.#c.transport.pause()
  }

  /**
   * The asynchronous step is done: run `next` (the rest of the packet's handling), then the held packets in order,
   * then read again; when one of them waits again, the rest wait with it. Called from a promise, which has no caller
   * to catch for it: a fault ends this connection only.
   */
  release(next: () => void): void {
    const c = this.#c
    const held = this.#held ?? []
    this.#held = null
    try {
      if (c.phase === 'closed') return
      next()
      for (let i = 0; i < held.length && (c.phase as Phase) !== 'closed'; i++) {
        // (`next` or a packet may have held again: #held is not what TypeScript narrowed it to above)
        const again = this.#held as Packet[] | null
        if (again !== null) {
          again.push(...held.slice(i))
          return
        }
        dispatch(c, held[i])
      }
      if ((this.#held as Packet[] | null) !== null) return
      // read again, unless the output went over its cap meanwhile (the outbox resumes reading when it drains)
      if ((c.phase as Phase) !== 'closed' && !c.outbox.overCap) c.transport.resume()
    } catch (err) {
      c.broker.logger?.error({ err, clientId: c.clientId }, 'the broker failed while finishing a held packet: closing it')
      c.transport.destroy()
    }
  }

  /** The bytes a failure record keeps, secrets masked: the first bytes of the stream, else the chunk being parsed. */
  keptBytes(): Buffer | null {
    const bytes = this.#firstBytes !== null ? this.#firstBytes.subarray(0, this.#firstLength) : this.#chunk
    // a kept prefix never holds a password or v5 Authentication Data
    return bytes === null ? null : redactSecrets(bytes.subarray(0, FIRST_BYTES_MAX))
  }

  /** Connected or closed: the first bytes are no longer kept. */
  forgetFirstBytes(): void {
    this.#firstBytes = null
  }

  /** "17 of 41 bytes of its CONNECT": bytes received so far, and of how many once the fixed header is read. */
  connectProgress(): string {
    const p = this.#reader.partial
    return connectProgress(this.#c.bytesReceived, p !== null && p.cmd === 'connect' && p.length >= 0 ? packetSize(p.length) : null)
  }

  #onPacket(packet: Packet): void {
    const c = this.#c
    if (c.phase === 'closed') return
    c.packetsReceived++
    c.broker.stats.packetsReceived++
    const size = packetSize(packet.length ?? 0)
    if (size > this.#sizeLimit()) return this.#packetTooLarge(packet.cmd, size)
    if (this.#held === null) return dispatch(c, packet)
    // reading is paused; what the last chunk already held waits its turn, within the bound of a Receive Maximum
    if (this.#held.length >= RECEIVE_MAXIMUM) {
      return c.protocolError(`more than ${RECEIVE_MAXIMUM} packets sent before the CONNACK`)
    }
    this.#held.push(packet)
  }

  #onParseError(err: Error): void {
    const c = this.#c
    if (c.phase === 'closed') return
    if (c.phase === 'awaiting_connect' && err.message === 'Invalid protocol version') {
      // [MQTT-3.1.2-2] unacceptable protocol level: CONNACK 0x01, then close
      const version = this.#firstBytes === null ? null : peekConnectVersion(this.#firstBytes.subarray(0, this.#firstLength))
      c.protocolVersion = version ?? 0 // not 5: the CONNACK goes out in the 3.1.1 format
      c.reject(V3.unacceptableProtocolVersion, RC.unsupportedProtocolVersion,
        `the client asked for MQTT protocol level ${version ?? 'unknown'}, which is not served`, hints.unsupportedVersion)
      return
    }
    c.fail('protocol_error', `malformed ${this.#reader.partial?.cmd.toUpperCase() ?? 'packet'}: ${err.message}`,
      hints.protocolError, RC.malformedPacket)
  }

  /**
   * A packet whose fixed header is read but whose body is still arriving: judge it now, before buffering it all.
   * Refused early: over the size limit, the reserved type 0, anything but CONNECT first [MQTT-3.1.0-1].
   */
  #checkPartialPacket(): void {
    const p = this.#reader.partial
    if (p === null) return
    if (p.cmd === 'reserved') return this.#c.protocolError('the client sent a packet of the reserved type 0', RC.malformedPacket)
    if (this.#beforeConnect() && p.cmd !== 'connect') {
      return this.#c.protocolError(`the first packet was ${p.cmd.toUpperCase()}, not CONNECT`)
    }
    if (p.length < 0) return
    if (packetSize(p.length) > this.#sizeLimit()) this.#packetTooLarge(p.cmd, packetSize(p.length))
  }

  /** No CONNECT has arrived yet (one waiting for its password check has: what follows it is held, not judged as first). */
  #beforeConnect(): boolean {
    return this.#c.phase === 'awaiting_connect' && this.#held === null
  }

  /** maxPacketSize; before CONNECT also MAX_CONNECT_BYTES, so a socket waiting for its CONNECT holds little. */
  #sizeLimit(): number {
    const max = this.#c.values.maxPacketSize
    return this.#beforeConnect() && max > MAX_CONNECT_BYTES ? MAX_CONNECT_BYTES : max
  }

  #packetTooLarge(cmd: string, size: number): void {
    const values = this.#c.values
    const limit = this.#beforeConnect() && values.maxPacketSize > MAX_CONNECT_BYTES
      ? `a CONNECT may be at most ${MAX_CONNECT_BYTES} bytes` : `maxPacketSize is ${values.maxPacketSize}`
    this.#c.fail('packet_too_large', `the client sent a ${cmd.toUpperCase()} of ${size} bytes; ${limit}`,
      hints.packetTooLarge(values), RC.packetTooLarge)
  }

  #keepFirstBytes(chunk: Buffer): void {
    this.#firstBytes ??= Buffer.alloc(FIRST_BYTES_MAX)
    this.#firstLength += chunk.copy(this.#firstBytes, this.#firstLength, 0, FIRST_BYTES_MAX - this.#firstLength)
  }
}
