// The broker's counters and gauges, as the metrics plugin reads them on scrape (cheaper than an event per packet).
import type { BrokerStats } from './types.ts'
import type { Router } from './router.ts'
import type { RetainedStore } from './retained.ts'
import type { SessionStore } from './session.ts'
import { FAILURE_REASONS, type FailureReason } from '../contracts/failure.ts'
import { KeepaliveGaps } from './gaps.ts'

/**
 * The counters the connections bump, and the gauges read from the sets and stores they count, so that they cannot
 * drift from them (expired retained messages leave the store when a subscribe finds them: a copied count missed that).
 * A class, not an object literal with getters: such a literal is a dictionary-mode object, slow for the counters
 * bumped per packet.
 */
export class Stats implements BrokerStats {
  connectsTotal = 0
  packetsReceived = 0
  packetsSent = 0
  bytesReceived = 0
  bytesSent = 0
  messagesPublished = 0
  messagesDelivered = 0
  messagesDropped = 0
  retainedRefused = 0
  aclDeniedPublish = 0
  aclDeniedSubscribe = 0
  aclDeniedDeliver = 0
  /** how late connected clients' packets come relative to their keepalive (./gaps.ts) */
  readonly keepaliveGaps = new KeepaliveGaps()
  /** failures since start, by reason */
  readonly failures = Object.fromEntries(FAILURE_REASONS.map((r) => [r, 0])) as Record<FailureReason, number>
  readonly #open: ReadonlySet<unknown>
  readonly #clients: ReadonlyMap<string, unknown>
  readonly #router: Router
  readonly #retained: RetainedStore
  readonly #sessions: SessionStore

  constructor(
    open: ReadonlySet<unknown>, clients: ReadonlyMap<string, unknown>, router: Router, retained: RetainedStore,
    sessions: SessionStore,
  ) {
    this.#open = open
    this.#clients = clients
    this.#router = router
    this.#retained = retained
    this.#sessions = sessions
  }

  /** Sessions held, online or offline (a connected client always has one). */
  get sessions(): number {
    return this.#sessions.size
  }

  /** QoS 1/2 messages waiting in sessions' queues (read on scrape: one pass over the sessions). */
  get queuedMessages(): number {
    let n = 0
    for (const s of this.#sessions.all()) n += s.queue?.length ?? 0
    return n
  }

  get connectionsOpen(): number {
    return this.#open.size
  }

  get clientsConnected(): number {
    return this.#clients.size
  }

  get retainedMessages(): number {
    return this.#retained.size
  }

  get retainedBytes(): number {
    return this.#retained.bytes
  }

  get subscriptions(): number {
    return this.#router.size
  }
}
