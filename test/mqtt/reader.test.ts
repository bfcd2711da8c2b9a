// The in-place reading of the packets a connected client sends most gives what mqtt-packet's parser gives for the
// same bytes, however the stream is cut into chunks, and an idle connection holds no parser.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { PacketReader } from '../../src/mqtt/reader.ts'

const { generate, parser: createParser } = mqttPacket

const connect = (protocolVersion: 4 | 5): Packet =>
  ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean: true, keepalive: 30, clientId: 'reader' }) as Packet

/** A connected client's stream: its CONNECT, then packets of every kind the in-place path reads, and some it does not. */
function stream(version: 4 | 5): Packet[] {
  const long = 'x'.repeat(300) // a remaining length of two bytes
  const packets: Packet[] = [
    connect(version),
    { cmd: 'publish', topic: 'a/b', payload: Buffer.from('q0'), qos: 0, retain: false, dup: false },
    { cmd: 'publish', topic: 'a/€/ü', payload: Buffer.from(long), qos: 1, messageId: 7, retain: true, dup: false },
    { cmd: 'publish', topic: 'c', payload: Buffer.alloc(0), qos: 2, messageId: 65535, retain: false, dup: true },
    { cmd: 'publish', topic: '', payload: Buffer.from([0, 1, 2]), qos: 0, retain: false, dup: false },
    { cmd: 'puback', messageId: 1 },
    { cmd: 'pubrec', messageId: 2 },
    { cmd: 'pubrel', messageId: 3 },
    { cmd: 'pubcomp', messageId: 4 },
    { cmd: 'pingreq' },
    { cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: 's/#', qos: 1 }] },
    // bodies that begin with bytes of the in-place kinds (0x30 PUBLISH, 0x62 PUBREL, 0xC0 PINGREQ): a chunk that
    // starts there is the rest of a packet, not a new one
    { cmd: 'subscribe', messageId: 0x3008, subscriptions: [{ topic: 'a/b/cd', qos: 0 }] },
    { cmd: 'unsubscribe', messageId: 0x6211, unsubscriptions: ['s/#'] },
    { cmd: 'subscribe', messageId: 0xc000, subscriptions: [{ topic: 'q', qos: 2 }] },
    { cmd: 'publish', topic: 'after/subscribe', payload: Buffer.from('z'), qos: 1, messageId: 10, retain: false, dup: false },
  ] as Packet[]
  if (version === 5) {
    packets.push(
      // the parser's: properties, a reason code
      { cmd: 'publish', topic: 'v5/props', payload: Buffer.from('p'), qos: 1, messageId: 11, retain: false, dup: false, properties: { userProperties: { k: 'v' } } },
      { cmd: 'puback', messageId: 12, reasonCode: 16 },
      { cmd: 'pubrec', messageId: 13, reasonCode: 0 },
      { cmd: 'pubcomp', messageId: 14, reasonCode: 146 },
    )
  }
  packets.push({ cmd: 'publish', topic: 'last', payload: Buffer.from('end'), qos: 0, retain: false, dup: false } as Packet)
  return packets
}

/** What a packet says, as plain data: its own fields, Buffers as bytes. */
function plain(p: Packet): Record<string, unknown> {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Buffer.isBuffer(v) ? [...v] : v]))
}

function byParser(bytes: Buffer): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  const parser = createParser({ protocolVersion: 4 })
  parser.on('packet', (p: Packet) => out.push(plain(p)))
  parser.on('error', (err: Error) => { throw err })
  parser.parse(bytes)
  return out
}

function byReader(chunks: Buffer[]): { packets: Record<string, unknown>[], reader: PacketReader } {
  const packets: Record<string, unknown>[] = []
  const reader = new PacketReader((p) => packets.push(plain(p)), (err) => { throw err })
  let connected = false
  for (const chunk of chunks) {
    reader.feed(chunk, connected)
    connected = packets.length > 0 // after the CONNECT, as a connection reads
  }
  return { packets, reader }
}

