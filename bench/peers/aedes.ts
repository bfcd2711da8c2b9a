// The Aedes peer: Aedes 1.x with its defaults, behind a `ws` WebSocketServer, as its docs show (docs/Examples.md),
// and on plain TCP through `net.createServer(aedes.handle)` (its README's example), each on a port of its own.
// Started by bench/peers/brokers.ts in its own process; reports its ports over IPC and exits when the bench goes.
// With AEDES_REDIS_URL (peer `aedes:redis`, the cluster bench): its message emitter is mqemitter-redis on that Redis,
// the way Aedes scales over several processes (every message goes through Redis pub/sub, to the processes whose
// clients subscribed); persistence stays its in-memory default.
import { createServer } from 'node:http'
import net from 'node:net'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'

async function redisEmitter(url: string): Promise<unknown> {
  const { default: mqemitterRedis } = await import('mqemitter-redis')
  const mq = mqemitterRedis({ connectionString: url })
  // both of its connections ready before the broker subscribes anything: a SUBSCRIBE queued before ioredis's ready
  // check puts the connection in subscriber mode, the check's INFO then fails and the process dies
  // (its typings leave out the two ioredis connections)
  const { subConn, pubConn } = mq as unknown as Record<'subConn' | 'pubConn', import('ioredis').Redis>
  await Promise.all([subConn, pubConn].map((conn) => new Promise<void>((resolve, reject) => {
    if (conn.status === 'ready') return resolve()
    const timer = setTimeout(() => reject(new Error(`mqemitter-redis: no connection to ${url} in 10 s`)), 10_000)
    conn.once('ready', () => { clearTimeout(timer); resolve() })
  })))
  return mq
}

const redisUrl = process.env.AEDES_REDIS_URL
const aedes = await Aedes.createBroker(redisUrl ? { mq: await redisEmitter(redisUrl) } : {})
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
