// One connection's pending output: encoded packets are collected during an I/O turn and written as one Buffer when
// the broker flushes (after the current I/O callbacks), and held while the transport pushes back.
import type { Connection } from './connection.ts'
import { MAX_BUFFERED_BYTES } from './limits.ts'

export class Outbox {
  readonly #connection: Connection
  #out: Buffer[] | null = null
  #bytes = 0
  /** the transport is over its high-water mark: nothing is written until it drains */
  #blocked = false

  constructor(connection: Connection) {
    this.#connection = connection
  }

  /** Queue encoded bytes; the first of a turn asks the broker for a flush. */
  push(buf: Buffer): void {
    this.#bytes += buf.length
    if (this.#out === null) {
      this.#out = [buf]
      if (!this.#blocked) this.#connection.broker.scheduleFlush(this.#connection)
    } else {
      this.#out.push(buf)
    }
  }

  /** Write what is queued, as one Buffer, unless the transport pushes back. */
  flush(): void {
    const out = this.#out
    if (out === null || this.#blocked) return
    this.#out = null
    const data = out.length === 1 ? out[0] : Buffer.concat(out, this.#bytes)
    this.#bytes = 0
    const c = this.#connection
    c.broker.stats.bytesSent += data.length
    if (!c.transport.write(data)) this.#blocked = true
  }

  /** The transport can take more: write what waited. */
  drained(): void {
    this.#blocked = false
    if (this.#out !== null) this.flush()
  }

  /** Last words before the transport is ended: written whether or not it pushes back. */
  flushFinal(): void {
    this.#blocked = false
    this.flush()
  }

  /** The client stopped reading and over MAX_BUFFERED_BYTES wait for it: QoS 0 messages are dropped, not queued. */
  get congested(): boolean {
    return this.#blocked && this.#bytes > MAX_BUFFERED_BYTES
  }
}
