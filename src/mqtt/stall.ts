// The broker's own slowness, measured: a light timer that should tick every TICK_MS notices when it ticks late (a
// blocked event loop, a long GC pause, a reconnect storm), and adds the lateness up. A deadline that expires can
// then ask how long the broker itself was stalled while it ran, and not count that time against the client: a
// timeout measures the client, never the broker. The lag of the last seconds goes into every failure record
// (`brokerLagMs`), so an operator sees when the broker, not the client, was the slow side.

/** How often the clock ticks. */
export const TICK_MS = 20
/**
 * Lateness under this is scheduling noise, not a stall, and only what goes over it counts: on a busy machine every
 * tick runs a little late, and those small delays must not add up to seconds given back to silent clients.
 */
const TOLERANCE_MS = 50
/** `recentLagMs` is the largest lag over about this long. */
const RECENT_MS = 5000
/** The running sum is remembered once a second for this many seconds (the stall since a given time). */
const HISTORY_SEC = 900

export class StallClock {
  /** ms the broker was stalled since the clock started (a running sum, only ever grows) */
  #total = 0
  #last = performance.now()
  /** the largest single lag in the current and the previous window, for `recentLagMs` */
  #windowMax = 0
  #previousMax = 0
  #windowStart = this.#last
  #timer: NodeJS.Timeout | null = null
  /** (epoch second, running sum at its start), oldest first, at most HISTORY_SEC */
  readonly #historyAt: number[] = []
  readonly #historyTotal: number[] = []

  start(): void {
    if (this.#timer !== null) return
    this.#last = performance.now()
    this.#timer = setInterval(() => this.sample(), TICK_MS)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  /**
   * Note the lateness since the last tick or sample. Called by the ticks and by whoever asks, so that a stall that
   * has just ended is counted before the deadlines that fired behind it ask about it.
   */
  sample(now: number = performance.now()): void {
    const lag = now - this.#last - TICK_MS
    if (lag > TOLERANCE_MS) {
      this.#total += lag - TOLERANCE_MS
      if (lag > this.#windowMax) this.#windowMax = lag
    }
    if (now - this.#last >= TICK_MS || lag > TOLERANCE_MS) this.#last = now
    if (now - this.#windowStart >= RECENT_MS) {
      this.#previousMax = this.#windowMax
      this.#windowMax = 0
      this.#windowStart = now
    }
    const second = Math.floor(Date.now() / 1000)
    const n = this.#historyAt.length
    if (n === 0 || this.#historyAt[n - 1] !== second) {
      this.#historyAt.push(second)
      this.#historyTotal.push(this.#total)
      if (n + 1 > HISTORY_SEC) {
        this.#historyAt.shift()
        this.#historyTotal.shift()
      }
    }
  }

  /**
   * The running sum as it stood at `epochMs` (to the second before it, so a stall just before may count too; before
   * the history, its oldest value). `totalMs - totalAt(t)` is how long the broker was stalled since t.
   */
  totalAt(epochMs: number): number {
    const second = Math.floor(epochMs / 1000)
    for (let i = this.#historyAt.length - 1; i >= 0; i--) {
      if (this.#historyAt[i] <= second) return this.#historyTotal[i]
    }
    return this.#historyTotal[0] ?? 0
  }

  /** ms stalled since the clock started; the difference of two readings is the stall between them. */
  get totalMs(): number {
    this.sample()
    return this.#total
  }

  /** The largest stall of the last 5-10 s, ms (0 when the broker kept up). */
  get recentLagMs(): number {
    this.sample()
    return Math.round(Math.max(this.#windowMax, this.#previousMax))
  }
}
