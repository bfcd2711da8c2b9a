// Encoding PUBLISH packets for subscribers. A message reaching many subscribers with the same per-subscriber
// fields (QoS 0, same retain flag, no subscription identifier) is serialised once per wire format and the same
// Buffer is written to every one of them.
import mqttPacket, { type IPublishPacket, type QoS } from 'mqtt-packet'
import type { Message } from './message.ts'

const { generate } = mqttPacket

export interface PublishFields {
  qos: QoS
  retain: boolean
  packetId: number
  dup: boolean
  subscriptionIds: number[]
}

/** The v5 properties of an outgoing PUBLISH: forwarded ones, the remaining expiry, subscription identifiers. */
function outgoingProperties(msg: Message, subscriptionIds: number[], now: number): IPublishPacket['properties'] {
  if (msg.properties === null && msg.expiresAt === 0 && subscriptionIds.length === 0) return undefined
  const props: NonNullable<IPublishPacket['properties']> = msg.properties === null ? {} : { ...msg.properties }
  // [MQTT-3.3.2-6] the interval sent is the received one minus the time the message waited in the server
  if (msg.expiresAt !== 0) props.messageExpiryInterval = Math.max(1, Math.ceil((msg.expiresAt - now) / 1000))
  if (subscriptionIds.length === 1) props.subscriptionIdentifier = subscriptionIds[0]
  else if (subscriptionIds.length > 1) props.subscriptionIdentifier = subscriptionIds
  return props
}

export function encodePublish(msg: Message, f: PublishFields, protocolVersion: number, now: number): Buffer {
  const packet: IPublishPacket = {
    cmd: 'publish',
    topic: msg.topic,
    payload: msg.payload,
    qos: f.qos,
    retain: f.retain,
    dup: f.dup,
  }
  if (f.qos > 0) packet.messageId = f.packetId
  if (protocolVersion === 5) {
    const props = outgoingProperties(msg, f.subscriptionIds, now)
    if (props !== undefined) packet.properties = props
    return generate(packet, V5)
  }
  return generate(packet, V4)
}

const V4 = { protocolVersion: 4 }
const V5 = { protocolVersion: 5 }
const NO_IDS: number[] = []

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
    const fields = { qos: 0 as QoS, retain, packetId: 0, dup: false, subscriptionIds: NO_IDS }
    if (protocolVersion === 5) {
      if (retain) return (this.#v5r ??= encodePublish(this.message, fields, 5, this.now))
      return (this.#v5 ??= encodePublish(this.message, fields, 5, this.now))
    }
    if (retain) return (this.#v4r ??= encodePublish(this.message, fields, 4, this.now))
    return (this.#v4 ??= encodePublish(this.message, fields, 4, this.now))
  }
}
