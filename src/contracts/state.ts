// The MQTT state that outlives a connection, and the two interfaces it is kept behind: RetainedStore (the last
// retained message per topic) and SessionStore (MQTT sessions: subscriptions, queued and in-flight QoS 1/2 messages,
// QoS 2 ids awaiting PUBREL, a pending Will). The core keeps its working state in memory and tells the store of each
// change; a durable store (src/state/, SQLite) writes those changes behind, a clustered one may share them. Reads at
// CONNECT (resume) and SUBSCRIBE (retained) may be asynchronous: the core holds the connection's packets meanwhile.

export type QoS = 0 | 1 | 2

/** v5 PUBLISH properties forwarded to subscribers unchanged [MQTT-3.3.2-4, -15, -17, -20]. */
export interface ForwardedProperties {
  payloadFormatIndicator?: boolean
  contentType?: string
  responseTopic?: string
  correlationData?: Buffer
  userProperties?: Record<string, string | string[]>
}

/** An application message inside the broker: what a PUBLISH or a Will carries, independent of who receives it. */
export interface Message {
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
  /** v5 properties passed through, or null */
  properties: ForwardedProperties | null
  /** epoch ms after which the message is not delivered (v5 Message Expiry Interval); 0 = never */
  expiresAt: number
  /** client id of the publisher (for No Local), null for messages the broker makes */
  from: string | null
  /**
   * Cluster mode: the message's id in the cluster (the publishing node's boot and its sequence), kept with queued
   * and in-flight entries, so that messages read again for a dead node's sessions skip those they hold
   */
  id?: string
}

/** The Will of a connection, published when it ends without a normal DISCONNECT [MQTT-3.1.2-8]. */
export interface Will {
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
  properties: ForwardedProperties | null
  /** v5 Message Expiry Interval of the Will, seconds (undefined = none) */
  expirySec: number | undefined
  /** v5 Will Delay Interval, seconds */
  delaySec: number
}

/** What one subscription of a client asks for. */
export interface Subscription {
  clientId: string
  /** the filter as the client sent it, `$share/group/` prefix included */
  filter: string
  qos: QoS
  /** v5 No Local: not delivered to the client that published it */
  noLocal: boolean
  /** v5 Retain As Published */
  retainAsPublished: boolean
  /** v5 Retain Handling 0, 1 or 2 */
  retainHandling: number
  /** v5 subscription identifiers (at most one per subscription), empty when none */
  subscriptionIds: number[]
}

/** A message waiting for the client to come back or for room in its Receive Maximum window. */
export interface Queued {
  /** the entry's number in its session, increasing: its key in a store, and the order of resending */
  seq: number
  message: Message
  qos: QoS
  retain: boolean
  subscriptionIds: number[]
}

/** A QoS 1/2 message sent to the client and not yet fully acknowledged (also the fields it is encoded with). */
export interface Outgoing {
  /** the seq of the Queued entry it was, or a new one: one entry moves from the queue to the wire */
  seq: number
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
  /** the next Queued/Outgoing seq */
  nextSeq: number
  /** seconds the session outlives its connection (0 = ends with it, 0xFFFFFFFF = never expires) */
  expiryIntervalSec: number
  /** epoch ms its last connection ended; null while a connection holds it */
  disconnectedAt: number | null
  /**
   * The Will that is published if the connection ends without DISCONNECT (while connected), or that waits for its
   * delay (after it ended); null when there is none.
   */
  will: Will | null
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
    nextSeq: 1,
    expiryIntervalSec,
    disconnectedAt: null,
    will: null,
  }
}

/** A queued or in-flight entry of a session (an Outgoing has a packet id). */
export type SessionEntry = Queued | Outgoing

export const isOutgoing = (e: SessionEntry): e is Outgoing => (e as Outgoing).packetId !== undefined

/**
 * The MQTT sessions of client ids, online and offline. The working state is the Session objects the store hands
 * out; the core mutates them and then tells the store what changed (the `saved*` / `dropped*` notes), so that a
 * durable store can write it behind. The in-memory store has nothing to do on those notes.
 */
export interface SessionStore {
  /** The working session of a client id, if this process holds it. */
  get(clientId: string): Session | undefined
  /**
   * At CONNECT: the session of a client id wherever it is kept (a clustered store may fetch it), now held here.
   * The core keeps the connection's later packets in order while a Promise is pending.
   */
  resume(clientId: string): Session | undefined | Promise<Session | undefined>
  /** Hold a new session (replacing none: the core deletes an old one first). */
  set(session: Session): void
  /** The session is over: it and everything it held are dropped. */
  delete(clientId: string): void
  /** Every session held, online and offline. */
  all(): IterableIterator<Session>
  readonly size: number
  /** The session's own fields changed: expiry, disconnectedAt, Will, QoS 2 ids received. */
  savedSession(session: Session): void
  /** A subscription of the session was added, replaced or removed (read from session.subscriptions). */
  savedSubscription(session: Session, filter: string): void
  /** An entry was queued, sent (it became an Outgoing) or moved on (PUBREC received). */
  savedEntry(session: Session, entry: SessionEntry): void
  /** An entry is done: acknowledged, dropped, expired. */
  droppedEntry(session: Session, entry: SessionEntry): void
  /** Everything noted so far is written (durable stores); resolves at once for the in-memory one. */
  flush(): Promise<void>
  /**
   * Clustered stores: another process holds this session now. Its changes noted so far are written, then it is
   * dropped from this process's memory, not from the store.
   */
  forget?(clientId: string): Promise<void>
  /** Clustered stores: another process holds this session and writes it now: dropped from memory, nothing written. */
  discard?(clientId: string): void
  /**
   * Clustered stores: resolves when no take-up is still reading kept messages for this session (they reach it through
   * its routes, so a release waits for this before the routes go).
   */
  settled?(clientId: string): Promise<void>
}

export interface RetainedLimits {
  maxMessages: number
  maxBytes: number
}

/** One page of retained messages, by topic. */
export interface RetainedPage {
  items: Message[]
  /** the topic to pass as `after` for the next page, null at the end */
  next: string | null
}

export interface RetainedStore {
  /**
   * Set the retained message of its topic; an empty payload clears it [MQTT-3.3.1-10, -11]. Returns false, and
   * changes nothing, when a new topic would take the store over `limits`.
   */
  set(message: Message, limits: RetainedLimits): boolean
  /** Retained messages whose topic matches `filter` (expired ones are dropped on the way); through an index. */
  match(filter: string, now: number): Message[] | Promise<Message[]>
  /** The retained message of one topic. */
  get(topic: string): Message | undefined
  /** Retained messages whose topic starts with `prefix` (a plain string prefix), by topic, after `after`. */
  list(prefix: string, after: string | null, limit: number): RetainedPage
  /** Remove the retained message of one topic; whether there was one. */
  delete(topic: string): boolean
  /** Remove every retained message whose topic starts with `prefix`; how many. */
  deletePrefix(prefix: string): number
  readonly size: number
  /** payload and topic bytes held */
  readonly bytes: number
}

/** What a retained message costs a store: its payload and its topic. */
export const retainedBytes = (m: Message): number => m.payload.length + Buffer.byteLength(m.topic)
