// What the durable session stores share: the working Session objects held in memory, and the core's notes of what
// changed (savedSession, savedSubscription, savedEntry, droppedEntry) gathered per client until the subclass writes
// them (the SQLite store behind every 20 ms, ./sessions.ts; the JetStream one in batches, src/cluster/sessions.ts).
// An entry queued and done before it was written is never written at all; a session that ends with its connection
// and has no Will needs no record. Also the one way a session is rebuilt from its stored entries (restoreEntry).
import { isOutgoing, type Session, type SessionEntry, type SessionStore } from '../contracts/state.ts'

/**
 * What one client's notes say until they are written. The session's own record is always written with them: a
 * subscription or a message never lands without the record that makes it part of a session.
 */
export interface SessionNotes {
  /** the session object noted (a replaced one is not written) */
  session: Session
  /** filters added, replaced or removed */
  filters: Set<string> | null
  /** seq -> the entry to write, or null to remove */
  entries: Map<number, SessionEntry | null> | null
}

/** Does the session need a record at all? */
export const kept = (s: Session): boolean => s.expiryIntervalSec > 0 || s.will !== null

/** The record, the filters and the entries a client's notes will write. */
export const noteCount = (n: SessionNotes): number => 1 + (n.filters?.size ?? 0) + (n.entries?.size ?? 0)

/**
 * A stored entry back into its session, read in seq order: in flight under its packet id, or queued unless it expired
 * (false: it is not taken, and should leave the store). Keeps the session's next seq and packet id past it.
 */
export function restoreEntry(s: Session, e: SessionEntry, now: number): boolean {
  if (e.seq >= s.nextSeq) s.nextSeq = e.seq + 1
  if (isOutgoing(e)) {
    ;(s.inflight ??= new Map()).set(e.packetId, e)
    if (e.packetId >= s.nextPacketId) s.nextPacketId = e.packetId === 65535 ? 1 : e.packetId + 1
    return true
  }
  if (e.message.expiresAt !== 0 && e.message.expiresAt <= now) return false
  ;(s.queue ??= []).push(e)
  s.queuedBytes += e.message.payload.length
  return true
}

export abstract class NotedSessionStore implements SessionStore {
  protected readonly sessions = new Map<string, Session>()
  /** client ids whose record may be stored */
  protected readonly stored = new Set<string>()
  /** seqs of each client's entries that are stored */
  protected readonly writtenSeqs = new Map<string, Set<number>>()
  /** clients whose stored keys are removed before anything else is written */
  protected wipes = new Set<string>()
  protected notes = new Map<string, SessionNotes>()
  /** notes counted by noteCount, for the size of the next write */
  protected pendingNotes = 0

  abstract resume(clientId: string): Session | undefined | Promise<Session | undefined>
  abstract delete(clientId: string): void
  abstract flush(): Promise<void>
  /** Something was noted: the subclass makes sure a write follows. */
  protected abstract touched(): void

  /** Is this entry stored, or on its way? (A store whose writes are under way while notes go on says so here.) */
  protected mayBeStored(clientId: string, seq: number): boolean {
    return this.writtenSeqs.get(clientId)?.has(seq) === true
  }

  get size(): number {
    return this.sessions.size
  }

  /** Notes waiting to be written. */
  get pending(): number {
    return this.pendingNotes + this.wipes.size
  }

  get(clientId: string): Session | undefined {
    return this.sessions.get(clientId)
  }

  set(session: Session): void {
    this.sessions.set(session.clientId, session)
  }

  all(): IterableIterator<Session> {
    return this.sessions.values()
  }

  savedSession(session: Session): void {
    if (!kept(session) && !this.stored.has(session.clientId)) return
    this.notesOf(session)
  }

  savedSubscription(session: Session, filter: string): void {
    if (session.expiryIntervalSec === 0) return
    const filters = (this.notesOf(session).filters ??= new Set())
    if (filters.has(filter)) return
    filters.add(filter)
    this.added()
  }

  savedEntry(session: Session, entry: SessionEntry): void {
    if (session.expiryIntervalSec === 0) return
    const entries = (this.notesOf(session).entries ??= new Map())
    if (!entries.has(entry.seq)) this.added()
    entries.set(entry.seq, entry)
  }

  droppedEntry(session: Session, entry: SessionEntry): void {
    if (session.expiryIntervalSec === 0) return
    const notes = this.notes.get(session.clientId)
    const entries = notes?.session === session ? notes.entries : null
    if (!this.mayBeStored(session.clientId, entry.seq)) {
      // noted and done before it was written: never written at all
      if (entries?.delete(entry.seq)) this.pendingNotes--
      return
    }
    const map = entries ?? (this.notesOf(session).entries ??= new Map())
    if (!map.has(entry.seq)) this.added()
    map.set(entry.seq, null)
  }

  /** The notes of a session (a replaced session's notes give way to its successor's). */
  protected notesOf(session: Session): SessionNotes {
    let notes = this.notes.get(session.clientId)
    if (notes === undefined || notes.session !== session) {
      if (notes !== undefined) this.pendingNotes -= noteCount(notes)
      notes = { session, filters: null, entries: null }
      this.notes.set(session.clientId, notes)
      this.added() // the record
    }
    return notes
  }

  /** A client's notes are not written after all. */
  protected dropNotes(clientId: string): void {
    const notes = this.notes.get(clientId)
    if (notes === undefined) return
    this.pendingNotes -= noteCount(notes)
    this.notes.delete(clientId)
  }

  protected added(): void {
    this.pendingNotes++
    this.touched()
  }
}
