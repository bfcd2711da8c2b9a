// What the broker knows of a peer from its socket alone (no HTTP request read, or none at all: TCP, TLS, a stalled
// upgrade): its address and the transport, for a connection or a failure record.
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
