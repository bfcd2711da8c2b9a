// Packets out of a connection's byte stream. The packets a connected client sends most (PUBLISH without v5
// properties, PUBACK/PUBREC/PUBREL/PUBCOMP meaning Success, PINGREQ) are decoded in place, straight
// from the incoming chunk, when they lie whole in it: the topic read with one toString, the packet id with one
// readUInt16BE, the payload a subarray. Everything else (CONNECT, SUBSCRIBE, v5 properties, a packet cut at the
// chunk's end, anything malformed) goes to mqtt-packet's parser, which is created when first needed and let go
// again when a whole chunk needed none of it: an idle connection holds no parser (about 0.9 KiB).
//
// The in-place path gives what mqtt-packet gives for the same bytes (the same fields and values, the payload a view
// of the same bytes); test/mqtt/reader.test.ts splits streams at every byte offset to show it.
import mqttPacket, { type Packet } from 'mqtt-packet'

const { parser: createParser } = mqttPacket

type Parser = ReturnType<typeof createParser>

/** The parts of the mqtt-packet parser read beyond its typed API. */
interface ParserInternals {
  /** the packet being assembled: its command once the fixed header is read, its remaining length once known */
  packet: { cmd: string | null; length: number }
  /** the bytes it holds unparsed */
  _list: { length: number }
  /** what it parses with: the options it was made with, then the CONNECT it read */
  settings: { protocolVersion?: number; bridgeMode?: boolean }
}

/** The fixed header's first byte of the 2-byte acknowledgements, by the command mqtt-packet names them with. */
const ACKS: Record<number, Packet['cmd']> = { 0x40: 'puback', 0x50: 'pubrec', 0x62: 'pubrel', 0x70: 'pubcomp' }

export class PacketReader {
  #parser: Parser | null = null
  /** what a parser is created with: the protocol level and bridge flag of the client's CONNECT once read */
  #version = 4
  #bridgeMode = false
  readonly #onPacket: (packet: Packet) => void
  readonly #onError: (err: Error) => void

  constructor(onPacket: (packet: Packet) => void, onError: (err: Error) => void) {
    this.#onPacket = onPacket
    this.#onError = onError
  }

  /** The protocol level packets are read at (4 until a CONNECT says otherwise). */
  get protocolVersion(): number {
    return this.#parser !== null ? (internals(this.#parser).settings.protocolVersion ?? 4) : this.#version
  }

  /** Whether a parser is held now (an idle connection holds none). */
  get holdsParser(): boolean {
    return this.#parser !== null
  }

