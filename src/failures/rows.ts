// A failure record as the log holds it (buffered Row, stored StoredRow) and how it maps to columns and back:
// the column list, the cutting of client text to its bounds, and the record the API returns.
import type { FailureRecord } from './schema.ts'
import {
  FIRST_BYTES_MAX, MAX_HEADER_CHARS, type FailureEvent, type FailurePhase, type FailureReason,
} from '../contracts/failure.ts'
import { iso } from './time.ts'
import { TRANSPORTS, type TransportKind } from '../contracts/connection.ts'

/** A stored record as SQLite holds it: times in epoch ms. */
export type StoredRow = Omit<FailureRecord, 'occurredAt' | 'lastFoldedAt' | 'reason' | 'phase' | 'transport'> & {
  occurredAt: number
  lastFoldedAt: number | null
  reason: FailureReason
  phase: FailurePhase
  transport: TransportKind
}

/** A record waiting in the buffer, or a written summary that further failures may still fold into. */
export type Row = Omit<StoredRow, 'id'> & {
  id: number | null
  state: 'pending' | 'written' | 'dropped'
}

/** Each stored field's column (migrations/002, 005, 009, 011, 012): the one list the INSERT and the SELECTs are built from. */
export const COLUMN_OF = {
  occurredAt: 'occurred_at', transport: 'transport', reason: 'reason', phase: 'phase', clientId: 'client_id', username: 'username',
  protocolVersion: 'protocol_version', keepaliveSec: 'keepalive_sec', remoteAddress: 'remote_address',
  remotePort: 'remote_port', userAgent: 'user_agent', origin: 'origin', subprotocol: 'subprotocol',
  durationMs: 'duration_ms', bytesReceived: 'bytes_received', packetsReceived: 'packets_received',
  firstBytesHex: 'first_bytes_hex', detail: 'detail', hint: 'hint', settingsVersion: 'settings_version',
  brokerLagMs: 'broker_lag_ms', profile: 'profile', node: 'node',
  foldedCount: 'folded_count', lastFoldedAt: 'last_folded_at',
} as const satisfies Record<Exclude<keyof StoredRow, 'id'>, string>
export const FIELDS = Object.keys(COLUMN_OF) as (keyof typeof COLUMN_OF)[]

/** SELECT list giving a StoredRow. */
export const COLUMNS = ['id', ...FIELDS.map((f) => (COLUMN_OF[f] === f ? f : `${COLUMN_OF[f]} AS ${f}`))].join(', ')

/** Inserts a Row as it is: named parameters bind by name, and its other keys (id, state) are ignored. */
export const INSERT_ROW = `INSERT INTO failures (${FIELDS.map((f) => COLUMN_OF[f]).join(', ')})
    VALUES (${FIELDS.map((f) => `@${f}`).join(', ')})`

/** Inserts a record of another node, by its id in PostgreSQL; skipped when one with that id is held already. */
export const INSERT_FOREIGN_ROW = `INSERT OR IGNORE INTO failures (${FIELDS.map((f) => COLUMN_OF[f]).join(', ')}, pg_id)
    VALUES (${FIELDS.map((f) => `@${f}`).join(', ')}, @pgId)`

// Client-controlled and free text is cut to a bound before it is held in memory or stored.
const MAX_ID_CHARS = 256
const MAX_TEXT_CHARS = 2000

const text = (v: unknown, max: number): string | null =>
  typeof v === 'string' ? (v.length > max ? v.slice(0, max) : v) : v == null ? null : text(String(v), max)
const int = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : null)
/** A finite number, or 0. */
export const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)

/** The bound of a node's id (NODE_ID allows 64 characters). */
export const MAX_NODE_CHARS = 64

/** The row to buffer for an event: every field checked and cut to its bound; `node` when the event names none. */
export const toRow = (e: FailureEvent, occurredAt: number, node: string): Row => ({
  occurredAt,
  transport: (TRANSPORTS as readonly string[]).includes(e.transport) ? e.transport : 'ws',
  reason: e.reason,
  phase: e.phase,
  clientId: text(e.clientId, MAX_ID_CHARS),
  username: text(e.username, MAX_ID_CHARS),
  protocolVersion: int(e.protocolVersion),
  keepaliveSec: int(e.keepaliveSec),
  remoteAddress: text(e.remoteAddress, 64),
  remotePort: int(e.remotePort),
  userAgent: text(e.userAgent, MAX_HEADER_CHARS),
  origin: text(e.origin, MAX_HEADER_CHARS),
  subprotocol: text(e.subprotocol, 128),
  durationMs: num(e.durationMs),
  bytesReceived: int(e.bytesReceived) ?? 0,
  packetsReceived: int(e.packetsReceived) ?? 0,
  firstBytesHex: text(e.firstBytesHex, FIRST_BYTES_MAX * 2) ?? '',
  detail: text(e.detail, MAX_TEXT_CHARS) ?? '',
  hint: text(e.hint, MAX_TEXT_CHARS) ?? '',
  settingsVersion: int(e.settingsVersion) ?? 0,
  brokerLagMs: int(e.brokerLagMs),
  profile: text(e.profile, 64),
  node: text(e.node, MAX_NODE_CHARS) ?? node,
  foldedCount: 0,
  lastFoldedAt: null,
  id: null,
  state: 'pending',
})

/** The record the API returns: times as ISO strings. */
export const toRecord = (r: StoredRow | Row, id: number): FailureRecord => ({
  id,
  occurredAt: iso(r.occurredAt),
  transport: r.transport,
  reason: r.reason,
  phase: r.phase,
  clientId: r.clientId,
  username: r.username,
  protocolVersion: r.protocolVersion,
  keepaliveSec: r.keepaliveSec,
  remoteAddress: r.remoteAddress,
  remotePort: r.remotePort,
  userAgent: r.userAgent,
  origin: r.origin,
  subprotocol: r.subprotocol,
  durationMs: r.durationMs,
  bytesReceived: r.bytesReceived,
  packetsReceived: r.packetsReceived,
  firstBytesHex: r.firstBytesHex,
  detail: r.detail,
  hint: r.hint,
  settingsVersion: r.settingsVersion,
  brokerLagMs: r.brokerLagMs,
  profile: r.profile,
  node: r.node,
  foldedCount: r.foldedCount,
  lastFoldedAt: r.lastFoldedAt === null ? null : iso(r.lastFoldedAt),
})
