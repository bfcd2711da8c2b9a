// PINGREQ: answer PINGRESP [MQTT-3.12.4-1]. Its arrival already refreshed the keepalive deadline.
import type { Session } from '../session.ts'
import { PINGRESP } from '../outgoing.ts'

export function handlePingreq(s: Session): void {
  s.send(PINGRESP)
}
