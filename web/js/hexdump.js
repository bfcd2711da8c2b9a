// A classic hex + ASCII dump of the bytes a failed connection sent first, as plain text lines:
// 0000  10 29 00 04 4d 51 54 54  04 c2 00 3c 00 0b 63 6c  |.)..MQTT...<..cl|

/** Hex string (any case, whitespace ignored) to byte values; an odd trailing nibble is dropped. */
export function hexToBytes(hex) {
  const clean = String(hex ?? '').replace(/[^0-9a-fA-F]/g, '')
  const bytes = []
  for (let i = 0; i + 1 < clean.length; i += 2) bytes.push(parseInt(clean.slice(i, i + 2), 16))
  return bytes
}

export function hexDump(hex, width = 16) {
  const bytes = hexToBytes(hex)
  const lines = []
  for (let off = 0; off < bytes.length; off += width) {
    const row = bytes.slice(off, off + width)
    const cells = []
    for (let i = 0; i < width; i++) {
      if (i === width / 2) cells.push('')
      cells.push(i < row.length ? row[i].toString(16).padStart(2, '0') : '  ')
    }
    // printable ASCII only; everything else (controls, DEL, bytes >= 0x80) as a dot
    const ascii = row.map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('')
    lines.push(`${off.toString(16).padStart(4, '0')}  ${cells.join(' ')}  |${ascii.padEnd(width, ' ')}|`)
  }
  return lines.join('\n')
}

/** The MQTT control packet type named by a first byte, to help read a dump. */
const PACKET_TYPES = [
  'reserved', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP',
  'SUBSCRIBE', 'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT', 'AUTH',
]

export function describeFirstByte(hex) {
  const bytes = hexToBytes(hex)
  if (bytes.length === 0) return 'no bytes received'
  const first = bytes[0]
  const type = PACKET_TYPES[first >> 4]
  return `first byte 0x${first.toString(16).padStart(2, '0')}: ${type} packet${first >> 4 === 1 ? '' : ' (a client must send CONNECT first)'}`
}
