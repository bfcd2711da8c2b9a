// Alerts through the real server and real clients: a rule on protocol errors (raw WebSocket clients sending PINGREQ
// before CONNECT) fires, its webhook gets a signed firing event (the HMAC checked with the rule's secret), retried
// after a 500, then a resolved one once the window has passed; the history links to the failures behind it; the
// metrics follow; the secret is never in an API answer, an audit row or a log line. And a receiver that never
// answers: the queue stays bounded, drops are counted, MQTT keeps being served.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { connectMqtt, RawClient, startServer, until, type TestServer } from '../helpers.ts'
import { expectedSignature, receiver } from './receiver.ts'

const SECRET = 'whsec-4b1d9e7c2a8f'

/** `n` raw WebSocket clients that each send PINGREQ before CONNECT: n protocol_error failures. */
async function protocolErrors(s: TestServer, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, async () => {
    const raw = await RawClient.open(s.wsUrl)
    raw.sendBytes(Buffer.from([0xc0, 0x00]))
    await raw.closed().catch(() => raw.close())
  }))
}

const metric = async (s: TestServer, line: RegExp): Promise<number> => {
  const text = (await s.app.inject({ method: 'GET', url: '/metrics' })).body
  const m = text.split('\n').find((l) => line.test(l))
  return m === undefined ? Number.NaN : Number(m.split(' ').pop())
}

test('a signed webhook: firing (retried after a 500), then resolved; history, metrics, no secret anywhere', { timeout: 30_000 }, async (t) => {
  const logs: string[] = []
  const stream = new Writable({ write(chunk, _enc, cb) { logs.push(String(chunk)); cb() } })
  const s = await startServer({ config: { logLevel: 'debug' }, logger: { level: 'debug', stream } })
  t.after(() => s.close())
  s.app.alerts.tune({ evaluateEveryMs: 100, retryDelaysMs: [200, 400], timeoutMs: 2000 })
  const hook = await receiver(t, (n) => (n === 1 ? 500 : 200))

  const created = await s.app.inject({
    method: 'POST', url: '/api/alerts/rules', headers: s.auth,
    payload: { name: 'protocol-errors', reason: 'protocol_error', count: 3, windowSec: 1, webhookUrl: hook.url, secret: SECRET },
  })
  assert.equal(created.statusCode, 201, created.body)
  const ruleId = created.json().id

  await protocolErrors(s, 3)
  const firing = await hook.waitFor(2, (r) => r.json.state === 'firing')
  await t.test('the firing event came twice (500, then 200), signed, with the rule, the counts and the failures query', () => {
    assert.equal(firing[0].body, firing[1].body, 'the retry sends the same body')
    assert.equal(firing[0].headers['x-broker-delivery'], firing[1].headers['x-broker-delivery'])
    for (const r of firing) {
      assert.equal(r.headers['x-broker-signature'], expectedSignature(SECRET, r.body))
      assert.equal(r.headers['content-type'], 'application/json')
    }
    const body = firing[1].json as Record<string, any>
    assert.equal(body.event, 'alert')
    assert.equal(body.rule.name, 'protocol-errors')
    assert.equal(body.rule.reason, 'protocol_error')
    assert.ok(body.count >= 3, `count ${body.count}`)
    assert.equal(body.windowSec, 1)
    assert.equal(body.failures.query.reason, 'protocol_error')
    assert.match(body.failures.api, /^\/api\/failures\?reason=protocol_error&since=.+&until=.+/)
    assert.ok(!firing[1].body.includes(SECRET))
  })

  const [resolved] = await hook.waitFor(1, (r) => r.json.state === 'resolved', 10_000)
  await t.test('resolved after the window passed, signed too', async () => {
    assert.equal(resolved.headers['x-broker-signature'], expectedSignature(SECRET, resolved.body))
    assert.ok((resolved.json.count as number) >= 3)
    // the receiver records a request before it answers: the sender counts it once the answer is in
    await until(() => s.app.alerts.webhookStats().ok === 2, 'both deliveries counted')
    assert.equal(await metric(s, /^mqtt_alert_firing\{rule="protocol-errors"\}/), 0)
    assert.equal(await metric(s, /^mqtt_alert_webhook_deliveries_total\{result="ok"\}/), 2)
    assert.equal(await metric(s, /^mqtt_alert_webhook_deliveries_total\{result="dropped"\}/), 0)
    assert.equal(await metric(s, /^mqtt_alert_webhook_retries_total/), 1)
  })

  await t.test('the history: resolved then firing, newest first, each naming the failures behind it', async () => {
    const h = (await s.app.inject({ method: 'GET', url: `/api/alerts/history?ruleId=${ruleId}`, headers: s.auth })).json()
    assert.deepEqual(h.items.map((e: { state: string }) => e.state), ['resolved', 'firing'])
    const q = h.items[1].failures
    // the failure log writes in batches: the records show up shortly
    let listed = 0
    for (let i = 0; i < 50 && listed < 3; i++) {
      const page = await s.app.inject({ method: 'GET', url: `/api/failures?${new URLSearchParams(q)}`, headers: s.auth })
      listed = page.json().items.length
      if (listed < 3) await new Promise((r) => setTimeout(r, 100))
    }
    assert.ok(listed >= 3, `${listed} failures listed by ${JSON.stringify(q)}`)
  })

  await t.test('the secret is in no API answer, audit row or log line', async () => {
    for (const url of ['/api/alerts/rules', `/api/alerts/rules/${ruleId}`, '/api/alerts/history', '/api/alerts/active', '/api/audit']) {
      const res = await s.app.inject({ method: 'GET', url, headers: s.auth })
      assert.equal(res.statusCode, 200, url)
      assert.ok(!res.body.includes(SECRET), url)
    }
    assert.ok(logs.length > 0)
    assert.ok(logs.some((l) => l.includes('protocol-errors')), 'the alert was logged')
    assert.ok(!logs.some((l) => l.includes(SECRET)), 'no log line holds the secret')
  })
})

