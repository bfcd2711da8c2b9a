// How MQTT messages, Wills and their v5 properties are written to SQLite columns and read back: properties as JSON
// with the one binary property (Correlation Data) in base64, a Will as one JSON document with its payload in base64.
import type { ForwardedProperties, QoS, Will } from '../contracts/state.ts'

export function propertiesToJson(p: ForwardedProperties | null): string | null {
  if (p === null) return null
  if (p.correlationData === undefined) return JSON.stringify(p)
  return JSON.stringify({ ...p, correlationData: p.correlationData.toString('base64') })
}

export function propertiesFromJson(text: string | null): ForwardedProperties | null {
  if (text === null) return null
  const doc = JSON.parse(text) as Omit<ForwardedProperties, 'correlationData'> & { correlationData?: string }
  if (doc.correlationData === undefined) return doc as ForwardedProperties
  return { ...doc, correlationData: Buffer.from(doc.correlationData, 'base64') }
}

interface WillJson {
  topic: string
  payload: string
  qos: QoS
  retain: boolean
  properties: string | null
  expirySec: number | null
  delaySec: number
}

export function willToJson(w: Will | null): string | null {
  if (w === null) return null
  const doc: WillJson = {
    topic: w.topic,
    payload: w.payload.toString('base64'),
    qos: w.qos,
    retain: w.retain,
    properties: propertiesToJson(w.properties),
    expirySec: w.expirySec ?? null,
    delaySec: w.delaySec,
  }
  return JSON.stringify(doc)
}

export function willFromJson(text: string | null): Will | null {
  if (text === null) return null
  const doc = JSON.parse(text) as WillJson
  return {
    topic: doc.topic,
    payload: Buffer.from(doc.payload, 'base64'),
    qos: doc.qos,
    retain: doc.retain,
    properties: propertiesFromJson(doc.properties),
    expirySec: doc.expirySec ?? undefined,
    delaySec: doc.delaySec,
  }
}
