// Durable MQTT sessions: the working Session objects live in memory (loaded from SQLite at start); the core's notes
// of what changed are written behind (./write-behind.ts). Written: a session that outlives its connection (expiry
// over 0) with its subscriptions, queued and in-flight messages and QoS 2 ids; and a session with a Will, so that the
// Will of a client connected at a crash is published after the restart. A session that ends with its connection and
// has no Will is never written.
import type { Database, Statement } from 'better-sqlite3'
import type { Outgoing, QoS, Queued, Session } from '../contracts/state.ts'
import { isOutgoing, newSession } from '../contracts/state.ts'
import { propertiesFromJson, propertiesToJson, willFromJson, willToJson } from './codec.ts'
import type { WriteBehind, Writer } from './write-behind.ts'
import { kept, NotedSessionStore, restoreEntry } from './noted-sessions.ts'

interface SessionRow {
  client_id: string
  expiry_sec: number
  disconnected_at: number | null
  will: string | null
  qos2_received: string | null
}

interface SubscriptionRow {
  client_id: string
  filter: string
  qos: number
  no_local: number
  retain_as_published: number
  retain_handling: number
  subscription_ids: string
}

interface MessageRow {
  client_id: string
  seq: number
  packet_id: number | null
  stage: string | null
  qos: number
  retain: number
  subscription_ids: string
  topic: string
  payload: Buffer
  properties: string | null
  expires_at: number
  from_client: string | null
}


export class DurableSessionStore extends NotedSessionStore implements Writer {
  readonly #wb: WriteBehind
  readonly #sql: Record<'upsertSession' | 'deleteSession' | 'deleteSubs' | 'deleteMessages' | 'upsertSub' | 'deleteSub' |
    'upsertMessage' | 'deleteMessage', Statement>

