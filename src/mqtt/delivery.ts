// Delivering messages to one connection: QoS 0 goes out at once (or is dropped when the client stopped reading),
// QoS 1/2 go out under a packet id while the client's Receive Maximum window has room and wait in its session's
// queue otherwise (bounded by maxQueuedMessages / maxQueuedBytes); acknowledgements free the window; a resumed
// session gets its unacknowledged messages again, within the new connection's window. Retained messages for a new
// subscription are paced by the connection's output, never queued all at once.
import type { Connection } from './connection.ts'
import type { QoS } from 'mqtt-packet'
import type { Message } from './message.ts'
import type { Match } from './router.ts'
import type { Outgoing, Queued, Session } from './session.ts'
import type { Broker } from './broker.ts'
import type { SettingsValues } from '../contracts/settings.ts'
import { Fanout, encodeAck, encodePublish } from './outgoing.ts'
import { mayReceive } from './access.ts'

/** Retained messages waiting to be sent to a connection for its new subscriptions, at most this many. */
export const MAX_RETAINED_BACKLOG = 100_000

/** A retained message due to a new subscription. */
export interface RetainedDelivery {
  message: Message
  match: Match
}

/** A routed message for this connection (or a retained one on subscribe, `retained` true). */
export function deliver(c: Connection, fan: Fanout, m: Match, retained: boolean): void {
  const msg = fan.message
  if (msg.expiresAt !== 0 && msg.expiresAt <= fan.now) return
  if (!mayReceive(c, msg.topic)) return // a subscription that a later ACL rule forbids stops receiving
  const qos = msg.qos < m.qos ? msg.qos : m.qos
  // [MQTT-3.3.1-8] retained on subscribe keep the flag; [MQTT-3.3.1-9] / v5 Retain As Published otherwise
  const retain = retained || (m.retainAsPublished && msg.retain)
  if (qos === 0) {
    if (c.outbox.congested) {
      c.broker.stats.messagesDropped++ // a slow client loses QoS 0 rather than the broker growing without bound
      return
    }
    // the shared encoding, unless this client gets its own (subscription identifiers, a topic alias)
    const alias = c.outboundAliases?.use(msg.topic) ?? null
    const buf = m.subscriptionIds.length === 0 && alias === null
      ? fan.qos0(c.protocolVersion, retain)
      : encodePublish(msg, { qos: 0, retain, packetId: 0, dup: false, subscriptionIds: m.subscriptionIds },
        c.protocolVersion, fan.now, alias)
    if (tooLargeForClient(c, buf)) return
    c.broker.stats.messagesDelivered++
    c.send(buf)
    c.outboundAliases?.sent(msg.topic, alias)
    return
  }
  // QoS 1/2: sent now if the window has room, nothing waits before it and the client reads; else queued
  const session = c.session!
  if (session.queue !== null || c.unsent > 0 || windowFull(c, session) || c.outbox.congested) {
    queueMessage(c.broker, session, msg, qos, retain, m.subscriptionIds, c.values)
  } else {
    sendInflight(c, session, session.nextSeq++, null, msg, qos as 1 | 2, retain, m.subscriptionIds, fan.now)
  }
}

/** The client acknowledged the message in flight under `packetId` for good: its slot frees, the queue moves on. */
export function acknowledged(c: Connection, packetId: number): void {
  const session = c.session!
  const o = session.inflight!.get(packetId)!
  session.inflight!.delete(packetId)
  c.broker.sessions.droppedEntry(session, o)
  drainQueue(c)
}

/**
 * After CONNACK: send again what was unacknowledged (DUP, original packet ids) [MQTT-4.4.0-1], as many as the new
 * connection's Receive Maximum allows [MQTT-3.3.4-7] (the rest as acknowledgements free the window); one now over
 * its Maximum Packet Size is discarded as if delivered [MQTT-3.1.2-25]. Then the queue.
 */
export function resendInflight(c: Connection): void {
  const session = c.session!
  c.unsent = 0
  if (session.inflight !== null) {
    const now = Date.now()
    let sent = 0
    for (const o of session.inflight.values()) {
      if (sent >= c.sendWindow) {
        o.unsent = true
        c.unsent++
        continue
      }
      if (resend(c, session, o, now)) sent++
    }
  }
  drainQueue(c)
}

/** The outbox has room again: the unsent, the queued, then pending retained messages go on. */
export function resumeDelivery(c: Connection): void {
  drainQueue(c)
  pumpRetained(c)
}

/**
 * Put a QoS 1/2 message in the session's queue, dropping it (counted) when the queue is at maxQueuedMessages or
 * maxQueuedBytes. The payload is the message's own copy (see broker.publish), not a view into a larger buffer.
 */
export function queueMessage(
  b: Broker, session: Session, message: Message, qos: QoS, retain: boolean, subscriptionIds: number[],
  limits: Pick<SettingsValues, 'maxQueuedMessages' | 'maxQueuedBytes'>,
): void {
  const queue = (session.queue ??= [])
  const size = message.payload.length
  if (queue.length >= limits.maxQueuedMessages || session.queuedBytes + size > limits.maxQueuedBytes) {
    b.stats.messagesDropped++
    if (queue.length === 0) session.queue = null
    return
  }
  const q: Queued = { seq: session.nextSeq++, message, qos, retain, subscriptionIds }
  queue.push(q)
  session.queuedBytes += size
  b.sessions.savedEntry(session, q)
}

