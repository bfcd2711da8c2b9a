// Bounds the HTTP upgrade of every socket by the hot connectTimeoutMs, from the TCP accept, and remembers when each
// socket was accepted so that the connect timeout of an upgraded connection runs from there. HTTP-level: it sits
// under the WebSocket adapter, not in the broker core.
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { Duplex } from 'node:stream'
import { MAX_STALL_CREDIT_MS, StallAwareTimeout, type StallClock } from '../../mqtt/stall.ts'

/**
 * Bounds the time from TCP accept until a socket's first complete HTTP request (for the broker: its upgrade
 * request) by the hot `connectTimeoutMs`: read for each new socket, and re-applied to waiting ones when it changes.
 * Node's own `headersTimeout` (60 s, checked every 30 s) is far too long for a slowloris. Also remembers when each
 * socket was accepted, so the connect timeout of an upgraded connection runs from the TCP accept.
 *
 * Like a connection's deadlines, this one measures the client, never the broker (StallAwareTimeout): in a reconnect
 * storm the broker's own stalls are given back, and a request that waited unread is read before the socket is judged.
 */
export class UpgradeGuard {
  /** Sockets with no complete request yet, oldest first. */
  readonly #pending = new Map<Socket, { readonly timer: StallAwareTimeout; readonly onClose: () => void }>()
  readonly #openedAt = new WeakMap<Socket, number>()
  readonly #limits: () => { connectTimeoutMs: number; maxConnections: number }
  readonly #onStalled: (socket: Socket, waitedMs: number, why: string | null, stallGivenMs: number) => void
  /** the broker's stall clock (null: STALL_CREDIT=off, deadlines on the wall clock) */
  readonly #stall: StallClock | null
  #closing = false

  constructor(
    limits: () => { connectTimeoutMs: number; maxConnections: number },
    onStalled: (socket: Socket, waitedMs: number, why: string | null, stallGivenMs: number) => void,
    stall: StallClock | null = null,
  ) {
    this.#limits = limits
    this.#onStalled = onStalled
    this.#stall = stall
  }

  get pendingCount(): number {
    return this.#pending.size
  }

  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.#accept(socket, server))
    // Over TLS (HTTPS, WSS) requests arrive on the TLS socket wrapped around the accepted one, once its handshake is
    // done: it takes over the accepted socket's deadline and accept time.
    server.on('secureConnection', (socket: TLSSocket) => this.#secured(socket))
    // A complete request ends the wait; for an upgrade this runs before the route and its hooks.
    server.prependListener('request', (req: IncomingMessage) => this.settle(req.socket as Socket))
    server.prependListener('upgrade', (_req: IncomingMessage, socket: Duplex) => {
      // An upgrade on a socket that already served requests starts its connect timeout now, not at TCP accept.
      if (!this.settle(socket as Socket)) this.#openedAt.set(socket as Socket, Date.now())
    })
  }

  /** When the socket was accepted (or started its upgrade, on a reused socket); epoch ms. */
  openedAt(socket: Socket): number {
    return this.#openedAt.get(socket) ?? Date.now()
  }

  /** Stops waiting for this socket's request. Returns whether it was waiting. */
  settle(socket: Socket): boolean {
    const entry = this.#pending.get(socket)
    if (entry === undefined) return false
    entry.timer.cancel()
    socket.removeListener('close', entry.onClose)
    this.#pending.delete(socket)
    return true
  }

  /**
   * A new connectTimeoutMs reaches the sockets still sending their request, as it reaches connections still waiting
   * for CONNECT: each deadline is re-computed from the socket's accept time (already past: closed now).
   */
  reschedule(connectTimeoutMs: number): void {
    for (const entry of this.#pending.values()) entry.timer.setLength(connectTimeoutMs)
  }

  /** Shutdown: close every socket still sending its request; no failures are reported for them. */
  close(): void {
    this.#closing = true
    for (const socket of [...this.#pending.keys()]) {
      this.settle(socket)
      socket.destroy()
    }
  }

  #accept(socket: Socket, server: Server): void {
    if (this.#closing) {
      socket.destroy()
      return
    }
    const now = Date.now()
    this.#openedAt.set(socket, now)
    const { connectTimeoutMs, maxConnections } = this.#limits()
    // Later requests on a kept-alive socket fall to Node's own header timeout (checked every 30 s, and blind to the
    // broker's stalls): set past this guard's own bound, so that it never cuts a first request the guard still waits for.
    server.headersTimeout = connectTimeoutMs + MAX_STALL_CREDIT_MS
    // Bounded memory under a flood faster than the timeout: the oldest waiting socket makes room for the newest,
    // so a flood never keeps a real client out.
    if (this.#pending.size >= maxConnections) {
      const [oldest] = this.#pending.keys()
      if (oldest !== undefined) {
        this.#expire(oldest, 'more sockets than maxConnections were waiting for their upgrade request and it was the oldest')
      }
    }
    this.#wait(socket, now, connectTimeoutMs)
  }

  #wait(socket: Socket, since: number, ms: number, carry?: StallAwareTimeout): void {
    const timer = new StallAwareTimeout(this.#stall, since, ms, () => this.#expire(socket, null), carry)
    const onClose = () => this.settle(socket)
    this.#pending.set(socket, { timer, onClose })
    socket.once('close', onClose)
  }

  #secured(socket: TLSSocket): void {
    // Node keeps the accepted socket as `_parent` of the TLS socket it wraps (not in its typings)
    const accepted = (socket as unknown as { _parent?: Socket })._parent
    if (accepted === undefined) return
    const openedAt = this.openedAt(accepted)
    this.#openedAt.set(socket, openedAt)
    // the same wait goes on for the TLS socket: the broker's stalls already given back stay given
    const carry = this.#pending.get(accepted)?.timer
    if (!this.settle(accepted)) return
    this.#wait(socket, openedAt, this.#limits().connectTimeoutMs, carry)
  }

  #expire(socket: Socket, why: string | null): void {
    const given = this.#pending.get(socket)?.timer.givenMs ?? 0
    if (!this.settle(socket)) return
    this.#onStalled(socket, Date.now() - this.openedAt(socket), why, given)
    socket.destroy()
  }
}

