// The Aedes peer: Aedes 1.x with its defaults, behind a `ws` WebSocketServer, as its docs show (docs/Examples.md),
// and on plain TCP through `net.createServer(aedes.handle)` (its README's example), each on a port of its own.
// Started by bench/peers/brokers.ts in its own process; reports its ports over IPC and exits when the bench goes.
import { createServer } from 'node:http'
import net from 'node:net'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'

const aedes = await Aedes.createBroker()
const httpServer = createServer()
const wss = new WebSocketServer({ server: httpServer, perMessageDeflate: false })
const tcpSockets = new Set<net.Socket>()
const tcpServer = net.createServer((socket) => {
  tcpSockets.add(socket)
  socket.once('close', () => tcpSockets.delete(socket))
  aedes.handle(socket)
})

wss.on('connection', (websocket, req) => {
  const stream = createWebSocketStream(websocket)
  stream.on('error', () => stream.destroy())
  aedes.handle(stream, req)
})
// a load generator tearing sockets down is not an error worth a crash
aedes.on('clientError', () => {})
aedes.on('connectionError', () => {})

const listen = (server: net.Server, port: number) => new Promise<number>((resolve) => {
  server.listen(port, '127.0.0.1', () => {
    const addr = server.address()
    resolve(typeof addr === 'object' && addr ? addr.port : 0)
  })
})
const port = await listen(httpServer, Number(process.env.PORT ?? 0))
const tcpPort = await listen(tcpServer, Number(process.env.TCP_PORT ?? 0))
process.send?.({ ready: true, port, tcpPort })

function shutdown() {
  for (const c of wss.clients) c.terminate()
  for (const s of tcpSockets) s.destroy()
  httpServer.close()
  tcpServer.close()
  aedes.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 1000).unref()
}
process.on('disconnect', shutdown)
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
