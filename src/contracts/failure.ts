// The connection-failure event: what the broker core emits and the failure log stores. The log's TypeBox schema
// (src/failures/schema.ts) is checked against these types at compile time.
import type { TransportKind } from './connection.ts'

export const FAILURE_REASONS = [
  'connect_timeout',
  'closed_before_connect',
  'keepalive_timeout',
  'connection_lost',
  'protocol_error',
  'connect_rejected',
  'packet_too_large',
  'websocket_error',
  'taken_over',
  'auth_failed',
  'slow_consumer',
  'tls_error',
] as const
export type FailureReason = (typeof FAILURE_REASONS)[number]

export const FAILURE_PHASES = ['handshake', 'awaiting_connect', 'connected'] as const
export type FailurePhase = (typeof FAILURE_PHASES)[number]

/** Bytes kept of what a failed connection sent first (shown as a hex/ASCII dump). */
export const FIRST_BYTES_MAX = 64

/** Client-controlled header values (user agent, origin, subprotocols) are kept to at most this many characters. */
export const MAX_HEADER_CHARS = 512

/** One failed connection, as the core emits it. `occurredAt` is epoch milliseconds. */
export interface FailureEvent {
  occurredAt: number
  transport: TransportKind
  reason: FailureReason
  phase: FailurePhase
  clientId: string | null
  username: string | null
  protocolVersion: number | null
  keepaliveSec: number | null
  remoteAddress: string | null
  remotePort: number | null
  userAgent: string | null
  origin: string | null
  subprotocol: string | null
  /** since the socket opened */
  durationMs: number
  bytesReceived: number
  packetsReceived: number
  /** at most FIRST_BYTES_MAX bytes, hex */
  firstBytesHex: string
  /** what happened, in words */
  detail: string
  /** what an operator can do */
  hint: string
  settingsVersion: number
  /** the largest stall of the broker's own event loop in the seconds before (0 = it kept up); null in older records */
  brokerLagMs: number | null
  /** the timeout profile the connection ran under (before CONNECT: the one matched when it opened), null = none */
  profile: string | null
  /**
   * the node it happened on (NODE_ID in cluster mode, hostname:port otherwise); the core leaves it out and the
   * failure log fills in its own node
   */
  node?: string
}
