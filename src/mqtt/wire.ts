// Byte-level facts of MQTT's fixed header, shared by the encoder and the connection's early checks:
// the Remaining Length as a Variable Byte Integer (MQTT 3.1.1 section 2.2.3, MQTT 5 section 1.5.5) and packet sizes.

/** Bytes of a Remaining Length as a Variable Byte Integer. */
export function varIntLength(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4
}

/** Write `n` as a Variable Byte Integer at `at`; returns the offset after it. */
export function writeVarInt(buf: Buffer, at: number, n: number): number {
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    buf[at++] = byte
  } while (n > 0)
  return at
}

/** Total size of a packet from its Remaining Length: fixed header byte + length bytes + body. */
export function packetSize(remaining: number): number {
  return 1 + varIntLength(remaining) + remaining
}

/** The protocol level byte of a (possibly partial) CONNECT, or null when it has not arrived yet. */
export function peekConnectVersion(buf: Buffer): number | null {
  let i = 1
  while (i < buf.length && i < 5 && (buf[i] & 0x80) !== 0) i++
  i++
  if (i + 2 > buf.length) return null
  const nameLength = buf.readUInt16BE(i)
  const at = i + 2 + nameLength
  return at < buf.length ? buf[at] : null
}

/** The byte that stands in for a secret in a kept byte prefix ('*'). */
export const REDACTED = 0x2a

/**
 * A copy of `bytes` (which start on a packet boundary, and may end anywhere) in which every CONNECT's password
 * and v5 Authentication Data are replaced by REDACTED, so that no byte prefix the broker keeps for a failure record
 * holds a secret. Whatever cannot be read with certainty (a length running past the packet, a property of unknown
 * type) is masked to the end of its packet: redaction errs on the side of hiding.
 */
export function redactSecrets(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes)
  let at = 0
  while (at < out.length) {
    const header = readRemainingLength(out, at + 1)
    if (header === null) return out // the fixed header itself is cut: nothing of a body to hide
    const bodyStart = at + 1 + header.size
    const end = Math.min(bodyStart + header.value, out.length)
    if ((out[at] & 0xf0) === 0x10) redactConnect(out, bodyStart, end)
    at = bodyStart + header.value
  }
  return out
}

function readRemainingLength(buf: Buffer, at: number): { value: number; size: number } | null {
  let value = 0
  for (let i = 0; i < 4; i++) {
    if (at + i >= buf.length) return null
    const b = buf[at + i]
    value += (b & 0x7f) * 128 ** i
    if ((b & 0x80) === 0) return { value, size: i + 1 }
  }
  return null
}

/** Mask the secrets of one CONNECT body in buf[start, end). */
function redactConnect(buf: Buffer, start: number, end: number): void {
  const mask = (from: number): void => {
    buf.fill(REDACTED, Math.min(from, end), end)
  }
  const u16 = (i: number): number | null => (i + 2 <= end ? buf.readUInt16BE(i) : null)
  let i = start
  const nameLength = u16(i)
  if (nameLength === null) return
  i += 2 + nameLength
  if (i + 4 > end) return // level, flags and keepalive not all here: no field after them is either
  const level = buf[i]
  const flags = buf[i + 1]
  i += 4
  if (level === 5) {
    const props = readRemainingLength(buf, i)
    if (props === null) return mask(i)
    i += props.size
    const propsEnd = i + props.value
    if (!maskAuthenticationData(buf, i, Math.min(propsEnd, end))) return mask(i)
    i = propsEnd
  }
  // payload: client id, [will properties (v5), will topic, will payload], [username], [password]
  const skipField = (): boolean => {
    const n = u16(i)
    if (n === null) return false
    i += 2 + n
    return i <= end
  }
  if (!skipField()) return
  if ((flags & 0x04) !== 0) {
    if (level === 5) {
      const wp = readRemainingLength(buf, i)
      if (wp === null) return
      i += wp.size + wp.value
    }
    if (!skipField() || !skipField()) return
  }
  if ((flags & 0x80) !== 0 && !skipField()) return
  if ((flags & 0x40) !== 0) mask(i) // the password: its length bytes and what follows, to the end of the CONNECT
}

/** Walk v5 CONNECT properties, masking Authentication Data (0x16); false when a property could not be read. */
function maskAuthenticationData(buf: Buffer, i: number, end: number): boolean {
  const fixed: Record<number, number> = { 0x11: 4, 0x21: 2, 0x27: 4, 0x22: 2, 0x19: 1, 0x17: 1 }
  while (i < end) {
    const id = buf[i++]
    if (fixed[id] !== undefined) {
      i += fixed[id]
      continue
    }
    const strings = id === 0x26 ? 2 : id === 0x15 || id === 0x16 ? 1 : 0
    if (strings === 0) return false
    for (let k = 0; k < strings; k++) {
      if (i + 2 > end) return false
      const n = buf.readUInt16BE(i)
      if (id === 0x16) buf.fill(REDACTED, i + 2, Math.min(i + 2 + n, end))
      i += 2 + n
    }
  }
  return true
}
