// A message between nodes: one binary frame (no JSON on the hot path). Header, then the variable parts:
//   u8 version (1) | u8 flags (qos in bits 0-1, retain bit 2, has-from bit 3, has-properties bit 4)
//   u32 origin sequence | f64 expiresAt | u16 origin length | origin | u16 topic length | topic
//   [u16 from length | from] [u32 properties length | properties JSON] | payload
// `origin` names the sending node and its boot (so a receiver drops the same message arriving on two of its
// subscriptions, and a restarted node starts a new sequence).
import type { Message, QoS } from '../contracts/state.ts'
import { propertiesFromJson, propertiesToJson } from '../state/codec.ts'

export interface Envelope {
  origin: string
  seq: number
  message: Message
}

const VERSION = 1

export function encodeEnvelope(origin: string, seq: number, m: Message): Buffer {
  const props = m.properties === null ? null : Buffer.from(propertiesToJson(m.properties)!, 'utf8')
  const originLen = Buffer.byteLength(origin)
  const topicLen = Buffer.byteLength(m.topic)
  const fromLen = m.from === null ? 0 : Buffer.byteLength(m.from)
  const size = 2 + 4 + 8 + 2 + originLen + 2 + topicLen + (m.from === null ? 0 : 2 + fromLen) +
    (props === null ? 0 : 4 + props.length) + m.payload.length
  const b = Buffer.allocUnsafe(size)
  let o = 0
  b[o++] = VERSION
  b[o++] = m.qos | (m.retain ? 4 : 0) | (m.from !== null ? 8 : 0) | (props !== null ? 16 : 0)
  b.writeUInt32BE(seq >>> 0, o); o += 4
  b.writeDoubleBE(m.expiresAt, o); o += 8
  b.writeUInt16BE(originLen, o); o += 2
  o += b.write(origin, o, 'utf8')
  b.writeUInt16BE(topicLen, o); o += 2
  o += b.write(m.topic, o, 'utf8')
  if (m.from !== null) {
    b.writeUInt16BE(fromLen, o); o += 2
    o += b.write(m.from, o, 'utf8')
  }
  if (props !== null) {
    b.writeUInt32BE(props.length, o); o += 4
    o += props.copy(b, o)
  }
  m.payload.copy(b, o)
  return b
}

/** The envelope in `b`, or null when it is not one this build reads (another version, cut short, corrupt). */
export function decodeEnvelope(b: Uint8Array): Envelope | null {
  try {
    return decode(b)
  } catch {
    return null // a length that points past the frame
  }
}

function decode(b: Uint8Array): Envelope | null {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  if (buf.length < 18 || buf[0] !== VERSION) return null
  const flags = buf[1]
  let o = 2
  const seq = buf.readUInt32BE(o); o += 4
  const expiresAt = buf.readDoubleBE(o); o += 8
  const originLen = buf.readUInt16BE(o); o += 2
  const origin = buf.toString('utf8', o, o + originLen); o += originLen
  const topicLen = buf.readUInt16BE(o); o += 2
  const topic = buf.toString('utf8', o, o + topicLen); o += topicLen
  let from: string | null = null
  if (flags & 8) {
    const n = buf.readUInt16BE(o); o += 2
    from = buf.toString('utf8', o, o + n); o += n
  }
  let properties = null
  if (flags & 16) {
    const n = buf.readUInt32BE(o); o += 4
    properties = propertiesFromJson(buf.toString('utf8', o, o + n)); o += n
  }
  if (o > buf.length) return null
  // a message that is kept (QoS 1/2: queued, in flight; retained) gets its own copy; a QoS 0 one is encoded for its
  // subscribers while it is routed, so a view into the frame does (a copy per message was a fifth of a crossing)
  const qos = flags & 3
  let payload: Buffer
  if (qos > 0 || (flags & 4) !== 0) {
    payload = Buffer.allocUnsafeSlow(buf.length - o)
    buf.copy(payload, 0, o)
  } else {
    payload = buf.subarray(o)
  }
  return { origin, seq, message: { topic, payload, qos: qos as QoS, retain: (flags & 4) !== 0, properties, expiresAt, from, id: `${origin}/${seq}` } }
}
