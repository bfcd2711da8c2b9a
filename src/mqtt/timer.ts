// A deadline that runs from a start time for a duration: the one door through which a hot setting reaches a live
// connection. `refresh()` moves the start to now (any packet received), `reschedule(ms)` changes the duration and
// keeps the start (a new connectTimeoutMs or keepaliveMultiplier), so a deadline already past expires at once.
//
// Refreshing is lazy: it only records the time. The pending Node timeout checks on firing whether the deadline has
// really passed and re-arms itself for the rest otherwise, so a packet costs one Date.now(), not a timer operation.
// The expiry callback is shared and gets its target as an argument: no closure per deadline (there is one per
// connection, and connections are many).

export class Deadline<T> {
  readonly #onExpire: (target: T) => void
  readonly #target: T
  #handle: NodeJS.Timeout | null = null
  #start = 0
  #ms = 0

  constructor(onExpire: (target: T) => void, target: T) {
    this.#onExpire = onExpire
    this.#target = target
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

  get ms(): number {
    return this.#ms
  }

  /** epoch ms the deadline runs from */
  get start(): number {
    return this.#start
  }

  /** Push the deadline back by `ms` (time the broker itself was stalled, not the client) and re-arm. */
  extend(ms: number): void {
    this.#start += ms
    this.#schedule()
  }

  /**
   * After an expiry was reported and judged later: false (and re-armed) when something arrived meanwhile and moved
   * it, true when it has still passed.
   */
  stillExpired(): boolean {
    if (this.#start + this.#ms - Date.now() <= 0) return true
    this.#schedule()
    return false
  }

  #schedule(): void {
    if (this.#handle !== null) clearTimeout(this.#handle)
    const left = this.#start + this.#ms - Date.now()
    this.#handle = setTimeout(fire, left > 0 ? left : 0, this)
    this.#handle.unref()
  }

  /** Called by the Node timeout: expire, or re-arm for what is left after a refresh. */
  static fire<T>(d: Deadline<T>): void {
    const left = d.#start + d.#ms - Date.now()
    if (left > 0) {
      d.#handle = setTimeout(fire, left, d)
      d.#handle.unref()
      return
    }
    d.#handle = null
    d.#onExpire(d.#target)
  }
}

const fire = Deadline.fire
