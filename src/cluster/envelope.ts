// Messages between nodes: one binary frame (no JSON on the hot path) carries one message or a run of consecutive
// messages of one node to the same subject (a client's pipelined PUBLISHes to its topic: one NATS message instead of
// many, which is where a crossing's CPU went). The frame:
//   u8 version (2) | u16 count | u32 sequence of the first | u16 origin length | origin | count x message
// and each message:
//   u8 flags (qos in bits 0-1, retain bit 2, has-from bit 3, has-properties bit 4) | f64 expiresAt
//   | u16 topic length | topic | [u16 from length | from] | [u32 properties length | properties JSON]
//   | u32 payload length | payload
// `origin` names the sending node and its boot; message i has sequence first + i (its cluster id is origin/sequence),
// so a receiver drops a frame arriving twice (on two of its subscriptions), and a restarted node starts anew.
import type { Message, QoS } from '../contracts/state.ts'
import { propertiesFromJson, propertiesToJson } from '../state/codec.ts'

export interface Envelope {
  origin: string
  /** the sequence of the first message */
  seq: number
  messages: Message[]
}

const VERSION = 2
/** most messages in one frame */
export const MAX_FRAME_MESSAGES = 0xffff

/** What one message takes in a frame (the properties encoded once, kept for the write). */
interface Sized {
  m: Message
  props: Buffer | null
  size: number
}

export function sizeOf(m: Message): Sized {
  const props = m.properties === null ? null : Buffer.from(propertiesToJson(m.properties)!, 'utf8')
  const size = 1 + 8 + 2 + Buffer.byteLength(m.topic) + (m.from === null ? 0 : 2 + Buffer.byteLength(m.from)) +
    (props === null ? 0 : 4 + props.length) + 4 + m.payload.length
  return { m, props, size }
}

/** One frame for messages first..first+n-1 of `origin` (their sizes from sizeOf). */
export function encodeEnvelope(origin: string, first: number, messages: readonly Sized[]): Buffer {
  const originLen = Buffer.byteLength(origin)
  let size = 1 + 2 + 4 + 2 + originLen
  for (const s of messages) size += s.size
  const b = Buffer.allocUnsafe(size)
  let o = 0
  b[o++] = VERSION
  b.writeUInt16BE(messages.length, o); o += 2
  b.writeUInt32BE(first >>> 0, o); o += 4
  b.writeUInt16BE(originLen, o); o += 2
  o += b.write(origin, o, 'utf8')
  for (const { m, props } of messages) {
    b[o++] = m.qos | (m.retain ? 4 : 0) | (m.from !== null ? 8 : 0) | (props !== null ? 16 : 0)
    b.writeDoubleBE(m.expiresAt, o); o += 8
    const topicLen = b.write(m.topic, o + 2, 'utf8')
    b.writeUInt16BE(topicLen, o); o += 2 + topicLen
    if (m.from !== null) {
      const n = b.write(m.from, o + 2, 'utf8')
      b.writeUInt16BE(n, o); o += 2 + n
    }
    if (props !== null) {
      b.writeUInt32BE(props.length, o); o += 4
      o += props.copy(b, o)
    }
    b.writeUInt32BE(m.payload.length, o); o += 4
    o += m.payload.copy(b, o)
  }
  return b
}

/** The envelope in `b`, or null when it is not one this build reads (another version, cut short, corrupt). */
export function decodeEnvelope(b: Uint8Array): Envelope | null {
  try {
    return decode(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
  } catch {
    return null // a length that points past the frame
  }
}

function decode(buf: Buffer): Envelope | null {
  if (buf.length < 9 || buf[0] !== VERSION) return null
  let o = 1
  const count = buf.readUInt16BE(o); o += 2
  const seq = buf.readUInt32BE(o); o += 4
  const originLen = buf.readUInt16BE(o); o += 2
  const origin = buf.toString('utf8', o, o + originLen); o += originLen
  const messages: Message[] = []
  for (let i = 0; i < count; i++) {
    const flags = buf[o++]
    const expiresAt = buf.readDoubleBE(o); o += 8
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
    const n = buf.readUInt32BE(o); o += 4
    if (o + n > buf.length) return null
    // a message that is kept (QoS 1/2: queued, in flight; retained) gets its own copy; a QoS 0 one is encoded for its
    // subscribers while it is routed, so a view into the frame does
    const qos = (flags & 3) as QoS
    const retain = (flags & 4) !== 0
    let payload: Buffer
    if (qos > 0 || retain) {
      payload = Buffer.allocUnsafeSlow(n)
      buf.copy(payload, 0, o, o + n)
    } else {
      payload = buf.subarray(o, o + n)
    }
    o += n
    messages.push({ topic, payload, qos, retain, properties, expiresAt, from, id: `${origin}/${(seq + i) >>> 0}` })
  }
  return o === buf.length ? { origin, seq, messages } : null
}
