// UNSUBSCRIBE: remove each filter; UNSUBACK (v5: a reason code per filter).
import type { IUnsubscribePacket } from 'mqtt-packet'
import type { Connection } from '../connection.ts'
import { RC } from '../codes.ts'

export function handleUnsubscribe(c: Connection, p: IUnsubscribePacket): void {
  // [MQTT-3.10.3-2] at least one filter
  if (p.unsubscriptions.length === 0) return c.protocolError('UNSUBSCRIBE without any topic filter')
  const session = c.session!
  const codes: number[] = []
  for (const filter of p.unsubscriptions) {
    codes.push(c.broker.unsubscribe(session, filter) ? RC.success : RC.noSubscriptionExisted)
  }
  // [MQTT-3.10.4-4] UNSUBACK with the same packet identifier
  c.write(c.protocolVersion === 5
    ? { cmd: 'unsuback', messageId: p.messageId, granted: codes }
    : { cmd: 'unsuback', messageId: p.messageId, granted: [] })
}
