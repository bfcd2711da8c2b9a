// Cluster mode: the router as the cluster sees it. Every filter held by this node's sessions is counted, and the
// ClusterLink hears of the first subscription to a filter and of the last one gone, so that the other nodes send
// this node only the messages it has a subscriber for.
import type { ClusterLink } from '../contracts/cluster.ts'
import type { Match, Router, Subscription } from './router.ts'

export class InterestRouter implements Router {
  readonly #inner: Router
  readonly #link: ClusterLink
  /** local subscriptions per filter (shared ones with their `$share/group/`) */
  readonly #counts = new Map<string, number>()

  constructor(inner: Router, link: ClusterLink) {
    this.#inner = inner
    this.#link = link
  }

  get size(): number {
    return this.#inner.size
  }

  add(sub: Subscription): boolean {
    const isNew = this.#inner.add(sub)
    if (isNew) {
      const n = (this.#counts.get(sub.filter) ?? 0) + 1
      this.#counts.set(sub.filter, n)
      if (n === 1) this.#link.interest(sub.filter, true)
    }
    return isNew
  }

  remove(clientId: string, filter: string): boolean {
    const had = this.#inner.remove(clientId, filter)
    if (had) {
      const n = (this.#counts.get(filter) ?? 1) - 1
      if (n > 0) {
        this.#counts.set(filter, n)
      } else {
        this.#counts.delete(filter)
        this.#link.interest(filter, false)
      }
    }
    return had
  }

  match(topic: string, isOnline?: (clientId: string) => boolean): readonly Match[] {
    return this.#inner.match(topic, isOnline)
  }

  pickShared(sharedFilter: string, isOnline?: (clientId: string) => boolean): Match | null {
    return this.#inner.pickShared?.(sharedFilter, isOnline) ?? null
  }

  /** distinct filters held here */
  get filters(): number {
    return this.#counts.size
  }
}
