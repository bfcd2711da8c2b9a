// The hot settings as the broker core and the stores run on them. The settings schema (src/settings/schema.ts) is
// the source of their defaults, ranges and documentation, and is checked against this type at compile time.

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
}

/** What the broker runs on: an immutable copy of one stored version. */
export interface SettingsSnapshot {
  readonly version: number
  readonly values: Readonly<SettingsValues>
}
