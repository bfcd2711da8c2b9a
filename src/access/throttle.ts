// Failed logins per remote address: after `maxFailures` failures within `windowMs`, an address is refused without
// a password check until the oldest of those failures leaves the window. The table is bounded: past `maxAddresses`
// the address that failed least recently is forgotten, so a spray of addresses cannot grow it.

export interface FailureTableOptions {
  maxFailures: number
  windowMs: number
  maxAddresses: number
  now: () => number
}

export interface FailureTable {
  /** How long `address` is still refused without checking, in ms (0: it may try); with the failures counted. */
  blocked(address: string): { forMs: number; failures: number }
  recordFailure(address: string): void
  /** addresses tracked */
  readonly size: number
}

export function createFailureTable(o: FailureTableOptions): FailureTable {
  // address -> times of its latest failures (at most maxFailures, oldest first); Map order = least recent first
  const table = new Map<string, number[]>()

  /** The address's failures still inside the window (the entry is dropped when none is). */
  const recent = (address: string, now: number): number[] => {
    const times = table.get(address)
    if (times === undefined) return []
    const kept = times.filter((t) => t > now - o.windowMs)
    if (kept.length === 0) table.delete(address)
    else if (kept.length !== times.length) table.set(address, kept)
    return kept
  }

  return {
    blocked(address) {
      const now = o.now()
      const times = recent(address, now)
      if (times.length < o.maxFailures) return { forMs: 0, failures: times.length }
      return { forMs: times[0] + o.windowMs - now, failures: times.length }
    },
    recordFailure(address) {
      const now = o.now()
      const times = [...recent(address, now), now].slice(-o.maxFailures)
      table.delete(address)
      table.set(address, times)
      for (const oldest of table.keys()) {
        if (table.size <= o.maxAddresses) break
        table.delete(oldest)
      }
    },
    get size() {
      return table.size
    },
  }
}
