// One handler per packet type behind one dispatcher, with the protocol gate at the top.
import type { Packet } from 'mqtt-packet'
import type { Session } from '../session.ts'
import { handleConnect } from './connect.ts'
import { handlePublish } from './publish.ts'
import { handlePuback } from './puback.ts'
import { handlePubrec } from './pubrec.ts'
import { handlePubrel } from './pubrel.ts'
import { handlePubcomp } from './pubcomp.ts'
import { handleSubscribe } from './subscribe.ts'
import { handleUnsubscribe } from './unsubscribe.ts'
import { handlePingreq } from './pingreq.ts'
import { handleDisconnect } from './disconnect.ts'
import { handleAuth } from './auth.ts'

export function dispatch(s: Session, packet: Packet): void {
  if (s.phase === 'awaiting_connect') {
    // [MQTT-3.1.0-1] the first packet from the client MUST be CONNECT
    if (packet.cmd !== 'connect') return s.protocolError(`the first packet was ${packet.cmd.toUpperCase()}, not CONNECT`)
    return handleConnect(s, packet)
  }
  switch (packet.cmd) {
    case 'publish':
      return handlePublish(s, packet)
    case 'puback':
      if (withPacketId(s, packet)) handlePuback(s, packet)
      return
    case 'pubrec':
      if (withPacketId(s, packet)) handlePubrec(s, packet)
      return
    case 'pubrel':
      if (withPacketId(s, packet)) handlePubrel(s, packet)
      return
    case 'pubcomp':
      if (withPacketId(s, packet)) handlePubcomp(s, packet)
      return
    case 'subscribe':
      if (withPacketId(s, packet)) handleSubscribe(s, packet)
      return
    case 'unsubscribe':
      if (withPacketId(s, packet)) handleUnsubscribe(s, packet)
      return
    case 'pingreq':
      return handlePingreq(s)
    case 'disconnect':
      return handleDisconnect(s, packet)
    case 'auth':
      return handleAuth(s)
    case 'connect':
      // [MQTT-3.1.0-2] a second CONNECT is a protocol violation
      return s.protocolError('a second CONNECT on a connected session')
    default:
      return s.protocolError(`the client sent ${packet.cmd.toUpperCase()}, a packet only a server sends`)
  }
}

/** [MQTT-2.3.1-1] packets that carry a packet identifier need a non-zero one. */
function withPacketId(s: Session, packet: { cmd: string; messageId?: number }): boolean {
  if (packet.messageId) return true
  s.protocolError(`${packet.cmd.toUpperCase()} with packet identifier 0`)
  return false
}
