// What every transport adapter shares about its peer: what a socket alone says of it (no HTTP request read, or
// none at all: TCP, TLS, a stalled upgrade), and how long it may take to close once the broker ends the connection.
import type { Socket } from 'node:net'
import type { ConnectionMeta, TransportKind } from '../contracts/connection.ts'

export function socketMeta(socket: Socket, transport: TransportKind, openedAt: number): ConnectionMeta {
  return {
    transport,
    remoteAddress: socket.remoteAddress ?? null,
    remotePort: socket.remotePort ?? null,
    userAgent: null,
    origin: null,
    subprotocol: null,
    openedAt,
  }
}

/**
 * After the broker ends a connection, how long the peer has to close its side (answer a WebSocket close frame, end
 * its TCP half) before the socket is cut. ws itself waits 30 s, which would let a dead peer hold its socket, and a
 * graceful shutdown, far too long.
 */
export const CLOSE_GRACE_MS = 2000

/** Begin a graceful close with `close()`; `kill()` cuts it if `closable` has not emitted 'close' within the grace. */
export function closeWithGrace(closable: { once(event: 'close', fn: () => void): unknown }, close: () => void, kill: () => void): void {
  close()
  const timer = setTimeout(kill, CLOSE_GRACE_MS)
  timer.unref()
  closable.once('close', () => clearTimeout(timer))
}
