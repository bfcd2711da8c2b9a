// Routing between sessions: which subscriptions a published topic reaches. Behind a small interface so that a
// clustered implementation (e.g. on NATS) can replace the in-memory default without touching the handlers.
import type { QoS } from 'mqtt-packet'
import type { Subscription } from '../contracts/state.ts'
import { TopicTrie, parseSharedFilter } from './topics.ts'

/** One delivery target for a published message: a client and what its matching subscriptions ask for. */
export interface Match {
  clientId: string
  qos: QoS
  /** v5 No Local: not delivered to the client that published it */
  noLocal: boolean
  /** v5 Retain As Published */
  retainAsPublished: boolean
  /** subscription identifiers of every matching subscription of this client (v5), empty when none */
  subscriptionIds: number[]
}

/** A subscription is its own Match when it is the only one of its client that matches (the common case). */
export type { Subscription }

export interface Router {
  /** Add or replace `sub` (same client, same filter). Returns whether it is new. */
  add(sub: Subscription): boolean
  remove(clientId: string, filter: string): boolean
  /**
   * Targets for `topic`: at most one per client, one member per shared group (round-robin, preferring a member for
   * which `isOnline` says yes). The array is the router's: read it, never change it.
   */
  match(topic: string, isOnline?: (clientId: string) => boolean): readonly Match[]
  /**
   * Cluster mode: one member of the shared subscription `$share/group/filter` on this node (the cluster picked this
   * node for the message), or null when it has none here.
   */
  pickShared?(sharedFilter: string, isOnline?: (clientId: string) => boolean): Match | null
  readonly size: number
}

interface SharedGroup {
  /** one subscription per client, in the order they joined (an array: picked by index per message, no allocation) */
  members: Subscription[]
  /** round-robin cursor */
  next: number
}

type Entry = Subscription | SharedGroup

/**
 * What the trie gave for one topic: its entries in match order, and, when they are plain subscriptions of distinct
 * clients (no shared group to pick from, nothing to merge), the targets themselves, the same every time.
 */
interface Route {
  entries: Entry[]
  fixed: readonly Match[] | null
}

/** Topics whose routes are remembered (the oldest is forgotten past it). */
const ROUTE_CACHE_MAX = 10_000
const NO_MATCH: readonly Match[] = Object.freeze([])

/**
 * In-memory router on one topic trie; shared groups are one trie entry each, served round-robin. The route of each
 * recently published topic is remembered (a publisher sends to the same few topics again and again), and forgotten
 * whenever a subscription is added, replaced or removed.
 */
export class MemoryRouter implements Router {
  readonly #trie = new TopicTrie<Entry>()
  readonly #routes = new Map<string, Route>()
  /** cluster mode: match() leaves shared groups out (the cluster picks one node per message, then pickShared()) */
  readonly #sharedByCluster: boolean
  #size = 0

  constructor(opts: { sharedByCluster?: boolean } = {}) {
    this.#sharedByCluster = opts.sharedByCluster ?? false
  }

  get size(): number {
    return this.#size
  }

  add(sub: Subscription): boolean {
    this.#routes.clear()
    const shared = parseSharedFilter(sub.filter)
    if (shared == null) {
      const isNew = this.#trie.set(sub.filter, sub.clientId, sub)
      if (isNew) this.#size++
      return isNew
    }
    const key = '$share/' + shared.group
    let group = this.#trie.get(shared.filter, key) as SharedGroup | undefined
    if (group === undefined) {
      group = { members: [], next: 0 }
      this.#trie.set(shared.filter, key, group)
    }
    const at = group.members.findIndex((m) => m.clientId === sub.clientId)
    const isNew = at < 0
    if (isNew) group.members.push(sub)
    else group.members[at] = sub
    if (isNew) this.#size++
    return isNew
  }

  remove(clientId: string, filter: string): boolean {
    this.#routes.clear()
    const shared = parseSharedFilter(filter)
    if (shared == null) {
      const removed = this.#trie.delete(filter, clientId)
      if (removed) this.#size--
      return removed
    }
    const key = '$share/' + shared.group
    const group = this.#trie.get(shared.filter, key) as SharedGroup | undefined
    const at = group === undefined ? -1 : group.members.findIndex((m) => m.clientId === clientId)
    if (group === undefined || at < 0) return false
    group.members.splice(at, 1)
    if (group.members.length === 0) this.#trie.delete(shared.filter, key)
    this.#size--
    return true
  }

  match(topic: string, isOnline?: (clientId: string) => boolean): readonly Match[] {
    const route = this.#routes.get(topic) ?? this.#remember(topic)
    if (route.fixed !== null) return route.fixed
    const out: Match[] = []
    let byClient: Map<string, Match> | null = null
    for (const entry of route.entries) {
      const m: Match = 'members' in entry ? pickMember(entry, isOnline) : entry
      if (out.length === 0) {
        out.push(m)
        continue
      }
      // Overlapping subscriptions of one client: deliver once at the highest QoS [MQTT-3.3.5-1],
      // with every subscription identifier (v5 3.3.4).
      if (byClient === null) {
        byClient = new Map()
        for (const o of out) byClient.set(o.clientId, o)
      }
      const prev = byClient.get(m.clientId)
      if (prev === undefined) {
        byClient.set(m.clientId, m)
        out.push(m)
        continue
      }
      // merged into a copy: the stored subscriptions stay as they are
      const merged: Match = {
        clientId: m.clientId,
        qos: m.qos > prev.qos ? m.qos : prev.qos,
        noLocal: prev.noLocal && m.noLocal,
        retainAsPublished: prev.retainAsPublished || m.retainAsPublished,
        subscriptionIds: m.subscriptionIds.length > 0 ? [...prev.subscriptionIds, ...m.subscriptionIds] : prev.subscriptionIds,
      }
      byClient.set(m.clientId, merged)
      out[out.indexOf(prev)] = merged
    }
    return out
  }

  pickShared(sharedFilter: string, isOnline?: (clientId: string) => boolean): Match | null {
    const shared = parseSharedFilter(sharedFilter)
    if (shared == null) return null
    const group = this.#trie.get(shared.filter, '$share/' + shared.group) as SharedGroup | undefined
    return group === undefined ? null : pickMember(group, isOnline)
  }

  /** Walk the trie for `topic` and keep what it gave. */
  #remember(topic: string): Route {
    const entries: Entry[] = []
    this.#trie.match(topic, (entry) => { if (!this.#sharedByCluster || !('members' in entry)) entries.push(entry) })
    const plain = entries.every((e) => !('members' in e)) && new Set(entries.map((e) => (e as Subscription).clientId)).size === entries.length
    const route: Route = { entries, fixed: entries.length === 0 ? NO_MATCH : plain ? Object.freeze(entries as Subscription[]) : null }
    if (this.#routes.size >= ROUTE_CACHE_MAX) this.#routes.delete(this.#routes.keys().next().value as string)
    this.#routes.set(topic, route)
    return route
  }
}

/** The next member round-robin; an offline member is passed over while an online one exists. */
function pickMember(group: SharedGroup, isOnline?: (clientId: string) => boolean): Subscription {
  const list = group.members
  const n = list.length
  const start = group.next % n
  group.next = (start + 1) % n
  if (isOnline === undefined || isOnline(list[start].clientId)) return list[start]
  for (let k = 1; k < n; k++) {
    const sub = list[(start + k) % n]
    if (isOnline(sub.clientId)) {
      group.next = (start + k + 1) % n
      return sub
    }
  }
  return list[start] // nobody online: the one whose turn it was queues it
}
