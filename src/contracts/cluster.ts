// How the broker core reaches the other nodes of a cluster (cluster mode: NATS_URL and DATABASE_URL set). The core
// routes every message to its own subscribers first, without a network hop, and hands it to the link for the other
// nodes; the link tells the core what arrives from them. One node with no cluster has no link.
import type { Message, Session } from './state.ts'

export interface ClusterLink {
  /** this node's id (NODE_ID) */
  readonly nodeId: string
  /**
   * A message published on this node (from a client or a Will, never `$SYS/`): for the subscribers of the other
   * nodes. Called before the broker routes it here; the link may set its `id`.
   */
  publish(msg: Message): void
  /**
   * The local router holds its first subscription to `filter` (present: true) or lost its last one (false); a shared
   * subscription's filter keeps its `$share/group/` prefix.
   */
  interest(filter: string, present: boolean): void
}

/** What the core offers the link: messages from other nodes, and sessions another node takes. */
export interface ClusterPeer {
  /** A message published on another node: to this node's subscribers (not stored again: retained state is shared). */
  routeRemote(msg: Message): void
  /**
   * A message for shared subscription `$share/group/filter` that the cluster gave this node: to one of its members
   * here (the link keeps one NATS queue group per shared subscription, so one node in the cluster gets it).
   */
  routeShared(sharedFilter: string, msg: Message): void
  /**
   * Another node took the session of `clientId`: its connection here (if any) is taken over (v5: DISCONNECT 0x8E),
   * its routes leave this node, and it is dropped from memory once its last changes are written (not deleted).
   * `write: false`: the other node may already be writing it (it took the client id without hearing from this node):
   * dropped without writing anything.
   */
  releaseSession(clientId: string, byNode: string, opts?: { write?: boolean }): Promise<void>
  /**
   * Take up sessions read from the shared store (a dead node's): as after a restart, their subscriptions route here,
   * their expiry counts from `endedAt`, their Wills are published.
   */
  adoptSessions(sessions: Session[], endedAt: number): { sessions: number; wills: number }
  /** A message again, to the sessions held here that match it and for whose client id `to` says yes. */
  redeliver(msg: Message, to: (clientId: string) => boolean): void
}
