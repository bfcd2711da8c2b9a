// AUTH: enhanced authentication is not offered (a CONNECT naming a method is refused), so an AUTH packet is a protocol
// error: a client whose CONNECT had no Authentication Method must not send AUTH [MQTT-4.12.0-7].
import type { Connection } from '../connection.ts'

export function handleAuth(c: Connection): void {
  c.protocolError('the client sent AUTH, but no enhanced authentication was agreed')
}
