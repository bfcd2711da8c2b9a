// PUBCOMP: the last acknowledgement of a QoS 2 message the broker sent; its slot frees.
import type { IPubcompPacket } from 'mqtt-packet'
import type { Session } from '../session.ts'

export function handlePubcomp(s: Session, p: IPubcompPacket): void {
  const inflight = s.state!.inflight
  const o = inflight?.get(p.messageId!)
  if (o === undefined || o.stage !== 'pubrel') return
  inflight!.delete(p.messageId!)
  s.drainQueue()
}