test('a receiver that never answers: the queue stays bounded, drops are counted, MQTT keeps being served', { timeout: 30_000 }, async (t) => {
  const s = await startServer()
  t.after(() => s.close())
  s.app.alerts.tune({ evaluateEveryMs: 100, queueMax: 5, concurrency: 1, retryDelaysMs: [], timeoutMs: 20_000 })
  const hook = await receiver(t, () => 'hang')
  const RULES = 20
  for (let i = 0; i < RULES; i++) {
    const res = await s.app.inject({
      method: 'POST', url: '/api/alerts/rules', headers: s.auth,
      payload: { name: `hang-${i}`, reason: 'protocol_error', count: 1, windowSec: 1, webhookUrl: hook.url },
    })
    assert.equal(res.statusCode, 201, res.body)
  }
  await protocolErrors(s, 1)
  // every rule fires at once: 20 deliveries, one in flight, 5 waiting, 14 dropped
  await until(() => s.app.alerts.webhookStats().dropped >= RULES - 6, 'drops counted')
  const st = s.app.alerts.webhookStats()
  assert.ok(st.queued <= 5, `queued ${st.queued}`)
  assert.equal(st.inFlight, 1)
  await hook.waitFor(1)

  // the broker goes on: a client connects, subscribes and gets its own message
  const client = await connectMqtt(s.wsUrl, { clientId: 'still-served' })
  t.after(() => client.end(true))
  await client.subscribeAsync('alerts/still', { qos: 1 })
  const got = new Promise<string>((resolve) => client.once('message', (_topic, payload) => resolve(payload.toString())))
  await client.publishAsync('alerts/still', 'served', { qos: 1 })
  assert.equal(await got, 'served')

  // and when they resolve, more deliveries meet a full queue: still bounded
  await until(() => s.app.alerts.webhookStats().dropped >= 2 * RULES - 6, 'resolved deliveries dropped too', 10_000)
  assert.ok(s.app.alerts.webhookStats().queued <= 5)
  assert.ok((await metric(s, /^mqtt_alert_webhook_deliveries_total\{result="dropped"\}/)) >= 2 * RULES - 6)
  assert.equal(await metric(s, /^mqtt_alert_webhook_queue /), s.app.alerts.webhookStats().queued)
})

test('a firing rule that is deleted resolves to its webhook, signed with its secret', { timeout: 30_000 }, async (t) => {
  const s = await startServer()
  t.after(() => s.close())
  s.app.alerts.tune({ evaluateEveryMs: 100 })
  const hook = await receiver(t)
  const created = await s.app.inject({
    method: 'POST', url: '/api/alerts/rules', headers: s.auth,
    payload: { name: 'short-lived', reason: 'protocol_error', count: 1, windowSec: 600, webhookUrl: hook.url, secret: SECRET },
  })
  assert.equal(created.statusCode, 201, created.body)
  await protocolErrors(s, 1)
  await hook.waitFor(1, (r) => r.json.state === 'firing')
  assert.equal((await s.app.inject({ method: 'DELETE', url: `/api/alerts/rules/${created.json().id}`, headers: s.auth })).statusCode, 204)
  const [resolved] = await hook.waitFor(1, (r) => r.json.state === 'resolved')
  assert.match(resolved.json.detail as string, /deleted/)
  assert.equal(resolved.headers['x-broker-signature'], expectedSignature(SECRET, resolved.body))
})
