// PINGREQ: answer PINGRESP [MQTT-3.12.4-1]. Its arrival already refreshed the keepalive deadline.
import type { Connection } from '../connection.ts'
import { PINGRESP } from '../outgoing.ts'

export function handlePingreq(c: Connection): void {
  c.send(PINGRESP)
}