for (const version of [4, 5] as const) {
  test(`MQTT ${version === 5 ? '5.0' : '3.1.1'}: a stream cut at every byte offset reads the same in place as through mqtt-packet`, () => {
    const packets = stream(version)
    const bytes = Buffer.concat(packets.map((p) => generate(p, { protocolVersion: version })))
    const expected = byParser(bytes)
    assert.equal(expected.length, packets.length)
    const connectSize = generate(packets[0], { protocolVersion: version }).length
    // the CONNECT alone first (so the rest is read as a connected client's), then the rest cut in two at every offset
    for (let cut = connectSize; cut <= bytes.length; cut++) {
      const { packets: got } = byReader([bytes.subarray(0, connectSize), bytes.subarray(connectSize, cut), bytes.subarray(cut)])
      assert.deepEqual(got, expected, `cut at ${cut}`)
    }
    // and byte by byte
    const single = byReader([bytes.subarray(0, connectSize), ...[...bytes.subarray(connectSize)].map((b) => Buffer.from([b]))])
    assert.deepEqual(single.packets, expected)
  })

  test(`MQTT ${version === 5 ? '5.0' : '3.1.1'}: each in-place packet cut at every byte offset`, () => {
    let readInPlace = 0
    for (const p of stream(version).filter((x) => ['publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'pingreq'].includes(x.cmd))) {
      const head = generate(connect(version), { protocolVersion: version })
      const bytes = generate(p, { protocolVersion: version })
      const expected = byParser(Buffer.concat([head, bytes])).slice(1)
      for (let cut = 0; cut <= bytes.length; cut++) {
        const { packets, reader } = byReader([head, bytes.subarray(0, cut), bytes.subarray(cut)])
        assert.deepEqual(packets.slice(1), expected, `${p.cmd} cut at ${cut}`)
        // whole in one chunk, it was read in place: the parser that read the CONNECT is let go
        const inPlace = !('properties' in p) && !((p as { reasonCode?: number }).reasonCode)
        if (inPlace && (cut === 0 || cut === bytes.length)) {
          assert.equal(reader.holdsParser, false, `${p.cmd} read in place`)
          readInPlace++
        }
      }
    }
    // every kind of in-place packet of the stream was checked so, whole in the first chunk and whole in the second
    assert.equal(readInPlace, 2 * (version === 5 ? 12 : 11))
  })
}

test('an idle connection holds no parser: let go after a chunk read wholly in place, made again when needed', () => {
  const version = 5
  const { reader } = byReader([generate(connect(version), { protocolVersion: version })])
  assert.equal(reader.holdsParser, true, 'the CONNECT was read by the parser')
  const seen: string[] = []
  const ping = generate({ cmd: 'pingreq' } as Packet)
  reader.feed(ping, true)
  assert.equal(reader.holdsParser, false, 'a chunk read wholly in place: no parser kept')
  assert.equal(reader.protocolVersion, 5, 'the CONNECT\'s protocol level is kept')
  // a v5 PUBLISH with properties needs a parser again, made at the CONNECT's level
  const withProps = generate({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { contentType: 'text/plain' } } as Packet, { protocolVersion: 5 })
  const reader2 = new PacketReader((p) => seen.push(`${p.cmd}:${(p as { properties?: { contentType?: string } }).properties?.contentType}`), (err) => { throw err })
  reader2.feed(generate(connect(5), { protocolVersion: 5 }), false)
  reader2.feed(ping, true)
  assert.equal(reader2.holdsParser, false)
  reader2.feed(withProps, true)
  assert.deepEqual(seen, ['connect:undefined', 'pingreq:undefined', 'publish:text/plain'])
})

test('a chunk that ends right after a fixed header: the next one is that packet\'s body, not a packet', () => {
  const got: string[] = []
  const reader = new PacketReader((p) => got.push(`${p.cmd}:${(p as { messageId?: number }).messageId ?? ''}`), (err) => { throw err })
  reader.feed(generate(connect(4)), false)
  const subscribe = generate({ cmd: 'subscribe', messageId: 0x3008, subscriptions: [{ topic: 'a/b/cd', qos: 0 }] } as Packet)
  reader.feed(subscribe.subarray(0, 2), true) // 0x82 and the remaining length
  assert.equal(reader.atBoundary, false)
  reader.feed(subscribe.subarray(2), true) // 0x30 0x08 ...: would read as a PUBLISH
  assert.deepEqual(got, ['connect:', `subscribe:${0x3008}`])
  assert.equal(reader.atBoundary, true)
})

test('malformed bytes go to the parser and are reported as it reports them', () => {
  const errors: string[] = []
  const reader = new PacketReader(() => {}, (err) => errors.push(err.message))
  reader.feed(generate(connect(4)), false)
  reader.feed(Buffer.from([0x36, 0x03, 0x00, 0x01, 0x61]), true) // PUBLISH with both QoS bits set
  assert.deepEqual(errors, ['Packet must not have both QoS bits set to 1'])
})
