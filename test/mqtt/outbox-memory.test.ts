// What a client that does not read makes the broker hold is what the broker counts for it (maxOutputBytes), not the
// pool slabs its small packets were cut from.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import v8 from 'node:v8'
import vm from 'node:vm'
import { Outbox } from '../../src/mqtt/outbox.ts'
import type { Connection } from '../../src/mqtt/connection.ts'

v8.setFlagsFromString('--expose-gc')
const collect = vm.runInNewContext('gc') as () => void
/** Two full collections a turn apart: array buffers are swept in the background after the first. */
async function gc(): Promise<void> {
  collect()
  await new Promise((r) => setImmediate(r))
  collect()
}

/** An outbox on a transport that pushes back at once (its client reads nothing). */
function blockedOutbox(): { outbox: Outbox, written: Buffer[] } {
  const written: Buffer[] = []
  const connection = {
    values: { maxOutputBytes: 1 << 20, slowConsumerTimeoutMs: 60_000 },
    broker: { scheduleFlush: (c: { outbox: Outbox }) => queueMicrotask(() => c.outbox.flush()), stats: { bytesSent: 0 } },
    transport: { write: (b: Buffer) => { written.push(b); return false }, pause: () => {}, resume: () => {} },
    outputDrained: () => {},
  } as unknown as Connection & { outbox: Outbox }
  const outbox = new Outbox(connection)
  ;(connection as { outbox: Outbox }).outbox = outbox
  return { outbox, written }
}

test('small packets held for a client that does not read do not pin the pool slabs they came from', async () => {
  const { outbox, written } = blockedOutbox()
  outbox.push(Buffer.from([0x40, 0x02, 0x00, 0x01]))
  await new Promise((r) => setImmediate(r)) // the flush: the transport pushes back
  assert.equal(written.length, 1)
  assert.equal(outbox.blocked, true)
  await gc()
  const before = process.memoryUsage().arrayBuffers
  const n = 20_000
  for (let i = 0; i < n; i++) {
    // a 4-byte acknowledgement from the shared pool, between short-lived pool allocations of 4000 bytes
    Buffer.allocUnsafe(4000).fill(0)
    const ack = Buffer.allocUnsafe(4)
    ack.writeUInt32BE(0x40020000 + (i & 0xffff))
    outbox.push(ack)
  }
  await gc()
  const grew = process.memoryUsage().arrayBuffers - before
  assert.equal(outbox.bytes, 4 * n)
  // held as they are, every two would pin an 8 KiB slab: about 80 MB for 80 KB of acknowledgements
  assert.ok(grew < 16 << 20, `${(grew / 1048576).toFixed(1)} MiB held for ${4 * n} bytes`)
  // and everything is written, in order, once the client reads again
  outbox.drained()
  const last = written.at(-1)!
  assert.equal(last.length, 4 * n)
  assert.equal(last.readUInt32BE(4 * (n - 1)), 0x40020000 + ((n - 1) & 0xffff))
})

test('a QoS 0 broadcast encoded once is held by reference for every subscriber that does not read, not copied', async () => {
  const outboxes = Array.from({ length: 50 }, () => blockedOutbox())
  for (const { outbox } of outboxes) outbox.push(Buffer.from([0x40, 0x02, 0x00, 0x01]))
  await new Promise((r) => setImmediate(r)) // every transport pushes back
  await gc()
  const before = process.memoryUsage().arrayBuffers
  const broadcast = Buffer.allocUnsafeSlow(300 * 1024).fill(0x61) // a buffer of its own, as an encoded message is
  for (const { outbox } of outboxes) outbox.push(broadcast)
  await gc()
  const grew = process.memoryUsage().arrayBuffers - before
  // one 300 KiB message for 50 subscribers: copied, 15 MiB
  assert.ok(grew < 2 << 20, `${(grew / 1048576).toFixed(1)} MiB for one shared message`)
  for (const { outbox, written } of outboxes) {
    outbox.drained()
    assert.equal(written.at(-1)!.length, 300 * 1024)
  }
})

test('held output keeps its order across copied small packets and shared buffers', async () => {
  const { outbox, written } = blockedOutbox()
  outbox.push(Buffer.from('first'))
  await new Promise((r) => setImmediate(r))
  const parts: Buffer[] = []
  for (let i = 0; i < 300; i++) {
    // small pool slices, a buffer of its own now and then, and a large packet from the pool's range
    const part = i % 50 === 7 ? Buffer.allocUnsafeSlow(1000).fill(i & 0xff) : Buffer.from(`p${i};`)
    parts.push(part)
    outbox.push(part)
  }
  outbox.drained()
  assert.deepEqual(written.at(-1), Buffer.concat(parts))
  assert.equal(outbox.bytes, 0)
})
