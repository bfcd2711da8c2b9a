// allowedOrigins: a browser upgrade from an Origin that is not allowed gets 403 and a websocket_error naming the
// origin (cross-site WebSocket hijacking of a broker on a LAN); clients that send no Origin are never refused;
// a change through the API reaches the next upgrade.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { WebSocket } from 'ws'
import { connectMqtt, startServer, waitForFailure } from '../helpers.ts'

/** Opens a raw WebSocket with the `mqtt` subprotocol and an Origin; resolves with the HTTP status of the answer. */
function upgradeStatus(url: string, origin: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'mqtt', origin === undefined ? {} : { origin })
    ws.once('open', () => {
      ws.terminate()
      resolve(101)
    })
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0)
      ws.terminate()
    })
    ws.once('error', (err) => reject(err))
  })
}

test('allowedOrigins: any by default; a listed origin passes, another gets 403 and a websocket_error naming it', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  assert.equal(await upgradeStatus(server.wsUrl, 'https://anything.example'), 101, 'null = any origin')

  const res = await fetch(`${server.url}/api/settings`, {
    method: 'PATCH',
    headers: { ...server.auth, 'content-type': 'application/json' },
    body: JSON.stringify({ values: { allowedOrigins: ['https://app.example.com', 'http://localhost:3000'] } }),
  })
  assert.equal(res.status, 200)

  assert.equal(await upgradeStatus(server.wsUrl, 'https://app.example.com'), 101)
  assert.equal(await upgradeStatus(server.wsUrl, 'HTTPS://APP.EXAMPLE.COM/'), 101, 'compared as serialised origins')
  assert.equal(await upgradeStatus(server.wsUrl, undefined), 101, 'no Origin: not a browser, not refused')

  const refused = waitForFailure(server, (e) => e.reason === 'websocket_error' && e.phase === 'handshake')
  assert.equal(await upgradeStatus(server.wsUrl, 'https://evil.example'), 403)
  const e = await refused
  assert.equal(e.origin, 'https://evil.example')
  assert.match(e.detail, /Origin "https:\/\/evil\.example" is not in allowedOrigins/)
  assert.match(e.hint, /allowedOrigins/)

  // a real MQTT.js client (as a Node service would run it) sends no Origin: unaffected
  const client = await connectMqtt(server.wsUrl, { clientId: 'origin-less' })
  client.end(true)
  // and one that claims an allowed origin connects too
  const browserLike = await connectMqtt(server.wsUrl, { clientId: 'browser-like', wsOptions: { origin: 'http://localhost:3000' } })
  browserLike.end(true)
})

test('allowedOrigins: a bad value is refused with a 400 naming the field, and the old list stays in force', async (t) => {
  const server = await startServer({ settings: { allowedOrigins: ['https://ok.example'] } })
  t.after(() => server.close())
  const res = await fetch(`${server.url}/api/settings`, {
    method: 'PATCH',
    headers: { ...server.auth, 'content-type': 'application/json' },
    body: JSON.stringify({ values: { allowedOrigins: 'https://not-a-list.example' } }),
  })
  assert.equal(res.status, 400)
  const body = await res.json() as { fields: Array<{ field: string }> }
  assert.ok(body.fields.some((f) => f.field === 'allowedOrigins'), JSON.stringify(body))
  assert.equal(await upgradeStatus(server.wsUrl, 'https://ok.example'), 101)
  assert.equal(await upgradeStatus(server.wsUrl, 'https://not-a-list.example'), 403)
})
