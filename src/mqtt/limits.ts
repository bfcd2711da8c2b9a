// Fixed per-connection bounds of the broker (not hot settings): what one client may cost at most.

/** QoS 1/2 messages in flight to one client at most (also capped by its v5 Receive Maximum). */
export const MAX_INFLIGHT = 1000
/** QoS 1/2 messages queued for one client (offline, or over its Receive Maximum) at most; more are dropped. */
export const MAX_QUEUED = 1000
/** While the transport pushes back, outgoing bytes buffered at most before QoS 0 messages are dropped. */
export const MAX_BUFFERED_BYTES = 1 << 20
/** v5 Receive Maximum the broker advertises: QoS 2 PUBLISHes a client may have waiting for PUBREL. */
export const RECEIVE_MAXIMUM = 1000
/** v5 Topic Alias Maximum the broker advertises (client -> server aliases). */
export const TOPIC_ALIAS_MAXIMUM = 64
