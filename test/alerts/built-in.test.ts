// The built-in rule partial-connect-timeouts, as shipped (20 in 60 s), through the real server: raw WebSocket clients
// that send part of a CONNECT and stall are cut off by connectTimeoutMs (300 ms here) and fire it; as many silent
// sockets (0 bytes) timing out the same way do not. The UI's banner source (/api/alerts/active) and the metric follow.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Packet } from 'mqtt-packet'
import { RawClient, startServer, until, type TestServer } from '../helpers.ts'

const BUILT_IN = 'partial-connect-timeouts'

/** `n` raw clients, each sending `bytes` (nothing when empty) and waiting to be cut off by the connect timeout. */
async function timingOut(s: TestServer, n: number, bytes: Buffer): Promise<void> {
  await Promise.all(Array.from({ length: n }, async () => {
    const raw = await RawClient.open(s.wsUrl)
    if (bytes.length > 0) raw.sendBytes(bytes)
    await raw.closed(5000)
  }))
}

const active = async (s: TestServer) =>
  (await s.app.inject({ method: 'GET', url: '/api/alerts/active', headers: s.auth })).json().items as { ruleName: string; count: number; failures: Record<string, string> }[]

test('the built-in rule fires on partial-CONNECT timeouts, not on silent sockets', { timeout: 30_000 }, async (t) => {
  const s = await startServer({ settings: { connectTimeoutMs: 300 } })
  t.after(() => s.close())
  s.app.alerts.tune({ evaluateEveryMs: 100 })
  const counted: number[] = []
  s.app.broker.on('failure', (e) => {
    if (e.reason === 'connect_timeout') counted.push(e.bytesReceived)
  })

  await t.test('25 silent sockets time out: not an alert', async () => {
    await timingOut(s, 25, Buffer.alloc(0))
    await until(() => counted.filter((b) => b === 0).length >= 25, '25 silent connect timeouts')
    s.app.alerts.evaluateNow()
    assert.deepEqual(await active(s), [])
    assert.equal(s.app.alerts.list().find((r) => r.name === BUILT_IN)!.firing, false)
  })

  await t.test('20 clients stalled in the middle of their CONNECT: the built-in rule fires', async () => {
    const connect = RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: 'half-way' } as Packet)
    const half = connect.subarray(0, Math.floor(connect.length / 2))
    await timingOut(s, 20, half)
    await until(() => counted.filter((b) => b > 0).length >= 20, '20 partial connect timeouts')
    let items: Awaited<ReturnType<typeof active>> = []
    for (let i = 0; i < 50 && items.length === 0; i++) {
      items = await active(s)
      if (items.length === 0) await new Promise((r) => setTimeout(r, 100))
    }
    assert.equal(items.length, 1, 'one rule fires')
    assert.equal(items[0].ruleName, BUILT_IN)
    assert.equal(items[0].count, 20, 'the silent sockets are not counted')
    assert.equal(items[0].failures.reason, 'connect_timeout')
    const metrics = (await s.app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^mqtt_alert_firing\{rule="partial-connect-timeouts"\} 1$/m)
    const history = (await s.app.inject({ method: 'GET', url: '/api/alerts/history', headers: s.auth })).json().items
    assert.equal(history[0].state, 'firing')
    assert.equal(history[0].ruleName, BUILT_IN)
    assert.match(history[0].detail, /20 connect_timeout failures of clients that had sent part of their CONNECT/)
  })
})
