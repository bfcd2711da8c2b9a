// Durable retained messages: an in-memory RetainedStore (the topic tree the core matches filters with) loaded from
// SQLite at start, whose changes are written behind (./write-behind.ts). Matching never touches the disk.
import type { Database, Statement } from 'better-sqlite3'
import type { Message, RetainedLimits, RetainedStore } from '../contracts/state.ts'
import type { QoS } from '../contracts/state.ts'
import { propertiesFromJson, propertiesToJson } from './codec.ts'
import type { WriteBehind, Writer } from './write-behind.ts'
import { NotedRetainedStore } from './noted-retained.ts'

interface RetainedRow {
  topic: string
  payload: Buffer
  qos: number
  properties: string | null
  expires_at: number
}

/** No limit: what the file held is loaded whole, whatever the limits are now. */
const UNLIMITED: RetainedLimits = { maxMessages: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER }

export class DurableRetainedStore extends NotedRetainedStore implements Writer {
  readonly #wb: WriteBehind
  /** topic -> its message to write, or null to delete */
  #notes = new Map<string, Message | null>()
  readonly #upsert: Statement
  readonly #delete: Statement

  /** `index` is the in-memory store that answers; it is filled from the file here. */
  constructor(db: Database, index: RetainedStore, wb: WriteBehind) {
    super(index)
    this.#wb = wb
    this.#upsert = db.prepare(`INSERT INTO mqtt_retained (topic, payload, qos, properties, expires_at, stored_at)
      VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (topic) DO UPDATE SET payload = excluded.payload, qos = excluded.qos,
      properties = excluded.properties, expires_at = excluded.expires_at, stored_at = excluded.stored_at`)
    this.#delete = db.prepare('DELETE FROM mqtt_retained WHERE topic = ?')
    const now = Date.now()
    for (const row of db.prepare('SELECT topic, payload, qos, properties, expires_at FROM mqtt_retained').iterate() as IterableIterator<RetainedRow>) {
      if (row.expires_at !== 0 && row.expires_at <= now) {
        this.noted(row.topic, null)
        continue
      }
      index.set({
        topic: row.topic,
        payload: row.payload,
        qos: row.qos as QoS,
        retain: true,
        properties: propertiesFromJson(row.properties),
        expiresAt: row.expires_at,
        from: null,
      }, UNLIMITED)
    }
    wb.register(this)
  }

  get pending(): number {
    return this.#notes.size
  }


  write(now: number): number {
    for (const [topic, m] of this.#notes) {
      if (m === null) this.#delete.run(topic)
      else this.#upsert.run(topic, m.payload, m.qos, propertiesToJson(m.properties), m.expiresAt, now)
    }
    return this.#notes.size
  }

  committed(): void {
    this.#notes = new Map()
  }

  protected noted(topic: string, m: Message | null): void {
    this.#notes.set(topic, m)
    this.#wb.touched()
  }
}
