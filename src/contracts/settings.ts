// The hot settings as the broker core and the stores run on them. The settings schema (src/settings/schema.ts) is
// the source of their defaults, ranges and documentation, and is checked against this type at compile time.
import type { TransportKind } from './connection.ts'

export interface SettingsValues {
  connectTimeoutMs: number
  keepaliveMultiplier: number
  maxKeepaliveSec: number
  serverKeepaliveSec: number | null
  allowZeroKeepalive: boolean
  maxPacketSize: number
  maxConnections: number
  failureLogMaxRows: number
  failureLogMaxAgeDays: number
  allowAnonymous: boolean
  /** null = any Origin (and requests without one) */
  allowedOrigins: string[] | null
  aclDefault: 'allow' | 'deny'
  aclRevealDenials: boolean
  maxSessionExpirySec: number
  maxSessions: number
  maxSubscriptionsPerClient: number
  maxTopicLevels: number
  maxTopicLength: number
  maxRetainedMessages: number
  maxRetainedBytes: number
  maxQueuedMessages: number
  maxQueuedBytes: number
  maxOutputBytes: number
  slowConsumerTimeoutMs: number
  maxPendingConnects: number
  /** seconds between two rounds of `$SYS/` messages; 0 = none */
  sysIntervalSec: number
  /** timeout profiles, first match wins; none matching = the values above */
  profiles: TimeoutProfile[]
}

/** The settings a timeout profile may override: deadlines, keepalive policy and the per-client quotas. */
export const PROFILE_KEYS = [
  'connectTimeoutMs', 'keepaliveMultiplier', 'maxKeepaliveSec', 'serverKeepaliveSec', 'allowZeroKeepalive',
  'maxPacketSize', 'maxSessionExpirySec', 'maxSubscriptionsPerClient', 'maxQueuedMessages', 'maxQueuedBytes',
  'maxOutputBytes',
] as const
export type ProfileKey = (typeof PROFILE_KEYS)[number]

/** A profile's overrides: some of the PROFILE_KEYS, each within its setting's own range. */
export interface ProfileOverrides {
  connectTimeoutMs?: number
  keepaliveMultiplier?: number
  maxKeepaliveSec?: number
  serverKeepaliveSec?: number | null
  allowZeroKeepalive?: boolean
  maxPacketSize?: number
  maxSessionExpirySec?: number
  maxSubscriptionsPerClient?: number
  maxQueuedMessages?: number
  maxQueuedBytes?: number
  maxOutputBytes?: number
}

/**
 * When a profile applies: every condition given must hold (each a list of alternatives, any one of which is enough);
 * no condition = every connection. Globs: `*` any run of characters, `?` one character.
 */
export interface ProfileMatch {
  transport?: TransportKind[]
  /** remote address in one of these blocks (IPv4 or IPv6, "10.0.0.0/8", a bare address = one host) */
  cidr?: string[]
  /** the WebSocket Origin header: exact or glob, case-insensitive; a connection without one never matches */
  origin?: string[]
  /** the User-Agent header, glob */
  userAgent?: string[]
  /** the WebSocket subprotocol the connection speaks ("mqtt", "mqttv3.1") */
  subprotocol?: string[]
  /** the WebSocket request path with its query string, glob */
  path?: string[]
  /** client id, glob ("sensor-*" is a prefix); checked at CONNECT only */
  clientId?: string[]
  /** the authenticated MQTT username, glob; checked at CONNECT only (an anonymous client never matches) */
  username?: string[]
}

/** A named set of overrides and the connections it applies to. */
export interface TimeoutProfile {
  name: string
  match: ProfileMatch
  overrides: ProfileOverrides
}

/** What the broker runs on: an immutable copy of one stored version. */
export interface SettingsSnapshot {
  readonly version: number
  readonly values: Readonly<SettingsValues>
}
