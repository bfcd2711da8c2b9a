// A deadline that runs from a start time for a duration: the one door through which a hot setting reaches a live
// connection. `refresh()` moves the start to now (any packet received), `reschedule(ms)` changes the duration and
// keeps the start (a new connectTimeoutMs or keepaliveMultiplier), so a deadline already past expires at once.
//
// Refreshing is lazy: it only records the time. The pending Node timeout checks on firing whether the deadline has
// really passed and re-arms itself for the rest otherwise, so a packet costs one Date.now(), not a timer operation.

export class Deadline {
  readonly #onExpire: () => void
  #handle: NodeJS.Timeout | null = null
  #start = 0
  #ms = 0

  constructor(onExpire: () => void) {
    this.#onExpire = onExpire
  }

  /** Expire `ms` after `start` (epoch ms). */
  arm(ms: number, start: number = Date.now()): void {
    this.#start = start
    this.#ms = ms
    this.#schedule()
  }

  /** Something arrived: the deadline now runs from `now`. */
  refresh(now: number = Date.now()): void {
    this.#start = now
  }

  /** New duration from the same start; expires at once (next tick) when already past. */
  reschedule(ms: number): void {
    this.#ms = ms
    if (this.#handle !== null) this.#schedule()
  }

  clear(): void {
    if (this.#handle !== null) clearTimeout(this.#handle)
    this.#handle = null
  }

  get armed(): boolean {
    return this.#handle !== null
  }

  get ms(): number {
    return this.#ms
  }

  get start(): number {
    return this.#start
  }

  #schedule(): void {
    if (this.#handle !== null) clearTimeout(this.#handle)
    const left = this.#start + this.#ms - Date.now()
    this.#handle = setTimeout(this.#fire, left > 0 ? left : 0)
    this.#handle.unref()
  }

  readonly #fire = (): void => {
    const left = this.#start + this.#ms - Date.now()
    if (left > 0) {
      this.#handle = setTimeout(this.#fire, left)
      this.#handle.unref()
      return
    }
    this.#handle = null
    this.#onExpire()
  }
}
