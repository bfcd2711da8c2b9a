// /api/failures (filters, cursor paging, validation, auth), /api/failures/:id, /api/failures/stats (counts and the
// connect-latency histogram of real MQTT.js connections, what-if) and /api/connections, on a real server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FailureRecord } from '../../src/failures/schema.ts'
import { connectMqtt, startServer, waitForBrokerEvent, type TestServer } from '../helpers.ts'
import { failureEvent } from '../failures/fixtures.ts'

async function get(server: TestServer, path: string, headers: Record<string, string> = server.auth) {
  const res = await fetch(`${server.url}${path}`, { headers })
  return { status: res.status, body: (await res.json()) as any }
}

test('failures: list filters, cursor paging, one record, validation and auth', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const log = server.app.failureLog
  const base = Date.now() - 600_000
  const reasons = ['connect_timeout', 'keepalive_timeout', 'protocol_error'] as const
  for (let i = 0; i < 30; i++) {
    log.record(failureEvent({
      occurredAt: base + i * 10_000,
      reason: reasons[i % 3],
      clientId: i < 10 ? `meter-${i}` : `gw-${i}`,
      remoteAddress: `10.20.${i % 5}.1`,
    }))
  }
  log.flush()

  const all = (await get(server, '/api/failures?limit=1000')).body as { items: FailureRecord[]; nextCursor: number | null }
  assert.equal(all.items.length, 30)
  assert.equal(all.nextCursor, null)
  assert.deepEqual(all.items.map((r) => r.clientId), Array.from({ length: 30 }, (_, i) => (29 - i < 10 ? `meter-${29 - i}` : `gw-${29 - i}`)), 'newest first')

  const iso = (ms: number) => encodeURIComponent(new Date(ms).toISOString())
  const filters: [string, (r: FailureRecord) => boolean][] = [
    ['reason=keepalive_timeout', (r) => r.reason === 'keepalive_timeout'],
    ['clientId=meter-', (r) => r.clientId!.startsWith('meter-')],
    ['remoteAddress=10.20.3.1', (r) => r.remoteAddress === '10.20.3.1'],
    [`since=${iso(base + 200_000)}`, (r) => Date.parse(r.occurredAt) >= base + 200_000],
    [`until=${iso(base + 50_000)}`, (r) => Date.parse(r.occurredAt) <= base + 50_000],
    [`reason=protocol_error&clientId=gw-&since=${iso(base + 100_000)}`,
      (r) => r.reason === 'protocol_error' && r.clientId!.startsWith('gw-') && Date.parse(r.occurredAt) >= base + 100_000],
  ]
  for (const [q, match] of filters) {
    const { status, body } = await get(server, `/api/failures?${q}`)
    assert.equal(status, 200, q)
    const want = all.items.filter(match).map((r) => r.id)
    assert.ok(want.length > 0 && want.length < 30, `${q} selects some`)
    assert.deepEqual(body.items.map((r: FailureRecord) => r.id), want, q)
  }

  // cursor paging
  const ids: number[] = []
  let path = '/api/failures?limit=8'
  for (let pages = 0; pages < 10; pages++) {
    const { body } = await get(server, path)
    ids.push(...body.items.map((r: FailureRecord) => r.id))
    if (body.nextCursor === null) break
    path = `/api/failures?limit=8&before=${body.nextCursor}`
  }
  assert.deepEqual(ids, all.items.map((r) => r.id))

  // one record; a missing one is a 404 with words
  const one = await get(server, `/api/failures/${all.items[3].id}`)
  assert.equal(one.status, 200)
  assert.deepEqual(one.body, all.items[3])
  const missing = await get(server, '/api/failures/999999')
  assert.equal(missing.status, 404)
  assert.match(missing.body.message, /999999/)

  // bad input: 400 naming the field
  for (const [q, field] of [
    ['reason=nope', 'querystring.reason'],
    ['since=yesterday', 'querystring.since'],
    ['limit=0', 'querystring.limit'],
    ['limit=5000', 'querystring.limit'],
    ['before=abc', 'querystring.before'],
    ['reasons=connect_timeout', 'querystring.reasons'],
  ] as const) {
    const { status, body } = await get(server, `/api/failures?${q}`)
    assert.equal(status, 400, q)
    assert.ok(body.fields?.some((f: { field: string }) => f.field === field), `${q}: ${JSON.stringify(body)}`)
  }
  assert.equal((await get(server, '/api/failures/abc')).status, 400)

  // the admin token is required
  for (const p of ['/api/failures', `/api/failures/${all.items[0].id}`, '/api/failures/stats', '/api/failures/stream', '/api/connections']) {
    assert.equal((await get(server, p, {})).status, 401, p)
    assert.equal((await get(server, p, { authorization: 'Bearer wrong-token-xxxxxxxx' })).status, 401, p)
  }
  // and the OpenAPI document says so for each of them
  const doc = (await server.app.inject({ url: '/docs/json' })).json()
  for (const p of ['/api/failures', '/api/failures/{id}', '/api/failures/stats', '/api/failures/stream', '/api/connections']) {
    assert.deepEqual(doc.paths[p]?.get?.security, [{ bearerAuth: [] }], p)
  }
})

