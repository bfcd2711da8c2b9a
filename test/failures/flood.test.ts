// A real storm of failing WebSocket connections from one address: the log folds it into a few summary rows whose
// counts add up, nothing is dropped, the buffer and the heap stay bounded, and the broker keeps serving.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connectMqtt, RawClient, startServer } from '../helpers.ts'
import { retainedHeapMb } from './fixtures.ts'

const STORM = 300
const CONCURRENCY = 30

test('a storm of failing connections from one address is folded, bounded and fully counted', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const log = server.app.failureLog
  let emitted = 0
  server.app.broker.on('failure', (e) => {
    if (e.reason === 'protocol_error') emitted++
  })
  const heapBefore = retainedHeapMb()
  const publishFirst = RawClient.encode({ cmd: 'publish', topic: 'x', payload: Buffer.from('not a CONNECT'), qos: 0, retain: false, dup: false })

  // each client breaks the first rule of MQTT: its first packet is not a CONNECT
  const started = Date.now()
  let next = 0
  let maxPending = 0
  const worker = async () => {
    while (next < STORM) {
      next++
      const c = await RawClient.open(server.wsUrl)
      c.sendBytes(publishFirst)
      await c.closed()
      maxPending = Math.max(maxPending, log.stats().pending)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  const stormSec = (Date.now() - started) / 1000
  assert.equal(emitted, STORM, 'the broker reported every failure')

  // the broker still serves during and after the storm
  const ok = await connectMqtt(server.wsUrl, { clientId: 'after-storm' })
  await ok.endAsync()

  log.flush()
  const s = log.stats()
  assert.equal(s.recorded, STORM)
  assert.equal(s.dropped, 0)
  assert.equal(s.pending, 0)
  assert.equal(s.written + s.folded, STORM, 'every failure is a row or folded into one')
  assert.ok(s.folded > 0, 'the flood was folded')
  assert.ok(maxPending <= 11 * (Math.ceil(stormSec) + 2), `buffer stayed small (${maxPending})`)

  // through the API: the rows are few, and their counts add up to the storm
  const stats = (await server.app.inject({ url: '/api/failures/stats', headers: server.auth })).json()
  assert.equal(stats.totals.protocol_error, STORM)
  assert.ok(stats.records <= 11 * (Math.ceil(stormSec) + 2), `${stats.records} rows for ${STORM} failures in ${stormSec} s`)
  const page = (await server.app.inject({ url: '/api/failures?reason=protocol_error&limit=1000', headers: server.auth })).json()
  assert.equal(page.items.length, stats.records)
  assert.equal(page.items.reduce((n: number, r: { foldedCount: number }) => n + 1 + r.foldedCount, 0), STORM)
  const summary = page.items.find((r: { foldedCount: number }) => r.foldedCount > 0)
  assert.ok(summary.lastFoldedAt >= summary.occurredAt)
  assert.equal(summary.remoteAddress, '127.0.0.1')

  // metrics count every failure, folded or not
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  assert.match(metrics, new RegExp(`^mqtt_connection_failures_total\\{reason="protocol_error"\\} ${STORM}$`, 'm'))
  assert.match(metrics, new RegExp(`^mqtt_failure_log_events_total\\{outcome="folded"\\} ${s.folded}$`, 'm'))

  const retainedMb = retainedHeapMb() - heapBefore
  assert.ok(retainedMb < 16, `retained heap grew ${retainedMb.toFixed(1)} MB`)
})
