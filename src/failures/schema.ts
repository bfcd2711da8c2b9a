// The connection-failure record: what the broker core emits, what the log stores, what the API returns.
import Type from 'typebox'

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
] as const
export type FailureReason = (typeof FAILURE_REASONS)[number]

export const FAILURE_PHASES = ['handshake', 'awaiting_connect', 'connected'] as const
export type FailurePhase = (typeof FAILURE_PHASES)[number]

/** Bytes kept of what a failed connection sent first (shown as a hex/ASCII dump). */
export const FIRST_BYTES_MAX = 64

/** `T` or null. */
export const Nullable = <T extends Type.TSchema>(t: T) => Type.Union([t, Type.Null()])

export const FailureRecord = Type.Object({
  id: Type.Integer(),
  occurredAt: Type.String({ format: 'date-time' }),
  reason: Type.Enum(FAILURE_REASONS),
  phase: Type.Enum(FAILURE_PHASES),
  clientId: Nullable(Type.String()),
  username: Nullable(Type.String()),
  protocolVersion: Nullable(Type.Integer()),
  keepaliveSec: Nullable(Type.Integer()),
  remoteAddress: Nullable(Type.String()),
  remotePort: Nullable(Type.Integer()),
  userAgent: Nullable(Type.String()),
  origin: Nullable(Type.String()),
  subprotocol: Nullable(Type.String()),
  durationMs: Type.Number({ description: 'since the socket opened' }),
  bytesReceived: Type.Integer(),
  packetsReceived: Type.Integer(),
  firstBytesHex: Type.String({ description: `at most ${FIRST_BYTES_MAX} bytes, hex` }),
  detail: Type.String({ description: 'what happened, in words' }),
  hint: Type.String({ description: 'what an operator can do' }),
  settingsVersion: Type.Integer(),
  foldedCount: Type.Integer({ description: 'similar failures from the same source folded into this record (0 = none)' }),
  lastFoldedAt: Nullable(Type.String({ format: 'date-time', description: 'when the last folded failure happened' })),
})
export type FailureRecord = Type.Static<typeof FailureRecord>

/** What the broker core emits; the log assigns id, foldedCount and lastFoldedAt. occurredAt is epoch milliseconds. */
export type FailureEvent = Omit<FailureRecord, 'id' | 'occurredAt' | 'foldedCount' | 'lastFoldedAt'> & {
  reason: FailureReason
  phase: FailurePhase
  occurredAt: number
}
