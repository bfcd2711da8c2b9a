// Delivering messages to one connection: QoS 0 goes out at once (or is dropped when the client stopped reading),
// QoS 1/2 go out under a packet id while the client's Receive Maximum window has room and wait in its session's
// queue otherwise; acknowledgements free the window; a resumed session gets its unacknowledged messages again.
import type { Connection } from './connection.ts'
import type { BrokerStats } from './types.ts'
import type { Message } from './message.ts'
import type { Match } from './router.ts'
import type { Outgoing, Queued, Session } from './session.ts'
import { encodeAck, encodePublish, type Fanout } from './outgoing.ts'
import { MAX_QUEUED } from './limits.ts'
import { mayReceive } from './access.ts'

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
    const buf = m.subscriptionIds.length === 0
      ? fan.qos0(c.protocolVersion, retain)
      : encodePublish(msg, { qos: 0, retain, packetId: 0, dup: false, subscriptionIds: m.subscriptionIds },
        c.protocolVersion, fan.now)
    if (tooLargeForClient(c, buf)) return
    c.broker.stats.messagesDelivered++
    c.send(buf)
    return
  }
  // QoS 1/2: sent now if the Receive Maximum window has room and nothing waits before it, else queued
  const session = c.session!
  if ((session.queue !== null && session.queue.length > 0) || (session.inflight?.size ?? 0) >= c.sendWindow) {
    queueMessage(c.broker.stats, session, { message: msg, qos, retain, subscriptionIds: m.subscriptionIds })
  } else {
    sendInflight(c, session, msg, qos as 1 | 2, retain, m.subscriptionIds, fan.now)
  }
}

/** The client acknowledged the message in flight under `packetId` for good: its slot frees, the queue moves on. */
export function acknowledged(c: Connection, packetId: number): void {
  c.session!.inflight!.delete(packetId)
  drainQueue(c)
}

/** After CONNACK: resend what was unacknowledged (DUP) [MQTT-4.4.0-1], then the queue. */
export function resendInflight(c: Connection): void {
  const session = c.session!
  if (session.inflight !== null) {
    const now = Date.now()
    for (const o of session.inflight.values()) {
      if (o.stage === 'pubrel') {
        c.send(encodeAck('pubrel', o.packetId))
      } else {
        o.dup = true // [MQTT-3.3.1-1] a re-delivery sets DUP
        c.send(encodePublish(o.message, o, c.protocolVersion, now))
      }
    }
  }
  drainQueue(c)
}

/** Put a QoS 1/2 message in the session's queue, dropping it (counted) when the queue is full. */
export function queueMessage(stats: BrokerStats, session: Session, q: Queued): void {
  const queue = (session.queue ??= [])
  if (queue.length >= MAX_QUEUED) {
    stats.messagesDropped++
    return
  }
  queue.push(q)
}

/** Send what waits in the queue while the Receive Maximum window has room. */
function drainQueue(c: Connection): void {
  const session = c.session
  if (session === null || session.queue === null) return
  const now = Date.now()
  while (session.queue.length > 0 && (session.inflight?.size ?? 0) < c.sendWindow) {
    const q = session.queue.shift()!
    if (!mayReceive(c, q.message.topic)) continue // queued before a rule that forbids it
    sendInflight(c, session, q.message, q.qos as 1 | 2, q.retain, q.subscriptionIds, now)
  }
  if (session.queue.length === 0) session.queue = null
}

/** Send a QoS 1/2 message under a new packet id; its in-flight record is also the encoder's fields. */
function sendInflight(
  c: Connection, session: Session, message: Message, qos: 1 | 2, retain: boolean, subscriptionIds: number[], now: number,
): void {
  if (message.expiresAt !== 0 && message.expiresAt <= now) return
  const inflight = (session.inflight ??= new Map())
  const out: Outgoing = {
    packetId: nextPacketId(session, inflight), message, qos, retain, dup: false, subscriptionIds, stage: 'publish',
  }
  const buf = encodePublish(message, out, c.protocolVersion, now)
  if (tooLargeForClient(c, buf)) return
  inflight.set(out.packetId, out)
  c.broker.stats.messagesDelivered++
  c.send(buf)
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
