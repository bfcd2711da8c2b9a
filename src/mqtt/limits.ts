// Fixed per-connection bounds of the broker (not hot settings): what one client may cost at most.

/** QoS 1/2 messages in flight to one client at most (also capped by its v5 Receive Maximum). */
export const MAX_INFLIGHT = 1000
/**
 * A CONNECT is at most this large (and maxPacketSize): what a socket may make the broker hold before it has said who
 * it is. Room for the largest client id, username, password and Will that real clients send (a Will payload of
 * 64 KiB included).
 */
export const MAX_CONNECT_BYTES = 256 * 1024
/**
 * How long the broker may take to serve a CONNECT that has arrived whole (a password check off the event loop, a
 * session read from a clustered store: claim, release by the old node, read): past it the client is answered Server
 * busy. The client's own connectTimeoutMs ends when its CONNECT has arrived.
 */
export const SERVE_CONNECT_TIMEOUT_MS = 15_000

/**
 * What a transport may have read from a socket that has not completed its CONNECT: a CONNECT, and room for the
 * transport's own framing and handshake (an HTTP upgrade request, WebSocket frame headers). A transport that buffers
 * partial messages itself (ws does) checks it, so that "at most one CONNECT" holds below the core too.
 */
export const BEFORE_CONNECT_LIMIT = MAX_CONNECT_BYTES + 64 * 1024
/** v5 Receive Maximum the broker advertises: QoS 2 PUBLISHes a client may have waiting for PUBREL. */
export const RECEIVE_MAXIMUM = 1000
/** v5 Topic Alias Maximum the broker advertises (client -> server aliases). */
export const TOPIC_ALIAS_MAXIMUM = 64
/** Topic aliases the broker assigns per connection at most (server -> client), within the client's own maximum. */
export const OUTBOUND_TOPIC_ALIASES = 64
