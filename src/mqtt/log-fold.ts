// Failure log lines folded in floods, as the failure log folds its rows: the first few lines of one reason from one
// address in a window are written as they come, the rest are counted and written as one summary line when the window
// ends. A storm of thousands of failing connections a second then writes a few lines a second, not thousands (each
// line is serialised and written synchronously), while every failure is still counted in the metrics and kept,
// folded, in the failure log.
import type { Logger } from '../contracts/logger.ts'

/** Lines written as they come per reason and address in one window. */
export const LINES_PER_WINDOW = 5
/** How long a window lasts (ms). */
const FOLD_WINDOW_MS = 10_000
/** Reason/address pairs followed in one window; the rest of a window's failures are folded per reason. */
export const MAX_KEYS = 1000

interface Fold {
  level: 'info' | 'warn'
  reason: string
  /** the address (null: unknown) */
  address: string | null
  /** the fold of every address past MAX_KEYS */
  others: boolean
  /** lines seen in this window, written or not */
  seen: number
}

export class LogFold {
  readonly #logger: Logger
  readonly #windowMs: number
  #folds = new Map<string, Fold>()
  #timer: NodeJS.Timeout | null = null

  constructor(logger: Logger, windowMs = FOLD_WINDOW_MS) {
    this.#logger = logger
    this.#windowMs = windowMs
  }

  /** A failure's line: written, or counted into its fold. */
  log(level: 'info' | 'warn', reason: string, address: string | null, fields: object, message: string): void {
    let key = `${reason}\u0000${address ?? ''}`
    let fold = this.#folds.get(key)
    if (fold === undefined) {
      const others = this.#folds.size >= MAX_KEYS
      if (others) {
        key = `${reason}\u0000*`
        fold = this.#folds.get(key)
      }
      if (fold === undefined) {
        fold = { level, reason, address: others ? null : address, others, seen: 0 }
        this.#folds.set(key, fold)
      }
      if (this.#timer === null) {
        this.#timer = setTimeout(() => this.flush(), this.#windowMs)
        this.#timer.unref()
      }
    }
    fold.seen++
    if (fold.seen <= LINES_PER_WINDOW) this.#logger[level](fields, message)
  }

  /** End the window: one summary line for each fold that went over, then a new window. */
  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    const folds = this.#folds
    this.#folds = new Map()
    const seconds = Math.round(this.#windowMs / 1000)
    for (const f of folds.values()) {
      const more = f.seen - LINES_PER_WINDOW
      if (more <= 0) continue
      const from = f.others ? 'other addresses' : f.address ?? 'an unknown address'
      this.#logger[f.level]({ reason: f.reason, remoteAddress: f.address, folded: more },
        `${f.reason}: ${more} more like this from ${from} in the last ${seconds} s, not logged one by one (every one is counted and kept in the failure log)`)
    }
  }
}
