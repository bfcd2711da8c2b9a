// What crosses between a transport adapter and the broker core for one connection, and the live-connection view
// the admin API shows. The core is written against these; adapters (WebSocket today) implement Transport.

/** What the core needs of a connection's byte transport (a WebSocket, a TCP socket, any duplex stream). */
export interface Transport {
  /** Send bytes; returns false when the transport's buffer is over its high-water mark. */
  write(data: Buffer): boolean
  /** Close after flushing what was written. */
  end(): void
  /** Close now. */
  destroy(): void
  /** Stop reading from the peer (bytes wait in the kernel, the peer's sends slow down); resume() reads again. */
  pause(): void
  resume(): void
}

/** How a client reached the broker: MQTT over WebSocket (plain or TLS), or over TCP (plain or TLS). */
export const TRANSPORTS = ['ws', 'wss', 'tcp', 'tls'] as const
export type TransportKind = (typeof TRANSPORTS)[number]

/** Facts about the peer known before any MQTT byte, from the transport's handshake. */
export interface ConnectionMeta {
  transport: TransportKind
  remoteAddress: string | null
  remotePort: number | null
  userAgent: string | null
  origin: string | null
  subprotocol: string | null
  /** WebSocket: the request path with its query string (timeout profiles match it); absent for TCP and TLS */
  path?: string | null
  /** epoch ms when the socket was accepted (connectTimeoutMs runs from here) */
  openedAt: number
}

/** What the transport adapter calls on the core for one connection. */
export interface ConnectionInput {
  /** Bytes from the peer: any split, any number of packets per chunk. */
  push(chunk: Buffer): void
  /** The peer sent a WebSocket text frame (a protocol error for MQTT). */
  textFrame(): void
  /** The transport closed (by the peer, or after the core asked). */
  closed(detail?: string): void
  /** A transport-level error (e.g. an invalid WebSocket frame). */
  error(err: Error): void
  /** The transport refused a message over `limit` bytes before buffering it (a WebSocket message too large). */
  messageTooLarge(limit: number): void
  /** The transport can take more writes again (for backpressure). */
  drained(): void
  /** No complete CONNECT yet: the transport bounds what it buffers for this connection by beforeConnectLimit. */
  readonly awaitingConnect: boolean
  /** The transport received `bytes` (over beforeConnectLimit) without a complete CONNECT: the connection ends. */
  tooMuchBeforeConnect(bytes: number): void
}

/** One live client, as `GET /api/connections` shows it. */
export interface LiveConnection {
  id: number
  transport: TransportKind
  clientId: string
  username: string | null
  remoteAddress: string | null
  remotePort: number | null
  userAgent: string | null
  protocolVersion: number
  /** keepalive in force after server policy, seconds (0 = none) */
  keepaliveSec: number
  /** the client's own request, seconds */
  requestedKeepaliveSec: number
  /** ms of silence after which the connection is dropped (null = never) */
  keepaliveTimeoutMs: number | null
  connectedAt: string
  lastPacketAt: string
  packetsReceived: number
  packetsSent: number
  subscriptions: number
  /** what the ACL refused this connection so far */
  aclDenied: { publish: number; subscribe: number; deliver: number }
  /** the timeout profile it runs under, null = the global values */
  profile: string | null
}
