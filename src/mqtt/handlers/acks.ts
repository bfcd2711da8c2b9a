// The client's acknowledgements of the QoS 1/2 messages the broker sent it: PUBACK ends a QoS 1 exchange, PUBREC
// moves a QoS 2 one to PUBREL [MQTT-4.3.3-4], PUBCOMP ends it. An ended exchange frees its slot in the Receive
// Maximum window, and the queue moves on (Session.acknowledged). A late or unknown ack changes nothing.
import type { IPubackPacket, IPubcompPacket, IPubrecPacket } from 'mqtt-packet'
import type { Session } from '../session.ts'
import { RC } from '../codes.ts'
import { encodeAck } from '../outgoing.ts'

export function handlePuback(s: Session, p: IPubackPacket): void {
  const id = p.messageId!
  if (s.state!.inflight?.get(id)?.qos === 1) s.acknowledged(id)
}

export function handlePubrec(s: Session, p: IPubrecPacket): void {
  const id = p.messageId!
  const o = s.state!.inflight?.get(id)
  if (o === undefined || o.qos !== 2) {
    if (s.protocolVersion === 5) s.write({ cmd: 'pubrel', messageId: id, reasonCode: RC.packetIdentifierNotFound })
    else s.send(encodeAck('pubrel', id))
    return
  }
  // v5 4.3.3: a PUBREC with an error reason ends the exchange, no PUBREL
  if (s.protocolVersion === 5 && (p.reasonCode ?? 0) >= 0x80) return s.acknowledged(id)
  o.stage = 'pubrel'
  s.send(encodeAck('pubrel', id))
}

export function handlePubcomp(s: Session, p: IPubcompPacket): void {
  const id = p.messageId!
  if (s.state!.inflight?.get(id)?.stage === 'pubrel') s.acknowledged(id)
}
