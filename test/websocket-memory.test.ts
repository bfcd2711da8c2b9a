// What an idle WebSocket connection holds is what a fleet costs: once a client is connected, nothing of its HTTP
// upgrade (the request, the response made for it, Fastify's request and reply) stays reachable.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import v8 from 'node:v8'
import vm from 'node:vm'
import { connectMqtt, startServer, delay } from './helpers.ts'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

test('a connected WebSocket client keeps none of its upgrade request alive', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const requests: WeakRef<IncomingMessage>[] = []
  server.app.server.prependListener('upgrade', (req: IncomingMessage) => requests.push(new WeakRef(req)))
  const clients = await Promise.all(Array.from({ length: 5 }, (_, i) => connectMqtt(server.wsUrl, { clientId: `idle-${i}` })))
  t.after(() => { for (const c of clients) c.end(true) })
  assert.equal(requests.length, 5)
  // the clients stay connected and answer pings; their requests go with the next full collections
  for (let i = 0; i < 5 && requests.some((r) => r.deref() !== undefined); i++) {
    await delay(20)
    gc()
  }
  assert.equal(server.app.broker.stats.clientsConnected, 5)
  assert.deepEqual(requests.map((r) => r.deref() === undefined), [true, true, true, true, true], 'every upgrade request was collected')
})
