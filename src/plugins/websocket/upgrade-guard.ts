// Bounds the HTTP upgrade of every socket by the hot connectTimeoutMs, from the TCP accept, and remembers when each
// socket was accepted so that the connect timeout of an upgraded connection runs from there. HTTP-level: it sits
// under the WebSocket adapter, not in the broker core.
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { Duplex } from 'node:stream'

/**
 * Bounds the time from TCP accept until a socket's first complete HTTP request (for the broker: its upgrade
 * request) by the hot `connectTimeoutMs`: read for each new socket, and re-applied to waiting ones when it changes.
 * Node's own `headersTimeout` (60 s, checked every 30 s) is far too long for a slowloris. Also remembers when each socket was accepted, so the connect timeout
 * of an upgraded connection runs from the TCP accept.
 */
export class UpgradeGuard {
  /** Sockets with no complete request yet, oldest first. */
  readonly #pending = new Map<Socket, { timer: NodeJS.Timeout; readonly onClose: () => void }>()
  readonly #openedAt = new WeakMap<Socket, number>()
  readonly #limits: () => { connectTimeoutMs: number; maxConnections: number }
  readonly #onStalled: (socket: Socket, waitedMs: number, why: string | null) => void
  #closing = false

  constructor(
    limits: () => { connectTimeoutMs: number; maxConnections: number },
    onStalled: (socket: Socket, waitedMs: number, why: string | null) => void,
  ) {
    this.#limits = limits
    this.#onStalled = onStalled
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
    clearTimeout(entry.timer)
    socket.removeListener('close', entry.onClose)
    this.#pending.delete(socket)
    return true
  }

  /**
   * A new connectTimeoutMs reaches the sockets still sending their request, as it reaches connections still waiting
   * for CONNECT: each deadline is re-computed from the socket's accept time (already past: closed now).
   */
  reschedule(connectTimeoutMs: number): void {
    const now = Date.now()
    for (const [socket, entry] of this.#pending) {
      clearTimeout(entry.timer)
      entry.timer = setTimeout(() => this.#expire(socket, null), Math.max(0, this.openedAt(socket) + connectTimeoutMs - now))
      entry.timer.unref()
    }
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
    // Later requests on a kept-alive socket fall to Node's own header timeout: the same setting.
    server.headersTimeout = connectTimeoutMs
    // Bounded memory under a flood faster than the timeout: the oldest waiting socket makes room for the newest,
    // so a flood never keeps a real client out.
    if (this.#pending.size >= maxConnections) {
      const [oldest] = this.#pending.keys()
      if (oldest !== undefined) {
        this.#expire(oldest, 'more sockets than maxConnections were waiting for their upgrade request and it was the oldest')
      }
    }
    this.#wait(socket, connectTimeoutMs)
  }

  #wait(socket: Socket, ms: number): void {
    const timer = setTimeout(() => this.#expire(socket, null), ms)
    timer.unref()
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
    if (!this.settle(accepted)) return
    this.#wait(socket, Math.max(0, openedAt + this.#limits().connectTimeoutMs - Date.now()))
  }

  #expire(socket: Socket, why: string | null): void {
    if (!this.settle(socket)) return
    this.#onStalled(socket, Date.now() - this.openedAt(socket), why)
    socket.destroy()
  }
}

