// The one way a failure event is built: from what the transport knew of the peer (ConnectionMeta), what the
// connection had got to, and the words for a human. Used by connections and for refused WebSocket upgrades.
import type { ConnectionMeta } from '../contracts/connection.ts'
import type { FailureEvent } from '../contracts/failure.ts'

/** What the connection knew when it failed (the peer's facts come from its meta). */
export type FailureFacts = Omit<FailureEvent,
  'occurredAt' | 'transport' | 'remoteAddress' | 'remotePort' | 'userAgent' | 'origin' | 'subprotocol' | 'durationMs' | 'settingsVersion'>

export function failureEvent(meta: ConnectionMeta, settingsVersion: number, facts: FailureFacts): FailureEvent {
  const now = Date.now()
  return {
    ...facts,
    occurredAt: now,
    transport: meta.transport,
    remoteAddress: meta.remoteAddress,
    remotePort: meta.remotePort,
    userAgent: meta.userAgent,
    origin: meta.origin,
    subprotocol: meta.subprotocol,
    durationMs: now - meta.openedAt,
    settingsVersion,
  }
}
