// The broker's events and counters, as the broker plugin and the metrics plugin read them. What crosses to the
// transports and the stores is in src/contracts/.
import type { SettingsSnapshot } from '../contracts/settings.ts'
import type { FailureEvent, FailureReason } from '../contracts/failure.ts'
import type { KeepaliveGaps } from './gaps.ts'

export interface ConnectedEvent {
  clientId: string
  protocolVersion: number
  keepaliveSec: number
  remoteAddress: string | null
  /** ms from socket open until the complete CONNECT had arrived */
  connectLatencyMs: number
  sessionPresent: boolean
}

export interface DisconnectedEvent {
  clientId: string
  /** 'disconnect' = clean DISCONNECT; 'failure' = a failure was emitted; 'shutdown' = server closing */
  how: 'disconnect' | 'failure' | 'shutdown'
}

/** Counters the metrics plugin reads on scrape (cheaper than an event per packet). */
export interface BrokerStats {
  connectionsOpen: number
  clientsConnected: number
  connectsTotal: number
  packetsReceived: number
  packetsSent: number
  bytesReceived: number
  bytesSent: number
  messagesPublished: number
  messagesDelivered: number
  retainedMessages: number
  /** payload and topic bytes of the retained messages */
  retainedBytes: number
  subscriptions: number
  /** messages not delivered: a slow client's QoS 0 over its buffer bound, a full offline queue, over its Maximum Packet Size */
  messagesDropped: number
  /** retained messages for a new topic not stored: the store was at maxRetainedMessages or maxRetainedBytes */
  retainedRefused: number
  /** PUBLISHes the ACL refused */
  aclDeniedPublish: number
  /** SUBSCRIBE filters the ACL refused */
  aclDeniedSubscribe: number
  /** deliveries the ACL stopped (a subscription that a later rule forbids) */
  aclDeniedDeliver: number
  /** failures since start, by reason */
  readonly failures: Record<FailureReason, number>
  /** late gaps (silence / keepalive) of connected clients and of those dropped for keepalive_timeout, since start */
  readonly keepaliveGaps: KeepaliveGaps
  /** sessions held, online and offline */
  readonly sessions: number
  /** QoS 1/2 messages waiting in sessions' queues */
  readonly queuedMessages: number
}

export interface BrokerEvents {
  failure: [FailureEvent]
  connected: [ConnectedEvent]
  disconnected: [DisconnectedEvent]
  settingsApplied: [SettingsSnapshot]
}
