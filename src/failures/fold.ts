// Flood folding: per source (remote address + reason), decides whether a failure gets a row of its own or is folded
// into its window's summary row. Pure: no I/O, the caller passes the time and writes the rows.

export interface FoldOptions {
  /** failures written per source per window before the rest are folded */
  foldAfter: number
  /** the fold window, ms */
  windowMs: number
  /** sources tracked; a failure from an untracked source when the table is full gets a row of its own */
  maxSources: number
}

/** Fold state of one source. */
interface Source<S> {
  windowStart: number
  /** failures in the current window */
  n: number
  /** the previous window was over the limit: this one folds from its first failure */
  flooding: boolean
  /** the row this window's extra failures fold into */
  summary: S | null
}

/**
 * What to do with one failure: 'write' it as a row of its own; 'summarise': write it and hand the row to
 * setSummary(), the rest of the window folds into it; or the summary row (an S) to fold it into.
 */
export type FoldDecision<S> = 'write' | 'summarise' | S

/** The source of a failure: its remote address and reason. */
export const sourceKey = (remoteAddress: string | null, reason: string): string => `${remoteAddress ?? ''}\n${reason}`

export class FoldTable<S extends object> {
  readonly #sources = new Map<string, Source<S>>()
  readonly #opts: FoldOptions
  /** whether a summary row can still take folds (one lost to a write error cannot) */
  readonly #isLive: (summary: S) => boolean
  #lastSweepAt = 0

  constructor(opts: FoldOptions, isLive: (summary: S) => boolean) {
    this.#opts = opts
    this.#isLive = isLive
  }

  get size(): number {
    return this.#sources.size
  }

  /** Counts one failure from source `key` at time `t` and says what to do with it. */
  decide(key: string, t: number): FoldDecision<S> {
    const { foldAfter, windowMs, maxSources } = this.#opts
    let s = this.#sources.get(key)
    if (!s) {
      // a full table is swept at most once per window: a storm of new sources must not sweep per failure
      if (this.#sources.size >= maxSources) this.sweep(t)
      if (this.#sources.size >= maxSources) return 'write'
      s = { windowStart: t, n: 0, flooding: false, summary: null }
      this.#sources.set(key, s)
    }
    if (t - s.windowStart >= windowMs) {
      // a flood that went on without a gap keeps folding from the first failure of the next window
      s.flooding = s.n > foldAfter && t - s.windowStart < 2 * windowMs
      s.windowStart = t
      s.n = 0
      s.summary = null
    }
    s.n++
    if (!s.flooding && s.n <= foldAfter) return 'write'
    return s.summary && this.#isLive(s.summary) ? s.summary : 'summarise'
  }

  /** The row written after decide() said 'summarise' (null: it could not be written; the next one tries again). */
  setSummary(key: string, summary: S | null): void {
    const s = this.#sources.get(key)
    if (s) s.summary = summary
  }

  /** Forgets the sources quiet for two windows; does nothing if the last sweep is less than a window old. */
  sweep(t: number): void {
    const { windowMs } = this.#opts
    if (t - this.#lastSweepAt < windowMs) return
    this.#lastSweepAt = t
    for (const [key, s] of this.#sources) {
      if (t - s.windowStart >= 2 * windowMs) this.#sources.delete(key)
    }
  }
}
