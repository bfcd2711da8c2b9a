// Rate limits of the admin surface, per client address: failed authentications (401) beyond the limit get 429 with
// Retry-After on /api/* for that address only; every address has a request budget on /api/* and another on /metrics;
// /healthz, /readyz and the MQTT endpoint are never limited; 0 turns a limit off. In-process tests give each request
// its address (light-my-request's remoteAddress: the TCP peer address the server sees, X-Forwarded-For is not trusted).
// Then, on a real broker process: a flood of bad-token calls gets 429 while an MQTT client's QoS 1 round trips stay fast
// and an admin UI session from another address (a second loopback address, 127.0.0.2) is served throughout.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { once } from 'node:events'
import { join } from 'node:path'
import { connectMqtt, delay, MessageLog, startServer, startServerProcess, tempDir, TEST_TOKEN, type TestServer } from './helpers.ts'
import type { BootConfig } from '../src/config.ts'

const GOOD = { authorization: `Bearer ${TEST_TOKEN}` }
const BAD = { authorization: 'Bearer not-the-token-at-all' }

async function server(t: { after(fn: () => unknown): void }, config: Partial<BootConfig>): Promise<TestServer> {
  const s = await startServer({ config })
  t.after(() => s.close())
  return s
}

const get = (s: TestServer, url: string, remoteAddress: string, headers: Record<string, string> = {}) =>
  s.app.inject({ method: 'GET', url, remoteAddress, headers })

