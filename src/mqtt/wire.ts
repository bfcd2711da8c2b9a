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