  /**
   * No part of a packet is held: the next chunk starts on a packet boundary. (mqtt-packet drops a fixed header from
   * its list once read: an empty list with a command set is a packet whose body has not arrived.)
   */
  get atBoundary(): boolean {
    if (this.#parser === null) return true
    const p = internals(this.#parser)
    return p._list.length === 0 && p.packet.cmd === null
  }

  /** The packet whose fixed header is read but whose body has not all arrived (null: none). */
  get partial(): { readonly cmd: string; readonly length: number } | null {
    if (this.#parser === null) return null
    // the parser's own object (read per chunk: not copied)
    const p = internals(this.#parser).packet
    return p.cmd === null ? null : (p as { cmd: string; length: number })
  }

  /**
   * Read a chunk: any split, any number of packets, each passed to onPacket in order (or a malformed one to onError).
   * `inPlace`: the client is connected and its packets may take the in-place path.
   */
  feed(chunk: Buffer, inPlace: boolean): void {
    if (!inPlace || !this.atBoundary) {
      this.#parse(chunk)
      return
    }
    const version = this.protocolVersion
    let at = 0
    while (at < chunk.length) {
      const next = this.#inPlace(chunk, at, version)
      if (next < 0) break
      at = next
    }
    if (at < chunk.length) {
      this.#parse(at === 0 ? chunk : chunk.subarray(at))
    } else if (this.#parser !== null) {
      // a whole chunk needed no parser (which was at a boundary, and was given nothing): let it go until one is needed
      const s = internals(this.#parser).settings
      this.#version = s.protocolVersion ?? 4
      this.#bridgeMode = s.bridgeMode === true
      this.#parser = null
    }
  }

  #parse(bytes: Buffer): void {
    if (this.#parser === null) {
      this.#parser = createParser(this.#bridgeMode ? { protocolVersion: this.#version, bridgeMode: true } : { protocolVersion: this.#version })
      this.#parser.on('packet', this.#onPacket)
      this.#parser.on('error', this.#onError)
    }
    this.#parser.parse(bytes)
  }

  /**
   * One packet decoded in place from `buf` at `at`, passed to onPacket; returns where the next one starts, or -1 when
   * the packet there is not one for this path (or not whole in `buf`): the parser takes it from there.
   */
  #inPlace(buf: Buffer, at: number, version: number): number {
    const first = buf[at]
    const type = first >> 4
    if (type === 3) return this.#publish(buf, at, first, version)
    if (at + 1 >= buf.length) return -1
    // PINGREQ: 0xC0 0x00
    if (first === 0xc0) {
      if (buf[at + 1] !== 0) return -1
      this.#onPacket({ cmd: 'pingreq', retain: false, qos: 0, dup: false, length: 0, topic: null, payload: null } as unknown as Packet)
      return at + 2
    }
    // PUBACK, PUBREC, PUBREL (flags 0x2), PUBCOMP with a packet id; in v5 also with reason code 0 (Success) and no
    // properties, as MQTT.js sends them (remaining length 3 or 4). Other reason codes and properties: the parser's.
    const cmd = ACKS[first]
    if (cmd === undefined) return -1
    const length = buf[at + 1]
    // (length 2: no reason code, which in v5 means Success)
    if (length !== 2 && (version !== 5 || buf[at + 4] !== 0 || (length === 4 ? buf[at + 5] !== 0 : length !== 3))) return -1
    const end = at + 2 + length
    if (end > buf.length) return -1
    const packet: Record<string, unknown> = {
      cmd, retain: false, qos: first === 0x62 ? 1 : 0, dup: false, length, topic: null, payload: null, messageId: buf.readUInt16BE(at + 2),
    }
    if (version === 5) packet.reasonCode = 0
    this.#onPacket(packet as unknown as Packet)
    return end
  }

  #publish(buf: Buffer, at: number, first: number, version: number): number {
    const qos = (first >> 1) & 3
    if (qos === 3) return -1
    // the remaining length: 1 to 4 bytes, 7 bits each
    let length = 0
    let pos = at + 1
    for (let shift = 0; ; shift += 7) {
      if (pos >= buf.length || shift > 21) return -1
      const b = buf[pos++]
      length += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) break
    }
    const end = pos + length
    if (end > buf.length || length < 2) return -1
    const topicLength = buf.readUInt16BE(pos)
    let p = pos + 2 + topicLength
    if (p > end) return -1
    const topic = buf.toString('utf8', pos + 2, p)
    let messageId: number | undefined
    if (qos > 0) {
      if (p + 2 > end) return -1
      messageId = buf.readUInt16BE(p)
      p += 2
    }
    if (version === 5) {
      // a v5 PUBLISH with properties (a topic alias, user properties...) is the parser's
      if (p >= end || buf[p] !== 0) return -1
      p += 1
    }
    const packet: Record<string, unknown> = {
      cmd: 'publish', retain: (first & 1) !== 0, qos, dup: (first & 8) !== 0, length, topic, payload: buf.subarray(p, end),
    }
    if (messageId !== undefined) packet.messageId = messageId
    this.#onPacket(packet as unknown as Packet)
    return end
  }
}

function internals(parser: Parser): ParserInternals {
  return parser as unknown as ParserInternals
}
