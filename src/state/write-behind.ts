// Write-behind for the durable MQTT state: the stores note what changed (one pending entry per key: a topic, a
// session, a subscription, a queued message), and every FLUSH_INTERVAL_MS the notes are written in one SQLite
// transaction. The hot path never waits for the disk; a key changed ten times in one interval is written once, and a
// message queued and acknowledged within one interval is never written at all. WAL with synchronous=NORMAL makes a
// committed transaction survive a kill -9, so what a crash loses is what changed since the last commit.
// A failed write (disk full, read-only file) keeps the notes and is tried again: the broker never stops for it.
import { EventEmitter } from 'node:events'
import type { Database } from 'better-sqlite3'
import type { Logger } from '../contracts/logger.ts'

/** How long a change waits before it is written. */
export const FLUSH_INTERVAL_MS = 20
/** At most this long between two writes of alive_at, the time a crash is dated from (ms). */
export const ALIVE_INTERVAL_MS = 1000
/** After a failed write, the next try (ms). */
export const RETRY_MS = 1000
/** More pending notes than this are written at once, not after the interval (bounds a transaction). */
export const MAX_PENDING = 20_000

/** One store's part of a flush. */
export interface Writer {
  /** notes waiting */
  readonly pending: number
  /** write the notes (inside the flush's transaction, which may still fail); returns the rows written */
  write(now: number): number
  /** the transaction committed: forget the notes written */
  committed(): void
}

export interface FlushStats {
  /** transactions committed */
  flushes: number
  /** rows written or deleted */
  rows: number
  /** failed transactions (retried) */
  errors: number
  /** how long the last transaction took, ms */
  lastMs: number
}

export interface WriteBehindEvents {
  /** a transaction was committed: its duration (ms) and row count */
  flush: [ms: number, rows: number]
}

export class WriteBehind extends EventEmitter<WriteBehindEvents> {
  readonly stats: FlushStats = { flushes: 0, rows: 0, errors: 0, lastMs: 0 }
  readonly #db: Database
  readonly #logger: Logger | undefined
  readonly #writers: Writer[] = []
  readonly #setAlive
  #timer: NodeJS.Timeout | null = null
  #immediate: NodeJS.Immediate | null = null
  #alive: NodeJS.Timeout | null = null
  #closed = false
  #lastErrorLog = 0

  constructor(db: Database, logger?: Logger) {
    super()
    this.#db = db
    this.#logger = logger
    this.#setAlive = db.prepare('INSERT INTO mqtt_state_meta (key, value) VALUES (\'alive_at\', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
  }

  /** The time of the last write before this process (a crash came after it), or null on a fresh file. */
  aliveAt(): number | null {
    const row = this.#db.prepare('SELECT value FROM mqtt_state_meta WHERE key = \'alive_at\'').get() as { value: number } | undefined
    return row?.value ?? null
  }

  register(writer: Writer): void {
    this.#writers.push(writer)
  }

  /** Start dating the state: alive_at is written now and at least every ALIVE_INTERVAL_MS. */
  start(): void {
    this.#setAlive.run(Date.now())
    this.#alive = setInterval(() => this.flushNow(), ALIVE_INTERVAL_MS)
    this.#alive.unref()
  }

  /** A store noted a change: write it within FLUSH_INTERVAL_MS (at once when many wait). */
  touched(): void {
    if (this.#closed) return
    if (this.#timer === null) {
      this.#timer = setTimeout(this.#onTimer, FLUSH_INTERVAL_MS)
      this.#timer.unref()
    }
    if (this.#immediate === null && this.pending() > MAX_PENDING) this.#immediate = setImmediate(this.#onTimer)
  }

  pending(): number {
    let n = 0
    for (const w of this.#writers) n += w.pending
    return n
  }

  readonly #onTimer = (): void => {
    this.flushNow()
  }

  /** Write every pending note now, in one transaction; false when it failed (the notes stay for the next try). */
  flushNow(): boolean {
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#immediate !== null) clearImmediate(this.#immediate)
    this.#timer = null
    this.#immediate = null
    const started = performance.now()
    const now = Date.now()
    let rows = 0
    try {
      this.#db.transaction(() => {
        for (const w of this.#writers) rows += w.write(now)
        this.#setAlive.run(now)
      })()
    } catch (err) {
      this.stats.errors++
      // once a second at most: a full disk fails every flush
      if (now - this.#lastErrorLog > 1000) {
        this.#lastErrorLog = now
        this.#logger?.error({ err, pending: this.pending() }, 'writing the MQTT state to SQLite failed: kept in memory, retrying')
      }
      if (!this.#closed) {
        this.#timer = setTimeout(this.#onTimer, RETRY_MS)
        this.#timer.unref()
      }
      return false
    }
    for (const w of this.#writers) w.committed()
    const ms = performance.now() - started
    this.stats.flushes++
    this.stats.rows += rows
    this.stats.lastMs = ms
    if (rows > 0) this.emit('flush', ms, rows)
    return true
  }

  /** Resolves once everything noted so far is written (or the write failed and will be tried again). */
  flush(): Promise<void> {
    this.flushNow()
    return Promise.resolve()
  }

  /** Write what is left and stop (before the database closes). */
  close(): void {
    if (this.#closed) return
    this.flushNow()
    this.#closed = true
    if (this.#alive !== null) clearInterval(this.#alive)
    this.#alive = null
  }
}
