// One connection's pending output: encoded packets are collected during an I/O turn and written as one Buffer when
// the broker flushes (after the current I/O callbacks), and held while the transport pushes back.
// Bounded by maxOutputBytes: over it the broker stops reading from the client (a client that publishes but never
// reads cannot make it queue acknowledgements without end), its QoS 0 messages are dropped and QoS 1/2 ones wait in
// its session; if it stays over for slowConsumerTimeoutMs it is closed as a slow_consumer.
import type { Connection } from './connection.ts'

/** The chunks small held packets are copied into: from this size, doubling, up to the other. */
const CHUNK_MIN = 256
const CHUNK_MAX = 65536

export class Outbox {
  readonly #connection: Connection
  /**
   * what waits to be written, in order: what this turn queued (written at the broker's flush), or, while the transport
   * pushes back, what is held (written when it drains; nothing else is queued meanwhile). A held packet that is a
   * small slice of something larger (Node's shared 8 KiB pool: a 4-byte PUBACK) is copied into a chunk of our own,
   * since kept as it is it would pin the whole slab and a client that never reads could make the broker hold 2,000
   * times what it counts; a packet that is a buffer of its own (a QoS 0 broadcast encoded once for every subscriber)
   * is kept as it is, shared.
   */
  #out: Buffer[] | null = null
  /** the chunk of our own being filled (the last part of what is held), and how much of it is used */
  #chunk: Buffer | null = null
  #chunkLength = 0
  #bytes = 0
  /** the transport is over its high-water mark: nothing is written until it drains */
  #blocked = false
  /** over maxOutputBytes since (epoch ms), 0 = not over */
  #overSince = 0
  #slowTimer: NodeJS.Timeout | null = null

  constructor(connection: Connection) {
    this.#connection = connection
  }

  /** Queue encoded bytes; the first of a turn asks the broker for a flush. */
  push(buf: Buffer): void {
    this.#bytes += buf.length
    if (this.#blocked) {
      this.#hold(buf)
      if (this.#overSince === 0 && this.#bytes > this.#cap()) this.#goOver()
    } else if (this.#out === null) {
      this.#out = [buf]
      this.#connection.broker.scheduleFlush(this.#connection)
    } else {
      this.#out.push(buf)
    }
  }

  /** Write what is queued or held, as one Buffer, unless the transport pushes back. */
  flush(): void {
    if (this.#blocked) return
    this.#sealChunk()
    const parts = this.#out
    if (parts === null) return
    this.#out = null
    const data = parts.length === 1 ? parts[0] : Buffer.concat(parts, this.#bytes)
    this.#bytes = 0
    const c = this.#connection
    c.broker.stats.bytesSent += data.length
    if (!c.transport.write(data)) this.#blocked = true
  }

  /** The transport can take more: write what waited; under the cap again, read from the client again. */
  drained(): void {
    this.#blocked = false
    this.flush()
    if (this.#overSince !== 0 && this.#bytes <= this.#cap()) {
      this.#overSince = 0
      this.#clearTimer()
      this.#connection.transport.resume()
    }
    if (!this.#blocked) this.#connection.outputDrained()
  }

  /** Last words before the transport is ended: written whether or not it pushes back. */
  flushFinal(): void {
    this.#clearTimer()
    this.#blocked = false
    this.flush()
  }

  /** The client is not reading and over maxOutputBytes wait for it: QoS 0 is dropped, QoS 1/2 wait in the session. */
  get congested(): boolean {
    return this.#blocked && this.#bytes > this.#cap()
  }

  /** The transport pushes back: more output now would only wait here. */
  get blocked(): boolean {
    return this.#blocked
  }

  /** Over maxOutputBytes: reading from the client is paused until the output drains. */
  get overCap(): boolean {
    return this.#overSince !== 0
  }

  /** Bytes waiting here for the transport. */
  get bytes(): number {
    return this.#bytes
  }

  #cap(): number {
    return this.#connection.values.maxOutputBytes
  }

  /** Add `buf` to what is held: kept as it is when it is a buffer of its own, else copied into our chunk. */
  #hold(buf: Buffer): void {
    if (buf.length * 2 >= buf.buffer.byteLength) {
      this.#sealChunk()
      ;(this.#out ??= []).push(buf)
      return
    }
    if (this.#chunk === null || this.#chunkLength + buf.length > this.#chunk.length) {
      // each new chunk twice the last (from 256 bytes to 64 KiB), and never smaller than the packet
      const size = Math.max(buf.length, Math.min(CHUNK_MAX, this.#chunk === null ? CHUNK_MIN : 2 * this.#chunk.length))
      this.#sealChunk()
      this.#chunk = Buffer.allocUnsafeSlow(size)
    }
    buf.copy(this.#chunk, this.#chunkLength)
    this.#chunkLength += buf.length
  }

  /** The chunk being filled becomes a part of what is held (copied to its exact size when more than half is unused). */
  #sealChunk(): void {
    const chunk = this.#chunk
    if (chunk === null) return
    let part = chunk.subarray(0, this.#chunkLength)
    if (this.#chunkLength * 2 < chunk.length) {
      part = Buffer.allocUnsafeSlow(this.#chunkLength)
      chunk.copy(part, 0, 0, this.#chunkLength)
    }
    ;(this.#out ??= []).push(part)
    this.#chunk = null
    this.#chunkLength = 0
  }

  #goOver(): void {
    const c = this.#connection
    this.#overSince = Date.now()
    c.transport.pause()
    const ms = c.values.slowConsumerTimeoutMs
    this.#slowTimer = setTimeout(slowConsumerCheck, ms, this)
    this.#slowTimer.unref()
  }

  #clearTimer(): void {
    if (this.#slowTimer !== null) clearTimeout(this.#slowTimer)
    this.#slowTimer = null
  }

  /** Still over the cap when the grace ran out: the client is closed. */
  static check(o: Outbox): void {
    o.#slowTimer = null
    if (o.#overSince === 0) return
    const c = o.#connection
    try {
      c.slowConsumer(o.#bytes, Date.now() - o.#overSince)
    } catch (err) {
      c.broker.logger?.error({ err, clientId: c.clientId }, 'the broker failed closing a slow consumer: closing it')
      c.transport.destroy()
    }
  }
}

const slowConsumerCheck = Outbox.check
