// The client's acknowledgements of the QoS 1/2 messages the broker sent it: PUBACK ends a QoS 1 exchange, PUBREC
// moves a QoS 2 one to PUBREL [MQTT-4.3.3-4], PUBCOMP ends it. An ended exchange frees its slot in the Receive
// Maximum window, and the queue moves on (acknowledged() in ../delivery.ts). A late or unknown ack changes nothing.
import type { IPubackPacket, IPubcompPacket, IPubrecPacket } from 'mqtt-packet'
import type { Connection } from '../connection.ts'
import { RC } from '../codes.ts'
import { encodeAck } from '../outgoing.ts'
import { acknowledged } from '../delivery.ts'

export function handlePuback(c: Connection, p: IPubackPacket): void {
  const id = p.messageId!
  if (c.session!.inflight?.get(id)?.qos === 1) acknowledged(c, id)
}

export function handlePubrec(c: Connection, p: IPubrecPacket): void {
  const id = p.messageId!
  const o = c.session!.inflight?.get(id)
  if (o === undefined || o.qos !== 2) {
    if (c.protocolVersion === 5) c.write({ cmd: 'pubrel', messageId: id, reasonCode: RC.packetIdentifierNotFound })
    else c.send(encodeAck('pubrel', id))
    return
  }
  // v5 4.3.3: a PUBREC with an error reason ends the exchange, no PUBREL
  if (c.protocolVersion === 5 && (p.reasonCode ?? 0) >= 0x80) return acknowledged(c, id)
  o.stage = 'pubrel'
  c.broker.sessions.savedEntry(c.session!, o)
  c.send(encodeAck('pubrel', id))
}

export function handlePubcomp(c: Connection, p: IPubcompPacket): void {
  const id = p.messageId!
  if (c.session!.inflight?.get(id)?.stage === 'pubrel') acknowledged(c, id)
}
