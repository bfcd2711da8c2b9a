// DISCONNECT from the client: a normal end, not a failure. The Will is discarded on reason 0x00 and kept on any
// other v5 reason, e.g. 0x04 "disconnect with Will message" [MQTT-3.14.4-3].
import type { IDisconnectPacket } from 'mqtt-packet'
import type { Connection } from '../connection.ts'
import { RC } from '../codes.ts'
import { cappedExpiry } from './connect.ts'

export function handleDisconnect(c: Connection, p: IDisconnectPacket): void {
  if (c.protocolVersion !== 5) return c.disconnect(false)
  const expiry = p.properties?.sessionExpiryInterval
  if (expiry !== undefined) {
    // repeated (an array) or unreadable (-1): v5 3.14.2.2.2 Protocol Error / Malformed Packet
    if (typeof expiry !== 'number' || expiry < 0) {
      return c.protocolError('DISCONNECT with an unreadable or repeated Session Expiry Interval',
        Array.isArray(expiry) ? RC.protocolError : RC.malformedPacket)
    }
    const session = c.session!
    // [MQTT-3.14.2-2] a session that had expiry 0 cannot be given one at DISCONNECT
    if (session.expiryIntervalSec === 0 && expiry !== 0) {
      return c.protocolError('DISCONNECT set a Session Expiry Interval on a session opened with none')
    }
    session.expiryIntervalSec = cappedExpiry(c, expiry)
  }
  c.disconnect((p.reasonCode ?? RC.success) !== RC.success)
}
