// One connection's pending output: encoded packets are collected during an I/O turn and written as one Buffer when
// the broker flushes (after the current I/O callbacks), and held while the transport pushes back.
// Bounded by maxOutputBytes: over it the broker stops reading from the client (a client that publishes but never
// reads cannot make it queue acknowledgements without end), its QoS 0 messages are dropped and QoS 1/2 ones wait in
// its session; if it stays over for slowConsumerTimeoutMs it is closed as a slow_consumer.
import type { Connection } from './connection.ts'

export class Outbox {
  readonly #connection: Connection
  /** what this turn queued, written at the broker's flush */
  #out: Buffer[] | null = null
  /**
   * what waits while the transport pushes back, copied into one buffer of its own: the packets themselves are often
   * small slices of Node's shared 8 KiB pool (a 4-byte PUBACK), and kept as they are, each would pin its whole slab,
   * so a client that never reads could make the broker hold 2,000 times what it counts
   */
  #held: Buffer | null = null
  #heldLength = 0
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

  /** Write what is queued, as one Buffer, unless the transport pushes back. */
  flush(): void {
    if (this.#blocked || (this.#out === null && this.#held === null)) return
    const parts = this.#held === null ? this.#out! : [this.#held.subarray(0, this.#heldLength), ...(this.#out ?? [])]
    this.#out = null
    this.#held = null
    this.#heldLength = 0
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

  /** Copy `buf` to the end of what is held (a buffer of its own, grown by doubling). */
  #hold(buf: Buffer): void {
    const need = this.#heldLength + buf.length
    if (this.#held === null || need > this.#held.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(need, 2 * (this.#held?.length ?? 0), 4096))
      if (this.#held !== null) this.#held.copy(grown, 0, 0, this.#heldLength)
      this.#held = grown
    }
    buf.copy(this.#held, this.#heldLength)
    this.#heldLength = need
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