test('stats: counts per bucket and reason, and the connect latency of real connections with a what-if', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 4000 } })
  t.after(() => server.close())
  const log = server.app.failureLog
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000
  const since = hour - 3_600_000
  // 3 failures in the first 10 minutes, 2 in the next; one flood summary that stands for 4
  log.record(failureEvent({ occurredAt: since + 60_000, reason: 'connect_timeout', remoteAddress: 'a' }))
  log.record(failureEvent({ occurredAt: since + 120_000, reason: 'connect_timeout', remoteAddress: 'b' }))
  log.record(failureEvent({ occurredAt: since + 180_000, reason: 'taken_over', remoteAddress: 'c' }))
  log.record(failureEvent({ occurredAt: since + 660_000, reason: 'taken_over', remoteAddress: 'd' }))
  log.record(failureEvent({ occurredAt: since + 700_000, reason: 'connection_lost', remoteAddress: 'e' }))
  log.flush()

  // three real connections: their latency reaches the histogram through the broker's 'connected' event
  for (let i = 0; i < 3; i++) {
    const connected = waitForBrokerEvent(server, 'connected', (e) => e.clientId === `lat-${i}`)
    const c = await connectMqtt(server.wsUrl, { clientId: `lat-${i}` })
    await connected
    await c.endAsync() // a clean DISCONNECT: not a failure
  }

  const q = `since=${new Date(since).toISOString()}&until=${new Date(since + 1_200_000).toISOString()}&bucketSec=600`
  const { status, body } = await get(server, `/api/failures/stats?${q}`)
  assert.equal(status, 200, JSON.stringify(body))
  assert.equal(body.bucketSec, 600)
  assert.equal(body.since, new Date(since).toISOString())
  assert.deepEqual(body.buckets.map((b: { total: number }) => b.total), [3, 2])
  assert.deepEqual(body.buckets[0].counts, { connect_timeout: 2, taken_over: 1 })
  assert.equal(body.totals.taken_over, 2)
  assert.equal(body.totals.packet_too_large, 0)
  assert.equal(body.total, 5)
  assert.equal(body.connectTimeoutMs, 4000)
  assert.equal(body.log.written, 5)

  // the latency window is "now": ask for the last hour
  const recent = (await get(server, '/api/failures/stats')).body
  assert.equal(recent.latency.count, 3)
  assert.equal(recent.latency.buckets.reduce((a: number, b: { count: number }) => a + b.count, 0), 3)
  assert.ok(recent.latency.maxMs >= 0 && recent.latency.maxMs < 4000)
  assert.ok(recent.latency.p50Ms !== null)
  assert.equal(recent.latency.buckets.at(-1).leMs, null)
  // what-if defaults to the connectTimeoutMs in force; local clients are far below it
  assert.deepEqual([recent.whatIf.thresholdMs, recent.whatIf.total, recent.whatIf.slower, recent.whatIf.slowerMax], [4000, 3, 0, 0])
  const strict = (await get(server, '/api/failures/stats?thresholdMs=0')).body.whatIf
  assert.equal(strict.total, 3)
  assert.ok(strict.slower <= 3 && strict.slowerMax === 3, JSON.stringify(strict))

  // bad windows
  assert.equal((await get(server, `/api/failures/stats?since=${new Date(since).toISOString()}&until=${new Date(since - 1).toISOString()}`)).status, 400)
  for (const q of ['bucketSec=1', 'bucketSec=90', `bucketSec=60&since=${new Date(Date.now() - 3 * 86_400_000).toISOString()}`]) {
    const bad = await get(server, `/api/failures/stats?${q}`)
    assert.equal(bad.status, 400, q)
    assert.ok(bad.body.fields.some((f: { field: string }) => f.field === 'querystring.bucketSec'), `${q}: ${JSON.stringify(bad.body)}`)
  }
})

test('connections: live clients with the keepalive in force', async (t) => {
  const server = await startServer({ settings: { maxKeepaliveSec: 100 } })
  t.after(() => server.close())
  const a = await connectMqtt(server.wsUrl, { clientId: 'live-a', keepalive: 30 })
  const b = await connectMqtt(server.wsUrl, { clientId: 'live-b', keepalive: 300, protocolVersion: 5 })
  t.after(() => {
    a.end(true)
    b.end(true)
  })
  const { status, body } = await get(server, '/api/connections')
  assert.equal(status, 200)
  assert.equal(body.total, 2)
  const byId = Object.fromEntries(body.items.map((c: { clientId: string }) => [c.clientId, c]))
  assert.equal(byId['live-a'].keepaliveSec, 30)
  assert.equal(byId['live-a'].protocolVersion, 4)
  assert.equal(byId['live-a'].remoteAddress, '127.0.0.1')
  // MQTT 5 asking more than maxKeepaliveSec is held to it (Server Keep Alive)
  assert.equal(byId['live-b'].keepaliveSec, 100)
  assert.equal(byId['live-b'].requestedKeepaliveSec, 300)
  assert.ok(!Number.isNaN(Date.parse(byId['live-b'].connectedAt)))
  assert.ok(!Number.isNaN(Date.parse(byId['live-b'].lastPacketAt)))

  const filtered = (await get(server, '/api/connections?clientId=live-b')).body
  assert.deepEqual(filtered.items.map((c: { clientId: string }) => c.clientId), ['live-b'])
  assert.equal(filtered.total, 1)
})
