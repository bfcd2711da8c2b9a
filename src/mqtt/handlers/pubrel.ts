// PUBREL: the client releases a QoS 2 message it published; answer PUBCOMP [MQTT-4.3.3-11].
import type { IPubrelPacket } from 'mqtt-packet'
import type { Connection } from '../connection.ts'
import { RC } from '../codes.ts'
import { encodeAck } from '../outgoing.ts'

export function handlePubrel(c: Connection, p: IPubrelPacket): void {
  const id = p.messageId!
  const session = c.session!
  const known = session.incomingQos2?.delete(id) ?? false
  if (known) c.broker.sessions.savedSession(session)
  if (c.protocolVersion === 5 && !known) c.write({ cmd: 'pubcomp', messageId: id, reasonCode: RC.packetIdentifierNotFound })
  else c.send(encodeAck('pubcomp', id))
}
