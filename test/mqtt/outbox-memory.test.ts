// What a client that does not read makes the broker hold is what the broker counts for it (maxOutputBytes), not the
// pool slabs its small packets were cut from.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import v8 from 'node:v8'
import vm from 'node:vm'
import { Outbox } from '../../src/mqtt/outbox.ts'
import type { Connection } from '../../src/mqtt/connection.ts'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

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
  gc()
  const before = process.memoryUsage().arrayBuffers
  const n = 20_000
  for (let i = 0; i < n; i++) {
    // a 4-byte acknowledgement from the shared pool, between short-lived pool allocations of 4000 bytes
    Buffer.allocUnsafe(4000).fill(0)
    const ack = Buffer.allocUnsafe(4)
    ack.writeUInt32BE(0x40020000 + (i & 0xffff))
    outbox.push(ack)
  }
  gc()
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
