// Encoding the packets the broker sends most: PUBLISH to subscribers and the 4-byte acknowledgements.
// A message reaching many subscribers with the same per-subscriber fields (QoS 0, same retain flag, no
// subscription identifier) is serialised once per wire format and the same Buffer is written to every one of them.
//
// PUBLISH without v5 properties and the acknowledgements are written here directly into one Buffer of the exact
// size: mqtt-packet's generate() builds an EventEmitter and a list of small chunks for each packet, which costs
// more than the routing itself at tens of thousands of messages per second. Every other packet, and a PUBLISH
// with properties, goes through generate(). test/mqtt/core-encoding.test.ts checks both give the same bytes.
import mqttPacket, { type IPublishPacket, type QoS } from 'mqtt-packet'
import type { Message } from './message.ts'
import { varIntLength, writeVarInt } from './wire.ts'

const { generate } = mqttPacket

export interface PublishFields {
  qos: QoS
  retain: boolean
  packetId: number
  dup: boolean
  subscriptionIds: number[]
}

/** The v5 properties of an outgoing PUBLISH: forwarded ones, the remaining expiry, subscription identifiers. */
function outgoingProperties(msg: Message, subscriptionIds: number[], now: number): NonNullable<IPublishPacket['properties']> {
  const props: NonNullable<IPublishPacket['properties']> = msg.properties === null ? {} : { ...msg.properties }
  // [MQTT-3.3.2-6] the interval sent is the received one minus the time the message waited in the server
  // (whole seconds, rounded down: the subscriber never holds a message longer than the publisher allowed)
  if (msg.expiresAt !== 0) props.messageExpiryInterval = Math.max(1, Math.floor((msg.expiresAt - now) / 1000))
  if (subscriptionIds.length === 1) props.subscriptionIdentifier = subscriptionIds[0]
  else if (subscriptionIds.length > 1) props.subscriptionIdentifier = subscriptionIds
  return props
}

/** A topic alias on a PUBLISH to an MQTT 5 client: the alias, and whether the client already knows its topic. */
export interface AliasUse {
  alias: number
  known: boolean
}

export function encodePublish(msg: Message, f: PublishFields, protocolVersion: number, now: number, alias: AliasUse | null = null): Buffer {
  // only an MQTT 5 PUBLISH with properties to send goes through generate()
  if (protocolVersion !== 5 || (alias === null && msg.properties === null && msg.expiresAt === 0 && f.subscriptionIds.length === 0)) {
    return encodePlainPublish(msg.topic, msg.payload, f.qos, f.retain, f.dup, f.packetId, protocolVersion === 5)
  }
  const packet: IPublishPacket = {
    cmd: 'publish',
    // a topic alias the client knows stands for the topic, which is then sent empty (MQTT 5 3.3.2.3.4)
    topic: alias !== null && alias.known ? '' : msg.topic,
    payload: msg.payload,
    qos: f.qos,
    retain: f.retain,
    dup: f.dup,
  }
  if (f.qos > 0) packet.messageId = f.packetId
  packet.properties = outgoingProperties(msg, f.subscriptionIds, now)
  if (alias !== null) packet.properties.topicAlias = alias.alias
  return generate(packet, V5)
}

const V5 = { protocolVersion: 5 }
/** The subscription identifiers of a subscription that has none (shared, never written to). */
export const NO_IDS: number[] = []

/** One published message on its way to its subscribers: caches the shared QoS 0 encodings. */
export class Fanout {
  readonly message: Message
  readonly now: number
  #v4: Buffer | null = null
  #v4r: Buffer | null = null
  #v5: Buffer | null = null
  #v5r: Buffer | null = null

  constructor(message: Message, now: number) {
    this.message = message
    this.now = now
  }

  /** The QoS 0 encoding without subscription identifiers for one wire format and retain flag. */
  qos0(protocolVersion: number, retain: boolean): Buffer {
    if (protocolVersion === 5) {
      if (retain) return (this.#v5r ??= this.#encode(5, true))
      return (this.#v5 ??= this.#encode(5, false))
    }
    if (retain) return (this.#v4r ??= this.#encode(4, true))
    return (this.#v4 ??= this.#encode(4, false))
  }

  /** (only on a cache miss: a delivery that reuses an encoding allocates nothing) */
  #encode(protocolVersion: number, retain: boolean): Buffer {
    return encodePublish(this.message, { qos: 0, retain, packetId: 0, dup: false, subscriptionIds: NO_IDS },
      protocolVersion, this.now)
  }
}

/** A PUBLISH without properties (MQTT 3.x, or MQTT 5 with an empty property list) in one exact-size Buffer. */
export function encodePlainPublish(
  topic: string, payload: Buffer, qos: QoS, retain: boolean, dup: boolean, packetId: number, v5: boolean,
): Buffer {
  const topicLength = Buffer.byteLength(topic)
  const remaining = 2 + topicLength + (qos > 0 ? 2 : 0) + (v5 ? 1 : 0) + payload.length
  const buf = Buffer.allocUnsafe(1 + varIntLength(remaining) + remaining)
  buf[0] = 0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0)
  let at = writeVarInt(buf, 1, remaining)
  buf[at++] = topicLength >> 8
  buf[at++] = topicLength & 0xff
  at += buf.write(topic, at, 'utf8')
  if (qos > 0) {
    buf[at++] = packetId >> 8
    buf[at++] = packetId & 0xff
  }
  if (v5) buf[at++] = 0 // property length 0
  payload.copy(buf, at)
  return buf
}

const ACK_TYPES = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 } as const

/**
 * PUBACK, PUBREC, PUBREL or PUBCOMP with reason Success: 4 bytes in every version (MQTT 5 3.4.2.1: the reason code
 * and property length may be left out when the reason is 0x00 and there are no properties).
 */
export function encodeAck(cmd: keyof typeof ACK_TYPES, packetId: number): Buffer {
  const buf = Buffer.allocUnsafe(4)
  buf[0] = ACK_TYPES[cmd]
  buf[1] = 2
  buf[2] = packetId >> 8
  buf[3] = packetId & 0xff
  return buf
}

/** PINGRESP is always the same two bytes. */
export const PINGRESP = Buffer.from([0xd0, 0x00])
