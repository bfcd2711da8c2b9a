// An application message inside the broker: what a PUBLISH or a Will carries, independent of who receives it.
import type { IPublishPacket, QoS } from 'mqtt-packet'
import type { ForwardedProperties } from '../contracts/state.ts'
import { RC } from './codes.ts'
import { fitsMqttString } from './topics.ts'

export type { ForwardedProperties, Message, Will } from '../contracts/state.ts'

type PublishProperties = NonNullable<IPublishPacket['properties']>

/** The forwardable subset of a PUBLISH's (or a Will's) properties; null when there is none. */
export function forwardedProperties(p: PublishProperties | undefined): ForwardedProperties | null {
  if (p === undefined) return null
  let out: ForwardedProperties | null = null
  if (p.payloadFormatIndicator !== undefined) (out ??= {}).payloadFormatIndicator = p.payloadFormatIndicator
  if (p.contentType !== undefined) (out ??= {}).contentType = p.contentType
  if (p.responseTopic !== undefined) (out ??= {}).responseTopic = p.responseTopic
  if (p.correlationData !== undefined) (out ??= {}).correlationData = p.correlationData
  if (p.userProperties !== undefined) (out ??= {}).userProperties = p.userProperties
  return out
}

/** Why a v5 property set cannot be used as it is, with the reason code to close with. */
export interface PropertyProblem {
  detail: string
  code: number
}

/**
 * mqtt-packet turns a property sent twice into an array, a string or binary property running past the packet into
 * null and a truncated number into -1, without an error. Such values reach generate() when the message is encoded
 * for a subscriber, and it throws there: in a Will's delay timer that took the whole process down, as a retained
 * message it cut off every MQTT 5 subscriber. So they are refused where they come in.
 * `numbers` names the numeric properties (seconds, sizes) the caller reads.
 */
export function propertyProblem(p: Record<string, unknown>, numbers: readonly string[] = PUBLISH_NUMBERS): PropertyProblem | null {
  for (const name of numbers) {
    const v = p[name]
    if (v !== undefined && (typeof v !== 'number' || v < 0)) return badProperty(name, v)
  }
  if (p.payloadFormatIndicator !== undefined && typeof p.payloadFormatIndicator !== 'boolean') {
    return badProperty('payloadFormatIndicator', p.payloadFormatIndicator)
  }
  for (const name of STRING_PROPERTIES) {
    const v = p[name]
    if (v !== undefined && (typeof v !== 'string' || !fitsMqttString(v))) return badProperty(name, v)
  }
  if (p.correlationData !== undefined && !Buffer.isBuffer(p.correlationData)) {
    return badProperty('correlationData', p.correlationData)
  }
  const user = p.userProperties as Record<string, unknown> | undefined
  if (user !== undefined) {
    for (const key in user) {
      const v = user[key]
      if (!fitsMqttString(key)) return { detail: 'a User Property name over 65535 bytes', code: RC.malformedPacket }
      if (typeof v === 'string' && fitsMqttString(v)) continue
      // a name may repeat (v5 3.3.2.3.7)
      if (Array.isArray(v) && v.every((x) => typeof x === 'string' && fitsMqttString(x))) continue
      return { detail: `a User Property "${key.slice(0, 100)}" whose value could not be read`, code: RC.malformedPacket }
    }
  }
  return null
}

const PUBLISH_NUMBERS = ['messageExpiryInterval', 'topicAlias'] as const
const STRING_PROPERTIES = ['contentType', 'responseTopic'] as const

function badProperty(name: string, v: unknown): PropertyProblem {
  // v5 3.3.2.3 / 3.1.2.11: "It is a Protocol Error to include the <property> more than once"; an unreadable value
  // is a Malformed Packet (v5 4.13.1)
  return Array.isArray(v)
    ? { detail: `the property ${name} more than once`, code: RC.protocolError }
    : { detail: `a ${name} property that could not be read`, code: RC.malformedPacket }
}

/** epoch ms of expiry for a Message Expiry Interval in seconds (undefined = never). */
export function expiryFrom(intervalSec: number | undefined, now: number): number {
  return intervalSec === undefined ? 0 : now + intervalSec * 1000
}

/**
 * A payload that does not pin a large shared buffer (a slice of a big WebSocket frame) when kept for long. The copy
 * has a buffer of its own: a copy from Node's shared pool would pin a pool slab (8 KiB) shared with short-lived
 * allocations.
 */
export function ownPayload(payload: Buffer): Buffer {
  if (payload.byteLength * 2 >= payload.buffer.byteLength || payload.buffer.byteLength <= 4096) return payload
  const own = Buffer.allocUnsafeSlow(payload.byteLength)
  payload.copy(own)
  return own
}
