// The connection-failure record as the log stores it and the API returns it: the core's failure event
// (src/contracts/failure.ts) with the log's own fields. Checked against that contract at compile time.
import Type from 'typebox'
import {
  FAILURE_PHASES, FAILURE_REASONS, FIRST_BYTES_MAX, type FailureEvent, type FailureReason,
} from '../contracts/failure.ts'
import type { Assert, Same } from '../contracts/same.ts'
import { TRANSPORTS } from '../contracts/connection.ts'

/** `T` or null. */
export const Nullable = <T extends Type.TSchema>(t: T) => Type.Union([t, Type.Null()])

export const FailureRecord = Type.Object({
  id: Type.Integer(),
  occurredAt: Type.String({ format: 'date-time' }),
  transport: Type.Enum(TRANSPORTS),
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
  brokerLagMs: Nullable(Type.Integer({ description: "the largest stall of the broker's own event loop in the seconds before, ms (0 = it kept up; null in records from before it was kept)" })),
  profile: Nullable(Type.String({ description: 'the timeout profile the connection ran under (before CONNECT: the one matched when it opened); null = the global values, or a record from before profiles' })),
  node: Type.String({ description: 'the node it happened on (NODE_ID in cluster mode; hostname:port on one node)' }),
  foldedCount: Type.Integer({ description: 'similar failures from the same source folded into this record (0 = none)' }),
  lastFoldedAt: Nullable(Type.String({ format: 'date-time', description: 'when the last folded failure happened' })),
})
export type FailureRecord = Type.Static<typeof FailureRecord>

/**
 * A record is the core's event (occurredAt as an ISO string) with the id, foldedCount and lastFoldedAt the log
 * assigns, and always a node (the core leaves it out; the log fills in its own).
 */
export type RecordIsTheEvent = Assert<Same<
  Omit<FailureRecord, 'id' | 'occurredAt' | 'foldedCount' | 'lastFoldedAt'>,
  Required<Omit<FailureEvent, 'occurredAt'>>
>>

// ---- what the failure log answers (src/failures/store.ts), and the API returns as is ----------------------------

/** An ISO date-time string. */
export const DateTime = (description?: string) => Type.String({ format: 'date-time', ...(description ? { description } : {}) })

export const FailurePage = Type.Object({
  items: Type.Array(FailureRecord),
  nextCursor: Nullable(Type.Integer({ description: 'pass as `before` for the next page; null on the last page' })),
})
export type FailurePage = Type.Static<typeof FailurePage>

const ReasonCounts = Type.Object(
  Object.fromEntries(FAILURE_REASONS.map((r) => [r, Type.Integer()])) as Record<FailureReason, Type.TInteger>,
)
const PartialReasonCounts = Type.Object(
  Object.fromEntries(FAILURE_REASONS.map((r) => [r, Type.Optional(Type.Integer())])) as Record<FailureReason, Type.TOptional<Type.TInteger>>,
)

export const FailureCounts = Type.Object({
  since: DateTime('start of the first bucket'),
  until: DateTime(),
  bucketSec: Type.Integer(),
  buckets: Type.Array(Type.Object({
    start: DateTime(),
    total: Type.Integer({ description: 'failures, folded (and dropped) ones included' }),
    counts: PartialReasonCounts,
  })),
  totals: ReasonCounts,
  total: Type.Integer(),
  records: Type.Integer({ description: 'rows written for them (a flood summary stands for 1 + foldedCount failures; rows may since have been pruned)' }),
})
export type FailureCounts = Type.Static<typeof FailureCounts>

export const LatencyHistogram = Type.Object({
  since: DateTime(),
  until: DateTime(),
  count: Type.Integer({ description: 'successful connections in the window' }),
  sumMs: Type.Number(),
  meanMs: Nullable(Type.Number()),
  maxMs: Nullable(Type.Number()),
  p50Ms: Nullable(Type.Number({ description: 'upper bound of the bucket holding the percentile (the max for the last bucket)' })),
  p90Ms: Nullable(Type.Number()),
  p99Ms: Nullable(Type.Number()),
  buckets: Type.Array(Type.Object({
    leMs: Nullable(Type.Number({ description: 'upper bound, inclusive; null = above the last bound' })),
    count: Type.Integer({ description: 'not cumulative' }),
  })),
}, { description: 'time from WebSocket open to complete CONNECT of successful connections' })
export type LatencyHistogram = Type.Static<typeof LatencyHistogram>

export const LatencyWhatIf = Type.Object({
  thresholdMs: Type.Number(),
  since: DateTime(),
  until: DateTime(),
  total: Type.Integer({ description: 'successful connections in the window' }),
  slower: Type.Integer({ description: 'certainly took longer than thresholdMs' }),
  slowerMax: Type.Integer({ description: 'at most this many took longer (equal to `slower` on a bucket bound)' }),
}, { description: 'how many successful connections in the window took longer than thresholdMs' })
export type LatencyWhatIf = Type.Static<typeof LatencyWhatIf>

/** The log's own counters since start. recorded = written + folded + dropped + pending. */
export const FailureLogStats = Type.Object({
  recorded: Type.Integer({ description: 'events handed to the log' }),
  written: Type.Integer({ description: 'rows inserted' }),
  folded: Type.Integer({ description: 'events folded into a summary row instead of a row of their own' }),
  dropped: Type.Integer({ description: 'events lost: buffer full, a database error, or after close' }),
  pending: Type.Integer({ description: 'rows waiting for the next flush' }),
  rows: Type.Integer({ description: 'rows in the table (as counted by the log)' }),
  pruned: Type.Integer({ description: 'rows deleted by pruning' }),
  flushes: Type.Integer({ description: 'write transactions committed' }),
  lastFlushMs: Type.Number({ description: 'duration of the last write transaction' }),
  maxFlushMs: Type.Number({ description: 'duration of the longest write transaction' }),
  latencySamples: Type.Integer({ description: 'connect-latency samples recorded' }),
}, { description: 'the failure log\'s own counters since start' })
export type FailureLogStats = Type.Static<typeof FailureLogStats>
