// An application message inside the broker: what a PUBLISH or a Will carries, independent of who receives it.
import type { IPublishPacket, QoS } from 'mqtt-packet'

/** v5 PUBLISH properties forwarded to subscribers unchanged [MQTT-3.3.2-4, -15, -17, -20]. */
export interface ForwardedProperties {
  payloadFormatIndicator?: boolean
  contentType?: string
  responseTopic?: string
  correlationData?: Buffer
  userProperties?: Record<string, string | string[]>
}

export interface Message {
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
  /** v5 properties passed through, or null */
  properties: ForwardedProperties | null
  /** epoch ms after which the message is not delivered (v5 Message Expiry Interval); 0 = never */
  expiresAt: number
  /** client id of the publisher (for No Local), null for messages the broker makes */
  from: string | null
}

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

/** epoch ms of expiry for a Message Expiry Interval in seconds (undefined = never). */
export function expiryFrom(intervalSec: number | undefined, now: number): number {
  return intervalSec === undefined ? 0 : now + intervalSec * 1000
}

/** A payload that does not pin a large shared buffer (a slice of a big WebSocket frame) when kept for long. */
export function ownPayload(payload: Buffer): Buffer {
  return payload.byteLength * 2 < payload.buffer.byteLength && payload.buffer.byteLength > 4096
    ? Buffer.from(payload)
    : payload
}
