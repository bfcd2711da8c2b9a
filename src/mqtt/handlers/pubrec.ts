// PUBREC: the first acknowledgement of a QoS 2 message the broker sent; answer PUBREL [MQTT-4.3.3-4].
import type { IPubrecPacket } from 'mqtt-packet'
import type { Session } from '../session.ts'
import { RC } from '../codes.ts'
import { encodeAck } from '../outgoing.ts'

export function handlePubrec(s: Session, p: IPubrecPacket): void {
  const id = p.messageId!
  const inflight = s.state!.inflight
  const o = inflight?.get(id)
  if (o === undefined || o.qos !== 2) {
    if (s.protocolVersion === 5) s.write({ cmd: 'pubrel', messageId: id, reasonCode: RC.packetIdentifierNotFound })
    else s.send(encodeAck('pubrel', id))
    return
  }
  if (s.protocolVersion === 5 && (p.reasonCode ?? 0) >= 0x80) {
    // v5 4.3.3: a PUBREC with an error reason ends the exchange, no PUBREL
    inflight!.delete(id)
    s.drainQueue()
    return
  }
  o.stage = 'pubrel'
  s.send(encodeAck('pubrel', id))
}
