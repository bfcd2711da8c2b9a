// UNSUBSCRIBE: remove each filter; UNSUBACK (v5: a reason code per filter).
import type { IUnsubscribePacket } from 'mqtt-packet'
import type { Session } from '../session.ts'
import { RC } from '../codes.ts'

export function handleUnsubscribe(s: Session, p: IUnsubscribePacket): void {
  // [MQTT-3.10.3-2] at least one filter
  if (p.unsubscriptions.length === 0) return s.protocolError('UNSUBSCRIBE without any topic filter')
  const st = s.state!
  const codes: number[] = []
  for (const filter of p.unsubscriptions) {
    codes.push(s.broker.unsubscribe(st, filter) ? RC.success : RC.noSubscriptionExisted)
  }
  // [MQTT-3.10.4-4] UNSUBACK with the same packet identifier
  s.write(s.protocolVersion === 5
    ? { cmd: 'unsuback', messageId: p.messageId, granted: codes }
    : { cmd: 'unsuback', messageId: p.messageId, granted: [] })
}
