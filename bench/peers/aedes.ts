// The Aedes peer: Aedes 1.x with its defaults, behind a `ws` WebSocketServer, as its docs show (docs/Examples.md).
// Started by bench/peers/brokers.ts in its own process; reports its port over IPC and exits when the bench goes.
import { createServer } from 'node:http'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'

const aedes = await Aedes.createBroker()
const httpServer = createServer()
const wss = new WebSocketServer({ server: httpServer, perMessageDeflate: false })

wss.on('connection', (websocket, req) => {
  const stream = createWebSocketStream(websocket)
  stream.on('error', () => stream.destroy())
  aedes.handle(stream, req)
})
// a load generator tearing sockets down is not an error worth a crash
aedes.on('clientError', () => {})
aedes.on('connectionError', () => {})

httpServer.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const addr = httpServer.address()
  const port = typeof addr === 'object' && addr ? addr.port : 0
  process.send?.({ ready: true, port })
})

function shutdown() {
  for (const c of wss.clients) c.terminate()
  httpServer.close()
  aedes.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 1000).unref()
}
process.on('disconnect', shutdown)
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
