// The broker's own slowness, measured: a light timer that should tick every TICK_MS notices when it ticks late (a
// blocked event loop, a long GC pause), and adds the lateness up; a tick interval in which the event loop was busy
// nearly all the time (a reconnect storm: thousands of short tasks, none late by much, and sockets whose bytes wait
// unread behind them) counts whole. A deadline that expires can then ask how long the broker itself was stalled
// while it ran, and not count that time against the client (up to MAX_STALL_CREDIT_MS): a timeout measures the
// client, never the broker. The lag of the last seconds goes into every failure record (`brokerLagMs`), so an
// operator sees when the broker, not the client, was the slow side.
import { performance } from 'node:perf_hooks'

/** How often the clock ticks. */
export const TICK_MS = 20
/** A stall shorter than this is not given back to a deadline (scheduling noise). */
export const MIN_STALL_CREDIT_MS = 50
/**
 * At most this much of the broker's stalls is given back to one deadline: a broker overloaded for longer still ends
 * the waits of silent clients (a dead client never lives more than this past its deadline).
 */
export const MAX_STALL_CREDIT_MS = 30_000
/** A tick interval in which the event loop was busy at least this share of the time counts whole as a stall. */
const SATURATED = 0.9
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
  /** the event loop's utilization reading and the time of the last tick */
  #elu = performance.eventLoopUtilization()
  #lastTick = this.#last
  /** (epoch second, running sum at its start), oldest first, at most HISTORY_SEC */
  readonly #historyAt: number[] = []
  readonly #historyTotal: number[] = []

  start(): void {
    if (this.#timer !== null) return
    this.#last = this.#lastTick = performance.now()
    this.#elu = performance.eventLoopUtilization()
    this.#timer = setInterval(tick, TICK_MS, this)
    this.#timer.unref()
  }

  /**
   * A tick: the lateness since the last tick or sample (sample()), and, when the tick itself was on time, whether the
   * event loop was saturated since the last tick: then the whole interval counts.
   */
  tick(now: number = performance.now()): void {
    const elu = performance.eventLoopUtilization()
    const busy = performance.eventLoopUtilization(elu, this.#elu).utilization
    this.#elu = elu
    const lag = now - this.#last - TICK_MS
    if (lag <= TOLERANCE_MS && busy >= SATURATED) this.#total += now - this.#lastTick
    this.#lastTick = now
    this.sample(now)
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
      // counted: the next tick's saturation check starts from here, not from the tick before the stall
      this.#lastTick = now
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

  /**
   * How long the broker was stalled since a deadline's `mark` (the total when it last asked), counting only what came
   * after `startEpochMs` (when the deadline started).
   */
  stalledSince(mark: number, startEpochMs: number): number {
    return this.totalMs - Math.max(mark, this.totalAt(startEpochMs))
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

/** What a timeout's detail adds when the broker's own stalls were given back to it ('' when none were). */
export function stallGivenText(givenMs: number): string {
  const ms = Math.round(givenMs)
  return ms > 0 ? `; ${ms} ms the broker itself was stalled were not counted` : ''
}

/**
 * A one-shot deadline of `ms` from `startedAt` (epoch ms) that measures the client, never the broker, as a
 * connection's deadlines do: when due, the time the broker itself was stalled since the start is given back first;
 * then `onExpire` runs only after what waited to be read has been read (socket reads run before setImmediate), so
 * a caller whose wait ended meanwhile cancels it in time. Without a clock (STALL_CREDIT=off): on the wall clock.
 * Used for the phases before a connection exists: the HTTP upgrade and the TLS handshake.
 */
export class StallAwareTimeout {
  #timer: NodeJS.Timeout | null = null
  #ms: number
  #mark: number
  #done = false
  /** ms of the broker's own stalls given back so far */
  givenMs = 0
  readonly #clock: StallClock | null
  readonly #startedAt: number
  readonly #onExpire: (givenMs: number) => void

  /**
   * `carry`: the deadline this one continues (the same wait from the same start, on another object: a TLS socket
   * taking over from the TCP socket it wraps), whose stalls already given back stay given.
   */
  constructor(clock: StallClock | null, startedAt: number, ms: number, onExpire: (givenMs: number) => void, carry?: StallAwareTimeout) {
    this.#clock = clock
    this.#startedAt = startedAt
    this.#ms = ms
    this.#onExpire = onExpire
    this.#mark = carry !== undefined ? carry.#mark : (clock?.totalMs ?? 0)
    this.givenMs = carry?.givenMs ?? 0
    this.#schedule()
  }

  /** A new length, counted from the start (plus what was given back): a setting changed while waiting. */
  setLength(ms: number): void {
    if (this.#done) return
    this.#ms = ms
    this.#schedule()
  }

  cancel(): void {
    this.#done = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  #schedule(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    const left = this.#startedAt + this.#ms + this.givenMs - Date.now()
    this.#timer = setTimeout(due, Math.max(0, left), this)
    this.#timer.unref()
  }

  /** @internal the timer's callback */
  due(): void {
    this.#timer = null
    if (this.#done) return
    const clock = this.#clock
    if (clock === null) {
      this.#expire()
      return
    }
    const stalled = Math.min(clock.stalledSince(this.#mark, this.#startedAt), MAX_STALL_CREDIT_MS - this.givenMs)
    this.#mark = clock.totalMs
    if (stalled >= MIN_STALL_CREDIT_MS) {
      this.givenMs += stalled
      this.#schedule()
      return
    }
    setImmediate(expireLater, this)
  }

  /** @internal after pending reads */
  expireLater(): void {
    if (!this.#done && this.#timer === null) this.#expire()
  }

  #expire(): void {
    this.#done = true
    this.#onExpire(this.givenMs)
  }
}

function tick(c: StallClock): void { c.tick() }
function due(t: StallAwareTimeout): void { t.due() }
function expireLater(t: StallAwareTimeout): void { t.expireLater() }