  /**
   * Loads every kept session. `crashedAt` dates the end of connections that held a session when the file was last
   * written (the process stopped without closing them): their expiry and Will delay count from then.
   */
  constructor(db: Database, wb: WriteBehind, crashedAt: number) {
    super()
    this.#wb = wb
    this.#sql = {
      upsertSession: db.prepare(`INSERT INTO mqtt_sessions (client_id, expiry_sec, disconnected_at, will, qos2_received, updated_at)
        VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET expiry_sec = excluded.expiry_sec,
        disconnected_at = excluded.disconnected_at, will = excluded.will, qos2_received = excluded.qos2_received,
        updated_at = excluded.updated_at`),
      deleteSession: db.prepare('DELETE FROM mqtt_sessions WHERE client_id = ?'),
      deleteSubs: db.prepare('DELETE FROM mqtt_subscriptions WHERE client_id = ?'),
      deleteMessages: db.prepare('DELETE FROM mqtt_session_messages WHERE client_id = ?'),
      upsertSub: db.prepare(`INSERT INTO mqtt_subscriptions (client_id, filter, qos, no_local, retain_as_published,
        retain_handling, subscription_ids) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (client_id, filter) DO UPDATE SET
        qos = excluded.qos, no_local = excluded.no_local, retain_as_published = excluded.retain_as_published,
        retain_handling = excluded.retain_handling, subscription_ids = excluded.subscription_ids`),
      deleteSub: db.prepare('DELETE FROM mqtt_subscriptions WHERE client_id = ? AND filter = ?'),
      upsertMessage: db.prepare(`INSERT INTO mqtt_session_messages (client_id, seq, packet_id, stage, qos, retain,
        subscription_ids, topic, payload, properties, expires_at, from_client) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (client_id, seq) DO UPDATE SET packet_id = excluded.packet_id, stage = excluded.stage`),
      deleteMessage: db.prepare('DELETE FROM mqtt_session_messages WHERE client_id = ? AND seq = ?'),
    }
    this.#load(db, crashedAt)
    wb.register(this)
  }

  resume(clientId: string): Session | undefined {
    return this.sessions.get(clientId)
  }

  delete(clientId: string): void {
    if (!this.sessions.delete(clientId)) return
    this.dropNotes(clientId)
    if (this.stored.has(clientId)) {
      this.wipes.add(clientId)
      this.#wb.touched()
    }
  }

  flush(): Promise<void> {
    return this.#wb.flush()
  }

  write(now: number): number {
    let rows = 0
    const sql = this.#sql
    for (const clientId of this.wipes) {
      sql.deleteSession.run(clientId)
      sql.deleteSubs.run(clientId)
      sql.deleteMessages.run(clientId)
      rows++
    }
    for (const [clientId, notes] of this.notes) {
      const s = notes.session
      if (this.sessions.get(clientId) !== s) continue // replaced since: its successor's notes are its own
      rows++
      if (!kept(s)) {
        sql.deleteSession.run(clientId)
        sql.deleteSubs.run(clientId)
        sql.deleteMessages.run(clientId)
        continue
      }
      sql.upsertSession.run(clientId, s.expiryIntervalSec, s.disconnectedAt, willToJson(s.will),
        s.incomingQos2 === null || s.incomingQos2.size === 0 ? null : JSON.stringify([...s.incomingQos2]), now)
      if (s.expiryIntervalSec === 0) continue
      if (notes.filters !== null) {
        for (const filter of notes.filters) {
          rows++
          const sub = s.subscriptions.get(filter)
          if (sub === undefined) sql.deleteSub.run(clientId, filter)
          else {
            sql.upsertSub.run(clientId, filter, sub.qos, sub.noLocal ? 1 : 0, sub.retainAsPublished ? 1 : 0,
              sub.retainHandling, JSON.stringify(sub.subscriptionIds))
          }
        }
      }
      if (notes.entries !== null) {
        for (const [seq, e] of notes.entries) {
          rows++
          if (e === null) sql.deleteMessage.run(clientId, seq)
          else {
            const m = e.message
            const out = isOutgoing(e) ? e : null
            sql.upsertMessage.run(clientId, seq, out?.packetId ?? null, out?.stage ?? null, e.qos, e.retain ? 1 : 0,
              JSON.stringify(e.subscriptionIds), m.topic, m.payload, propertiesToJson(m.properties), m.expiresAt, m.from)
          }
        }
      }
    }
    return rows
  }

  committed(): void {
    for (const clientId of this.wipes) {
      this.stored.delete(clientId)
      this.writtenSeqs.delete(clientId)
    }
    for (const [clientId, notes] of this.notes) {
      const s = notes.session
      if (this.sessions.get(clientId) !== s) continue
      if (kept(s)) this.stored.add(clientId)
      else {
        this.stored.delete(clientId)
        this.writtenSeqs.delete(clientId)
        continue
      }
      if (notes.entries !== null && s.expiryIntervalSec > 0) {
        let seqs = this.writtenSeqs.get(clientId)
        for (const [seq, e] of notes.entries) {
          if (e === null) seqs?.delete(seq)
          else {
            if (seqs === undefined) this.writtenSeqs.set(clientId, (seqs = new Set()))
            seqs.add(seq)
          }
        }
      }
    }
    this.wipes = new Set()
    this.notes = new Map()
    this.pendingNotes = 0
  }

  protected touched(): void {
    this.#wb.touched()
  }

  #load(db: Database, crashedAt: number): void {
    for (const row of db.prepare('SELECT client_id, expiry_sec, disconnected_at, will, qos2_received FROM mqtt_sessions').iterate() as IterableIterator<SessionRow>) {
      const s = newSession(row.client_id, row.expiry_sec)
      s.disconnectedAt = row.disconnected_at ?? crashedAt
      s.will = willFromJson(row.will)
      if (row.qos2_received !== null) s.incomingQos2 = new Set(JSON.parse(row.qos2_received) as number[])
      this.sessions.set(s.clientId, s)
      this.stored.add(s.clientId)
    }
    for (const row of db.prepare('SELECT * FROM mqtt_subscriptions').iterate() as IterableIterator<SubscriptionRow>) {
      const s = this.sessions.get(row.client_id)
      if (s === undefined) continue
      s.subscriptions.set(row.filter, {
        clientId: row.client_id,
        filter: row.filter,
        qos: row.qos as QoS,
        noLocal: row.no_local === 1,
        retainAsPublished: row.retain_as_published === 1,
        retainHandling: row.retain_handling,
        subscriptionIds: JSON.parse(row.subscription_ids) as number[],
      })
    }
    const now = Date.now()
    const expired: Array<[Session, number]> = []
    for (const row of db.prepare('SELECT * FROM mqtt_session_messages ORDER BY client_id, seq').iterate() as IterableIterator<MessageRow>) {
      const s = this.sessions.get(row.client_id)
      if (s === undefined) continue
      let seqs = this.writtenSeqs.get(row.client_id)
      if (seqs === undefined) this.writtenSeqs.set(row.client_id, (seqs = new Set()))
      seqs.add(row.seq)
      const message = {
        topic: row.topic,
        payload: row.payload,
        qos: row.qos as QoS,
        retain: row.retain === 1,
        properties: propertiesFromJson(row.properties),
        expiresAt: row.expires_at,
        from: row.from_client,
      }
      const subscriptionIds = JSON.parse(row.subscription_ids) as number[]
      const entry: Queued | Outgoing = row.packet_id === null
        ? { seq: row.seq, message, qos: message.qos, retain: message.retain, subscriptionIds }
        : {
            seq: row.seq, packetId: row.packet_id, message, qos: message.qos as 1 | 2, retain: message.retain, dup: false,
            subscriptionIds, stage: row.stage === 'pubrel' ? 'pubrel' : 'publish', unsent: false,
          }
      if (!restoreEntry(s, entry, now)) expired.push([s, row.seq])
    }
    // queued messages that expired while the broker was down leave the file with the next write
    for (const [s, seq] of expired) this.droppedEntry(s, { seq } as Queued)
  }
}
