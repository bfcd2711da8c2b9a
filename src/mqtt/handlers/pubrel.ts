// PUBREL: the client releases a QoS 2 message it published; answer PUBCOMP [MQTT-4.3.3-11].
import type { IPubrelPacket } from 'mqtt-packet'
import type { Session } from '../session.ts'
import { RC } from '../codes.ts'
import { encodeAck } from '../outgoing.ts'

export function handlePubrel(s: Session, p: IPubrelPacket): void {
  const id = p.messageId!
  const known = s.state!.incomingQos2?.delete(id) ?? false
  if (s.protocolVersion === 5 && !known) s.write({ cmd: 'pubcomp', messageId: id, reasonCode: RC.packetIdentifierNotFound })
  else s.send(encodeAck('pubcomp', id))
}
