// The MQTT session: what outlives a connection (subscriptions, unacknowledged outgoing messages, messages queued
// for an offline persistent client, QoS 2 packet ids awaiting PUBREL). Behind a small interface so that a durable or
// clustered store can replace the in-memory default. One client connection is a Connection (./connection.ts).
import type { QoS } from 'mqtt-packet'
import type { Message } from './message.ts'
import type { Subscription } from './router.ts'

/** A QoS 1/2 message sent to the client and not yet fully acknowledged (also the PublishFields it is encoded with). */
export interface Outgoing {
  packetId: number
  message: Message
  qos: 1 | 2
  retain: boolean
  /** set once it has been sent again after a reconnect [MQTT-4.4.0-1] */
  dup: boolean
  subscriptionIds: number[]
  /** 'publish': waiting PUBACK/PUBREC; 'pubrel': PUBREC received, PUBREL sent, waiting PUBCOMP */
  stage: 'publish' | 'pubrel'
  /** resumed with a session but not yet sent again: the new connection's Receive Maximum had no room for it */
  unsent: boolean
}

/** A message waiting for the client to come back or for room in its Receive Maximum window. */
export interface Queued {
  message: Message
  qos: QoS
  retain: boolean
  subscriptionIds: number[]
}

/** Session Expiry Interval meaning "never expires" (v5 3.1.2.11.2) */
export const NEVER_EXPIRES = 0xffffffff

export interface Session {
  readonly clientId: string
  /** by filter as sent (including `$share/group/`) */
  readonly subscriptions: Map<string, Subscription>
  /** by packet id; created on first use */
  inflight: Map<number, Outgoing> | null
  queue: Queued[] | null
  /** payload bytes of the queued messages (bounded by maxQueuedBytes) */
  queuedBytes: number
  /** QoS 2 PUBLISH packet ids received, PUBREC sent, waiting PUBREL */
  incomingQos2: Set<number> | null
  nextPacketId: number
  /** seconds the session outlives its connection (0 = ends with it, 0xFFFFFFFF = never expires) */
  expiryIntervalSec: number
}

export function newSession(clientId: string, expiryIntervalSec: number): Session {
  return {
    clientId,
    subscriptions: new Map(),
    inflight: null,
    queue: null,
    queuedBytes: 0,
    incomingQos2: null,
    nextPacketId: 1,
    expiryIntervalSec,
  }
}

export interface SessionStore {
  get(clientId: string): Session | undefined
  set(session: Session): void
  delete(clientId: string): void
  readonly size: number
}

export class MemorySessionStore implements SessionStore {
  readonly #byClient = new Map<string, Session>()

  get size(): number {
    return this.#byClient.size
  }

  get(clientId: string): Session | undefined {
    return this.#byClient.get(clientId)
  }

  set(session: Session): void {
    this.#byClient.set(session.clientId, session)
  }

  delete(clientId: string): void {
    this.#byClient.delete(clientId)
  }
}
