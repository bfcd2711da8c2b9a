// Plain MQTT over TCP (MQTT_TCP_PORT) and MQTT over TLS (MQTTS_PORT, the server's certificate) through the same
// broker core as the WebSocket endpoint: one Transport per socket, its bytes handed straight to the core, so the
// connect timeout (from TCP accept), keepalive, quotas, authentication, ACLs and the failure log behave the same.
// Both are off unless configured (1883 is often taken by another broker on the same host).
import net, { type Server, type Socket } from 'node:net'
import tls from 'node:tls'
import fp from 'fastify-plugin'
import type { ConnectionInput, Transport, TransportKind } from '../contracts/connection.ts'
import { closeWithGrace, socketMeta } from './peer.ts'
import type { Broker } from '../mqtt/broker.ts'
import { StallAwareTimeout, stallGivenText } from '../mqtt/stall.ts'
import { LISTEN_BACKLOG } from '../config.ts'

/** A TCP (or TLS) socket as the core sees it. */
class SocketTransport implements Transport {
  readonly #socket: Socket

  constructor(socket: Socket) {
    this.#socket = socket
  }

  write(data: Buffer): boolean {
    return this.#socket.write(data)
  }

  end(): void {
    const socket = this.#socket
    if (socket.destroyed) return
    closeWithGrace(socket, () => socket.end(), () => socket.destroy())
  }

  destroy(): void {
    this.#socket.destroy()
  }

  pause(): void {
    this.#socket.pause()
  }

  resume(): void {
    this.#socket.resume()
  }
}

/** Hand one socket (a TCP one, or a TLS one after its handshake) to the broker; `openedAt` is its TCP accept. */
function serve(broker: Broker, socket: Socket, transport: TransportKind, openedAt: number, log: { error(o: object, m: string): void }): void {
  let input: ConnectionInput
  try {
    input = broker.handleConnection(new SocketTransport(socket), socketMeta(socket, transport, openedAt))
  } catch (err) {
    log.error({ err }, 'the broker could not take a new connection')
    socket.destroy()
    return
  }
  socket.setNoDelay(true)
  // A fault of the core on one connection's bytes ends that connection, never the process.
  const guarded = (fn: () => void) => {
    try {
      fn()
    } catch (err) {
      log.error({ err, remoteAddress: socket.remoteAddress }, 'the broker failed on a connection: closing it')
      socket.destroy()
    }
  }
  let failure: string | null = null
  socket.on('data', (chunk: Buffer) => guarded(() => input.push(chunk)))
  socket.on('drain', () => guarded(() => input.drained()))
  socket.on('error', (err: Error & { code?: string }) => {
    failure = err.code ?? err.message
  })
  socket.on('close', () => guarded(() => input.closed(failure === null
    ? `the peer closed the ${transport === 'tls' ? 'TLS' : 'TCP'} connection`
    : `the ${transport === 'tls' ? 'TLS' : 'TCP'} connection failed (${failure})`)))
}

export interface TcpListeners {
  /** the bound ports (null when off) */
  readonly tcpPort: number | null
  readonly tlsPort: number | null
}

declare module 'fastify' {
  interface FastifyInstance {
    mqttListeners: TcpListeners
  }
}

export default fp(
  async (app) => {
    const { mqttTcpPort, mqttsPort, host } = app.config
    const broker = app.broker
    const log = app.log.child({ component: 'tcp' })
    const servers: Server[] = []
    const sockets = new Set<Socket>()
    const track = (socket: Socket) => {
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
    }
    const listen = (server: Server, port: number) => new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
        server.off('error', reject)
        const address = server.address()
        resolve(typeof address === 'object' && address ? address.port : port)
      })
    })

    let tcpPort: number | null = null
    if (mqttTcpPort !== null) {
      const server = net.createServer((socket) => {
        track(socket)
        serve(broker, socket, 'tcp', Date.now(), log)
      })
      servers.push(server)
      tcpPort = await listen(server, mqttTcpPort)
      log.info({ port: tcpPort }, `MQTT over TCP on mqtt://${host}:${tcpPort}`)
    }

    let tlsPort: number | null = null
    if (mqttsPort !== null) tlsPort = await startTls(mqttsPort)

    /** MQTT over TLS: a TLS handshake per TCP socket, bounded by connectTimeoutMs from the accept like a CONNECT. */
    async function startTls(port: number): Promise<number> {
      const certificates = app.tlsCertificates
      const first = certificates.current()
      if (first === null) throw new Error('MQTTS_PORT needs TLS_CERT and TLS_KEY')
      let context = tls.createSecureContext({ key: first.key, cert: first.cert })
      certificates.on('change', (c) => {
        context = tls.createSecureContext({ key: c.key, cert: c.cert })
      })
      const server = net.createServer((raw) => {
        track(raw)
        const openedAt = Date.now()
        const socket = new tls.TLSSocket(raw, { isServer: true, secureContext: context })
        // the timeout profile by what the socket says (transport, address) bounds the handshake, as it does the CONNECT
        const wait = broker.profiles.beforeConnect(socketMeta(raw, 'tls', openedAt)).values.connectTimeoutMs
        // like a CONNECT's deadline, it measures the client, never the broker (the broker's own stalls are given back)
        const timer = new StallAwareTimeout(broker.stallCredit ? broker.stall : null, openedAt, wait, (stallGivenMs) => {
          // a stalled handshake ends like a stalled CONNECT; a socket that sent nothing is not recorded
          if (raw.bytesRead > 0) {
            broker.reportHandshakeFailure(socketMeta(raw, 'tls', openedAt), 'tls_error',
              `the TLS handshake was not complete after ${Date.now() - openedAt} ms (connectTimeoutMs ${wait}; ${raw.bytesRead} bytes had arrived` +
              `${stallGivenText(stallGivenMs)})`,
              'a client stalled in its TLS handshake: a very slow link, a client that does not speak TLS on this port, or a slowloris attack; if real clients are this slow, raise connectTimeoutMs')
          }
          socket.destroy()
        })
        let secured = false
        socket.once('secure', () => {
          secured = true
          timer.cancel()
          serve(broker, socket, 'tls', openedAt, log)
        })
        socket.once('error', (err: Error & { code?: string }) => {
          if (secured) return // after the handshake, serve() reports it as the connection's end
          timer.cancel()
          broker.reportHandshakeFailure(socketMeta(raw, 'tls', openedAt), 'tls_error', `the TLS handshake failed: ${err.message}`,
            'check that the client trusts this server\'s certificate (its CA, the host name it connects to) and speaks TLS 1.2 or later on this port')
          socket.destroy()
        })
      })
      servers.push(server)
      const bound = await listen(server, port)
      log.info({ port: bound }, `MQTT over TLS on mqtts://${host}:${bound}`)
      return bound
    }

    app.decorate('mqttListeners', { tcpPort, tlsPort })
    // Shutdown: stop accepting first; the broker's own preClose tells connected clients and closes them; sockets still
    // in a TLS handshake are cut.
    app.addHook('preClose', async () => {
      for (const server of servers) server.close()
    })
    app.addHook('onClose', async () => {
      for (const socket of sockets) socket.destroy()
    })
  },
  { name: 'tcp', dependencies: ['broker', 'tls'] },
)