/** Queue the retained messages of new subscriptions and start sending them, paced by the connection's output. */
export function sendRetained(c: Connection, due: RetainedDelivery[]): void {
  if (due.length === 0) return
  const backlog = (c.retainedBacklog ??= [])
  const room = MAX_RETAINED_BACKLOG - backlog.length
  if (due.length > room) c.broker.stats.messagesDropped += due.length - Math.max(room, 0)
  for (let i = 0; i < due.length && i < room; i++) backlog.push(due[i])
  pumpRetained(c)
}

/** Send pending retained messages while the output takes them: at most maxOutputBytes per I/O turn. */
function pumpRetained(c: Connection): void {
  const backlog = c.retainedBacklog
  if (backlog === null || c.phase !== 'connected') return
  const budget = c.values.maxOutputBytes
  const start = c.outbox.bytes
  let i = 0
  const now = Date.now()
  while (i < backlog.length && !c.outbox.blocked && c.outbox.bytes - start < budget) {
    const { message, match } = backlog[i++]
    // [MQTT-3.3.1-6] retained messages matching a new subscription are sent with RETAIN set
    deliver(c, new Fanout(message, now), match, true)
  }
  backlog.splice(0, i)
  if (backlog.length === 0) {
    c.retainedBacklog = null
  } else if (!c.outbox.blocked) {
    setImmediate(pumpLater, c) // the budget of this turn is spent: the rest after the flush
  } // else: the outbox's drained() calls resumeDelivery
}

function pumpLater(c: Connection): void {
  try {
    pumpRetained(c)
  } catch (err) {
    c.broker.logger?.error({ err, clientId: c.clientId }, 'sending retained messages failed: closing the connection')
    c.transport.destroy()
  }
}

/** Send what waits while the Receive Maximum window has room and the client reads: unsent first, then the queue. */
function drainQueue(c: Connection): void {
  const session = c.session
  if (session === null) return
  const now = Date.now()
  if (c.unsent > 0 && session.inflight !== null) {
    for (const o of session.inflight.values()) {
      if (c.unsent === 0 || windowFull(c, session) || c.outbox.congested) break
      if (!o.unsent) continue
      o.unsent = false
      c.unsent--
      resend(c, session, o, now)
    }
  }
  if (session.queue === null || c.unsent > 0) return
  while (session.queue.length > 0 && !windowFull(c, session) && !c.outbox.congested) {
    const q = session.queue.shift()!
    session.queuedBytes -= q.message.payload.length
    if (!mayReceive(c, q.message.topic)) {
      c.broker.sessions.droppedEntry(session, q) // queued before a rule that forbids it
      continue
    }
    sendInflight(c, session, q.seq, q, q.message, q.qos as 1 | 2, q.retain, q.subscriptionIds, now)
  }
  if (session.queue.length === 0) {
    session.queue = null
    session.queuedBytes = 0
  }
}

/** Messages sent and not yet acknowledged fill the client's Receive Maximum (unsent ones are not on the wire). */
function windowFull(c: Connection, session: Session): boolean {
  return (session.inflight === null ? 0 : session.inflight.size - c.unsent) >= c.sendWindow
}

/** Send an in-flight message again on this connection; false when it is discarded instead. */
function resend(c: Connection, session: Session, o: Outgoing, now: number): boolean {
  if (o.stage === 'pubrel') {
    c.send(encodeAck('pubrel', o.packetId))
    return true
  }
  o.dup = true // [MQTT-3.3.1-1] a re-delivery sets DUP
  const alias = c.outboundAliases?.use(o.message.topic) ?? null
  const buf = encodePublish(o.message, o, c.protocolVersion, now, alias)
  if (tooLargeForClient(c, buf)) {
    session.inflight!.delete(o.packetId)
    c.broker.sessions.droppedEntry(session, o)
    return false
  }
  c.send(buf)
  c.outboundAliases?.sent(o.message.topic, alias)
  return true
}

/**
 * Send a QoS 1/2 message under a new packet id; its in-flight record (entry `seq`, the same as the Queued entry
 * `queued` it was, if any) is also the encoder's fields.
 */
function sendInflight(
  c: Connection, session: Session, seq: number, queued: Queued | null, message: Message, qos: 1 | 2, retain: boolean,
  subscriptionIds: number[], now: number,
): void {
  if ((message.expiresAt !== 0 && message.expiresAt <= now)) {
    if (queued !== null) c.broker.sessions.droppedEntry(session, queued)
    return
  }
  const inflight = (session.inflight ??= new Map())
  const out: Outgoing = {
    seq, packetId: nextPacketId(session, inflight), message, qos, retain, dup: false, subscriptionIds, stage: 'publish',
    unsent: false,
  }
  const alias = c.outboundAliases?.use(message.topic) ?? null
  const buf = encodePublish(message, out, c.protocolVersion, now, alias)
  if (tooLargeForClient(c, buf)) {
    if (queued !== null) c.broker.sessions.droppedEntry(session, queued)
    return
  }
  inflight.set(out.packetId, out)
  c.broker.sessions.savedEntry(session, out)
  c.broker.stats.messagesDelivered++
  c.send(buf)
  c.outboundAliases?.sent(message.topic, alias)
}

/** [MQTT-3.1.2-25] a packet over the client's Maximum Packet Size is discarded as if it had been delivered. */
function tooLargeForClient(c: Connection, buf: Buffer): boolean {
  if (c.clientMaxPacketSize === 0 || buf.length <= c.clientMaxPacketSize) return false
  c.broker.stats.messagesDropped++
  return true
}

/** A packet id not in use by another message in flight [MQTT-2.3.1-4]. */
function nextPacketId(session: Session, inflight: Map<number, Outgoing>): number {
  let id = session.nextPacketId
  while (inflight.has(id)) id = id === 65535 ? 1 : id + 1
  session.nextPacketId = id === 65535 ? 1 : id + 1
  return id
}
