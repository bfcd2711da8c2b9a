// PUBACK: a QoS 1 message the broker sent is acknowledged; its slot in the Receive Maximum window frees.
import type { IPubackPacket } from 'mqtt-packet'
import type { Session } from '../session.ts'

export function handlePuback(s: Session, p: IPubackPacket): void {
  const inflight = s.state!.inflight
  const o = inflight?.get(p.messageId!)
  if (o === undefined || o.qos !== 1) return // a late or unknown ack: nothing to do
  inflight!.delete(p.messageId!)
  s.drainQueue()
}
