// Timers keyed by client id (delayed Wills, session expiries): at most one per key, of any length. Node's setTimeout
// holds at most 2^31-1 ms (about 24.8 days) and fires a longer one after 1 ms, while a v5 Will Delay or Session
// Expiry Interval may be years: a due time past that is reached in steps. A timer has no caller to catch for it, so
// a throwing callback is handed to `onError` instead of ending the process.

/** The longest delay one Node timer takes. */
export const MAX_TIMER_MS = 2 ** 31 - 1

interface Entry<V> {
  handle: NodeJS.Timeout
  dueAt: number
  value: V
}

export class KeyedTimers<V> {
  readonly #entries = new Map<string, Entry<V>>()
  readonly #onDue: (key: string, value: V) => void
  readonly #onError: (err: unknown, key: string) => void

  constructor(onDue: (key: string, value: V) => void, onError: (err: unknown, key: string) => void) {
    this.#onDue = onDue
    this.#onError = onError
  }

  get size(): number {
    return this.#entries.size
  }

  /** Call onDue(key, value) at `dueAt` (epoch ms), replacing the key's pending timer if any. */
  set(key: string, dueAt: number, value: V): void {
    this.delete(key)
    const entry: Entry<V> = { handle: this.#arm(key, dueAt), dueAt, value }
    this.#entries.set(key, entry)
  }

  /** Cancel the key's timer and return its value (undefined when none was pending). */
  take(key: string): V | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    clearTimeout(entry.handle)
    this.#entries.delete(key)
    return entry.value
  }

  delete(key: string): boolean {
    return this.take(key) !== undefined
  }

  clear(): void {
    for (const entry of this.#entries.values()) clearTimeout(entry.handle)
    this.#entries.clear()
  }

  #arm(key: string, dueAt: number): NodeJS.Timeout {
    const handle = setTimeout(() => this.#fire(key), Math.min(Math.max(dueAt - Date.now(), 0), MAX_TIMER_MS))
    handle.unref()
    return handle
  }

  #fire(key: string): void {
    const entry = this.#entries.get(key)
    if (entry === undefined) return
    if (Date.now() < entry.dueAt) {
      entry.handle = this.#arm(key, entry.dueAt) // a step of a delay longer than one Node timer holds
      return
    }
    this.#entries.delete(key)
    try {
      this.#onDue(key, entry.value)
    } catch (err) {
      this.#onError(err, key)
    }
  }
}