test('failed authentications: after the limit, 429 with Retry-After for that address only, whatever token it sends; other addresses unaffected', async (t) => {
  const s = await server(t, { rateLimitAuthFailuresPerMin: 5, rateLimitApiPerMin: 0 })
  const attacker = '10.0.0.1'
  for (let i = 0; i < 5; i++) assert.equal((await get(s, '/api/settings', attacker, BAD)).statusCode, 401)
  // a missing token counts as much as a wrong one; the sixth and later requests are refused before any check
  const refused = await get(s, '/api/settings', attacker, {})
  assert.equal(refused.statusCode, 429)
  const retryAfter = Number(refused.headers['retry-after'])
  assert.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${refused.headers['retry-after']}`)
  assert.deepEqual(refused.json(), {
    statusCode: 429, code: 'RATE_LIMITED', error: 'Too Many Requests',
    message: `too many failed authentications from this address (5 a minute): retry in ${retryAfter} s`,
  })
  assert.equal((await get(s, '/api/settings', attacker, GOOD)).statusCode, 429, 'the address is slowed, whatever it sends')
  assert.equal((await get(s, '/api/does-not-exist', attacker, GOOD)).statusCode, 429)

  // another address: served with the token, its own failures counted apart
  assert.equal((await get(s, '/api/settings', '10.0.0.2', GOOD)).statusCode, 200)
  assert.equal((await get(s, '/api/settings', '10.0.0.2', BAD)).statusCode, 401)
  assert.equal((await get(s, '/api/settings', '10.0.0.2', GOOD)).statusCode, 200)
  // an IPv6 client is counted by its /64, as @fastify/rate-limit does
  for (let i = 0; i < 5; i++) assert.equal((await get(s, '/api/settings', `2001:db8::${i + 1}`, BAD)).statusCode, 401)
  assert.equal((await get(s, '/api/settings', '2001:db8::99', GOOD)).statusCode, 429)
  assert.equal((await get(s, '/api/settings', '2001:db8:0:1::1', GOOD)).statusCode, 200)

  // outside /api/ nothing is limited for the refused address
  for (const url of ['/healthz', '/readyz', '/metrics', '/admin/']) {
    assert.equal((await get(s, url, attacker)).statusCode, 200, url)
  }
})

test('a token below the route\'s role (403) is not a failed authentication', async (t) => {
  const s = await server(t, { rateLimitAuthFailuresPerMin: 3, rateLimitApiPerMin: 0 })
  const made = await s.app.inject({ method: 'POST', url: '/api/admin-tokens', headers: GOOD, payload: { name: 'watcher', role: 'viewer' } })
  assert.equal(made.statusCode, 201, made.body)
  const viewer = { authorization: `Bearer ${made.json().token}` }
  for (let i = 0; i < 10; i++) {
    assert.equal((await s.app.inject({ method: 'POST', url: '/api/admin/backup', remoteAddress: '10.0.0.3', headers: viewer })).statusCode, 403)
  }
  assert.equal((await get(s, '/api/settings', '10.0.0.3', viewer)).statusCode, 200)
})

test('the request budget: per address on /api/*, a separate one on /metrics; /healthz, /readyz and MQTT connections never counted', async (t) => {
  const s = await server(t, { rateLimitApiPerMin: 30, rateLimitAuthFailuresPerMin: 0 })
  const ui = '10.0.1.1'
  for (let i = 1; i <= 30; i++) {
    const res = await get(s, '/api/settings', ui, GOOD)
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['x-ratelimit-limit'], '30')
    assert.equal(res.headers['x-ratelimit-remaining'], String(30 - i))
  }
  const over = await get(s, '/api/settings', ui, GOOD)
  assert.equal(over.statusCode, 429)
  assert.ok(Number(over.headers['retry-after']) > 0)
  assert.equal(over.json().code, 'RATE_LIMITED')
  assert.match(over.json().message, /^too many requests from this address \(over 30 a minute\): retry in (1 minute|\d+ seconds?)$/)
  // another address has its own budget; /metrics has its own budget too
  assert.equal((await get(s, '/api/settings', '10.0.1.2', GOOD)).statusCode, 200)
  for (let i = 0; i < 30; i++) assert.equal((await get(s, '/metrics', ui)).statusCode, 200)
  assert.equal((await get(s, '/metrics', ui)).statusCode, 429)
  for (let i = 0; i < 100; i++) {
    assert.equal((await get(s, '/healthz', ui)).statusCode, 200)
    assert.equal((await get(s, '/readyz', ui)).statusCode, 200)
  }
  // real sockets from 127.0.0.1, whose API budget is used up: MQTT clients still connect and are served
  for (let i = 0; i < 31; i++) await s.app.inject({ method: 'GET', url: '/api/settings', remoteAddress: '127.0.0.1', headers: GOOD })
  assert.equal((await fetch(`${s.url}/api/settings`, { headers: GOOD })).status, 429)
  for (let i = 0; i < 5; i++) {
    const c = await connectMqtt(s.wsUrl, { clientId: `budget-${i}` })
    await c.publishAsync('budget/x', 'ok', { qos: 1 })
    c.end(true)
  }
})

test('limits of 0: nothing is limited', async (t) => {
  const s = await server(t, { rateLimitApiPerMin: 0, rateLimitAuthFailuresPerMin: 0 })
  for (let i = 0; i < 300; i++) assert.equal((await get(s, '/api/settings', '10.0.2.1', BAD)).statusCode, 401)
  const res = await get(s, '/api/settings', '10.0.2.1', GOOD)
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['x-ratelimit-limit'], undefined)
})

// ---- a flood against a real broker process ------------------------------------------------------------------------------

interface Answer {
  status: number
}

/** GET `path` with `headers` over `agent`, from `localAddress`. */
function request(port: number, path: string, headers: Record<string, string>, agent: http.Agent, localAddress = '127.0.0.1'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, agent, localAddress }, (res) => {
      res.resume()
      res.once('end', () => resolve({ status: res.statusCode ?? 0 }))
    })
    req.once('error', reject)
    req.end()
  })
}

test('a flood of bad-token calls gets 429 while MQTT round trips stay fast and an admin session from another address is served', async (t) => {
  const tmp = tempDir('flood-')
  t.after(() => tmp.cleanup())
  // the default limits (20 failed authentications, 1200 requests a minute per address)
  const { child, port } = await startServerProcess({ DB_PATH: join(tmp.dir, 'broker.db'), ADMIN_TOKEN: TEST_TOKEN })
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const wsUrl = `ws://127.0.0.1:${port}/mqtt`

  // an MQTT client measuring QoS 1 round trips through the broker (publish to its own subscription)
  let log!: MessageLog
  const mqttClient = await connectMqtt(wsUrl, { clientId: 'flood-rtt' }, 3000, (c) => (log = new MessageLog(c)))
  t.after(() => mqttClient.end(true))
  await mqttClient.subscribeAsync('rtt/#', { qos: 1 })
  const roundTrip = async (i: number) => {
    const started = performance.now()
    await mqttClient.publishAsync('rtt/x', `rtt-${i}`, { qos: 1 })
    await log.waitFor((m) => m.payload.toString() === `rtt-${i}`, 2000)
    return performance.now() - started
  }
  for (let i = 0; i < 5; i++) await roundTrip(-i - 1) // warm up

  const floodAgent = new http.Agent({ keepAlive: true, maxSockets: 32 })
  const uiAgent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => {
    floodAgent.destroy()
    uiAgent.destroy()
  })
  // the UI's address must exist on this machine (all of 127/8 is loopback on Linux)
  const uiFrom = '127.0.0.2'
  assert.equal((await request(port, '/api/settings', GOOD, uiAgent, uiFrom)).status, 200)

  let flooding = true
  const statuses = new Map<number, number>()
  const FLOOD = 4000
  const flood = (async () => {
    let sent = 0
    const worker = async () => {
      while (sent < FLOOD) {
        sent++
        const { status } = await request(port, '/api/settings', BAD, floodAgent)
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
      }
    }
    try {
      await Promise.all(Array.from({ length: 32 }, worker))
    } finally {
      flooding = false
    }
  })()

  const rtts: number[] = []
  const uiStatuses: number[] = []
  const measure = (async () => {
    for (let i = 0; flooding; i++) {
      rtts.push(await roundTrip(i))
      uiStatuses.push((await request(port, '/api/settings', GOOD, uiAgent, uiFrom)).status)
      await delay(10)
    }
  })()
  const floodStarted = performance.now()
  await flood
  const floodMs = performance.now() - floodStarted
  await measure
  const sorted = [...rtts].sort((a, b) => a - b)
  t.diagnostic(`${FLOOD} bad-token requests in ${floodMs.toFixed(0)} ms; ${rtts.length} MQTT QoS 1 round trips meanwhile: ` +
    `median ${sorted[sorted.length >> 1]?.toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(1)} ms`)

  assert.equal(statuses.get(401), 20, `20 failed authentications, then refused: ${JSON.stringify([...statuses])}`)
  assert.equal(statuses.get(429), FLOOD - 20)
  assert.ok(rtts.length >= 10, `${rtts.length} round trips during the flood`)
  const worst = Math.max(...rtts)
  assert.ok(worst < 500, `the slowest MQTT round trip during the flood took ${worst.toFixed(1)} ms (all: ${rtts.map((r) => r.toFixed(0)).join(' ')})`)
  assert.ok(uiStatuses.length >= 10 && uiStatuses.every((s) => s === 200), `the admin session from ${uiFrom}: ${uiStatuses.join(' ')}`)

  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  assert.equal((await exited)[0], 0)
})
