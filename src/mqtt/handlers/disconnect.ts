// DISCONNECT from the client: a normal end, not a failure. The Will is discarded on reason 0x00 and kept on any
// other v5 reason, e.g. 0x04 "disconnect with Will message" [MQTT-3.14.4-3].
import type { IDisconnectPacket } from 'mqtt-packet'
import type { Session } from '../session.ts'
import { RC } from '../codes.ts'

export function handleDisconnect(s: Session, p: IDisconnectPacket): void {
  if (s.protocolVersion !== 5) return s.disconnect(false)
  const expiry = p.properties?.sessionExpiryInterval
  if (expiry !== undefined) {
    // repeated (an array) or unreadable (-1): v5 3.14.2.2.2 Protocol Error / Malformed Packet
    if (typeof expiry !== 'number' || expiry < 0) {
      return s.protocolError('DISCONNECT with an unreadable or repeated Session Expiry Interval',
        Array.isArray(expiry) ? RC.protocolError : RC.malformedPacket)
    }
    const st = s.state!
    // [MQTT-3.14.2-2] a session that had expiry 0 cannot be given one at DISCONNECT
    if (st.expiryIntervalSec === 0 && expiry !== 0) {
      return s.protocolError('DISCONNECT set a Session Expiry Interval on a session opened with none')
    }
    st.expiryIntervalSec = expiry
  }
  s.disconnect((p.reasonCode ?? RC.success) !== RC.success)
}
