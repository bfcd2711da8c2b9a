// One handler per packet type behind one dispatcher, with the protocol gate at the top.
import type { Packet } from 'mqtt-packet'
import type { Connection } from '../connection.ts'
import { handleConnect } from './connect.ts'
import { handlePublish } from './publish.ts'
import { handlePuback, handlePubrec, handlePubcomp } from './acks.ts'
import { handlePubrel } from './pubrel.ts'
import { handleSubscribe } from './subscribe.ts'
import { handleUnsubscribe } from './unsubscribe.ts'
import { handlePingreq } from './pingreq.ts'
import { handleDisconnect } from './disconnect.ts'
import { handleAuth } from './auth.ts'

export function dispatch(c: Connection, packet: Packet): void {
  if (c.phase === 'awaiting_connect') {
    // [MQTT-3.1.0-1] the first packet from the client MUST be CONNECT
    if (packet.cmd !== 'connect') return c.protocolError(`the first packet was ${packet.cmd.toUpperCase()}, not CONNECT`)
    c.connectReceived()
    return handleConnect(c, packet)
  }
  if (packet.cmd === 'publish') return handlePublish(c, packet) // the most frequent; checks its own packet id
  // [MQTT-2.3.1-1] packets that carry a packet identifier need a non-zero one
  if (WITH_PACKET_ID.has(packet.cmd) && !(packet as { messageId?: number }).messageId) {
    return c.protocolError(`${packet.cmd.toUpperCase()} with packet identifier 0`)
  }
  switch (packet.cmd) {
    case 'puback':
      return handlePuback(c, packet)
    case 'pubrec':
      return handlePubrec(c, packet)
    case 'pubrel':
      return handlePubrel(c, packet)
    case 'pubcomp':
      return handlePubcomp(c, packet)
    case 'subscribe':
      return handleSubscribe(c, packet)
    case 'unsubscribe':
      return handleUnsubscribe(c, packet)
    case 'pingreq':
      return handlePingreq(c)
    case 'disconnect':
      return handleDisconnect(c, packet)
    case 'auth':
      return handleAuth(c)
    case 'connect':
      // [MQTT-3.1.0-2] a second CONNECT is a protocol violation
      return c.protocolError('a second CONNECT on a connected session')
    default:
      return c.protocolError(`the client sent ${packet.cmd.toUpperCase()}, a packet only a server sends`)
  }
}

const WITH_PACKET_ID: ReadonlySet<Packet['cmd']> = new Set(['puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'unsubscribe'])
