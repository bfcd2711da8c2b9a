// AUTH: enhanced authentication is not offered, so an AUTH packet is a protocol error [MQTT-3.15.0-? / 4.12].
import type { Connection } from '../connection.ts'

export function handleAuth(c: Connection): void {
  c.protocolError('the client sent AUTH, but no enhanced authentication was agreed')
}
