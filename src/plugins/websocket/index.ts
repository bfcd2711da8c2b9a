// The WebSocket adapter: the broker's only transport today. It bounds the HTTP upgrade (./upgrade-guard.ts),
// negotiates the `mqtt` subprotocol at MQTT_PATH, and hands each WebSocket's binary messages to the broker core as
// one byte stream through a WebSocketTransport (./transport.ts).
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { ConnectionInput, ConnectionMeta } from '../../contracts/connection.ts'
import { UpgradeGuard } from './upgrade-guard.ts'
import { socketMeta } from '../peer.ts'
import { WebSocketTransport, clip, closeDetail } from './transport.ts'
import { BEFORE_CONNECT_LIMIT } from '../../mqtt/limits.ts'
import { stallGivenText } from '../../mqtt/stall.ts'

/** The subprotocols we speak, preferred first. [MQTT-6.0.0-3] a client offers "mqtt"; MQTT 3.1 clients "mqttv3.1". */
export const MQTT_SUBPROTOCOLS: readonly string[] = ['mqtt', 'mqttv3.1']

/**
 * The largest WebSocket message a new connection accepts: one packet of `maxPacketSize` (plus its 5-byte fixed
 * header) and room for small packets batched beside it. ws buffers a whole message before the core sees a byte of
 * it, so this is what bounds a client's memory; a larger message is reported as `packet_too_large` without being
 * buffered. The core also checks every packet's declared length against the live `maxPacketSize`, so a lowered
 * limit reaches open connections at once; a raised one lets single messages grow on connections opened after it.
 */
export const wsMessageLimit = (maxPacketSize: number): number => maxPacketSize + 5 + 64 * 1024

/** A message may arrive in at most this many fragments (each costs a buffer of its own until the message is whole). */
const MAX_WS_FRAGMENTS = 65_536

const header = (v: string | string[] | undefined): string | null =>
  v === undefined ? null : clip(Array.isArray(v) ? v.join(', ') : v)

/** An Origin as browsers serialise it (RFC 6454: lower-case scheme and host, no path), for comparing. */
const normalOrigin = (o: string): string => o.trim().toLowerCase().replace(/\/+$/, '')

/** allowedOrigins null = any; otherwise an exact match of the serialised origin, or the entry "*". */
function originAllowed(origin: string, allowed: readonly string[] | null): boolean {
  if (allowed === null) return true
  const o = normalOrigin(origin)
  return allowed.some((a) => a === '*' || normalOrigin(a) === o)
}

/**
 * Offered subprotocols from a Sec-WebSocket-Protocol header: `null` when the header is absent, `false` when it is
 * malformed (an empty entry), else the list.
 */
function offeredSubprotocols(value: string | undefined): string[] | null | false {
  if (value === undefined) return null
  const list = value.split(',').map((s) => s.trim())
  return list.some((s) => s.length === 0) ? false : list
}

/** The subprotocol we will answer with, or null when none of the offered ones is ours. */
function chooseSubprotocol(offered: Iterable<string>): string | null {
  const set = new Set(offered)
  return MQTT_SUBPROTOCOLS.find((p) => set.has(p)) ?? null
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The WebSocket adapter's view of sockets still sending their upgrade request (tests, metrics). */
    websocketAdapter: { readonly pendingUpgrades: number }
  }
}

// ---- one connection's listeners: shared functions, the connection found through its Binding ----

const kBinding = Symbol('mqtt connection')
type Bound = { [kBinding]?: Binding }

/** What the listeners of one WebSocket connection need: the core's input, the WebSocket and its socket, where to log. */
class Binding {
  constructor(
    readonly input: ConnectionInput,
    readonly ws: WebSocket,
    readonly socket: Socket,
    readonly log: FastifyBaseLogger,
    /** ws's maxPayload when this connection completed (a message over it is `messageTooLarge`) */
    readonly limit: number,
  ) {}

  /** A fault of the core on one connection's bytes ends that connection, never the process. */
  fault(err: unknown): void {
    this.log.error({ err, remoteAddress: this.socket.remoteAddress }, 'the broker failed on a connection: closing it')
    this.ws.terminate()
  }
}

function bindingOf(emitter: WebSocket | Socket): Binding {
  return (emitter as Bound)[kBinding]!
}

/**
 * ws holds a partial WebSocket message until it is whole (up to maxPayload): before the CONNECT is complete the socket
 * may deliver only what a CONNECT can need, counted as it arrives.
 */
function beforeConnect(this: Socket): void {
  const b = bindingOf(this)
  if (!b.input.awaitingConnect) {
    this.off('data', beforeConnect)
  } else if (this.bytesRead > BEFORE_CONNECT_LIMIT) {
    this.off('data', beforeConnect)
    try {
      b.input.tooMuchBeforeConnect(this.bytesRead)
    } catch (err) {
      b.fault(err)
    }
  }
}

function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  const b = bindingOf(this)
  try {
    if (isBinary) b.input.push(data)
    else b.input.textFrame()
  } catch (err) {
    b.fault(err)
  }
}

/** Errors of an open WebSocket are the core's to report; ws closes the socket. */
function onError(this: WebSocket, err: Error & { code?: string }): void {
  const b = bindingOf(this)
  try {
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') b.input.messageTooLarge(b.limit)
    else b.input.error(err)
  } catch (e) {
    b.fault(e)
  }
}

function onClose(this: WebSocket, code: number, reason: Buffer): void {
  const b = bindingOf(this)
  try {
    b.input.closed(closeDetail(code, reason))
  } catch (err) {
    b.log.error({ err }, 'the broker failed on a closed connection')
  }
}

function onDrain(this: Socket): void {
  const b = bindingOf(this)
  try {
    b.input.drained()
  } catch (err) {
    b.fault(err)
  }
}

/** A socket's 'finish' listener (see the wsHandler): once our side has ended, the socket goes. */
function destroySocket(this: Duplex): void {
  this.destroy()
}

export default fp(
  async (app) => {
    const mqttPath = app.config.mqttPath
    // the one server speaks TLS when it has a certificate: its WebSockets are then wss
    const transport = app.config.tlsCert ? 'wss' : 'ws'
    const broker = app.broker
    const log = app.log.child({ component: 'websocket' })

    // The core emits its failure events safely (a throwing listener is logged), so reporting cannot break the transport.
    const report = (meta: ConnectionMeta, detail: string, hint: string) =>
      broker.reportHandshakeFailure(meta, 'websocket_error', detail, hint)

    // before its headers are read a socket's timeout profile is unknown: the upgrade gets the largest connectTimeoutMs
    const guard = new UpgradeGuard(
      () => ({ connectTimeoutMs: broker.profiles.largestConnectTimeoutMs, maxConnections: broker.settings.values.maxConnections }),
      (socket, waitedMs, why, stallGivenMs) => {
        // A socket that never sent a byte is not reported: browsers open spare sockets they may never use.
        if (socket.bytesRead === 0) return
        const meta = socketMeta(socket, transport, guard.openedAt(socket))
        const what = `the upgrade request was not complete after ${waitedMs} ms (${socket.bytesRead} bytes of it had arrived` +
          `${stallGivenText(stallGivenMs)})`
        report(
          meta,
          why === null ? what : `${what}; closed because ${why}`,
          'a client stalled while sending its HTTP upgrade headers: a very slow link, a broken proxy, or a slowloris attack; if real clients are this slow, raise connectTimeoutMs',
        )
      },
      // STALL_CREDIT=off: the upgrade's deadline on the wall clock alone
      broker.stallCredit ? broker.stall : null,
    )

    const metaOf = (req: IncomingMessage, socket: Socket, subprotocol: string | null): ConnectionMeta => ({
      transport,
      remoteAddress: socket.remoteAddress ?? null,
      remotePort: socket.remotePort ?? null,
      userAgent: header(req.headers['user-agent']),
      origin: header(req.headers.origin),
      subprotocol,
      path: req.url ?? null,
      openedAt: guard.openedAt(socket),
    })

    guard.attach(app.server)
    app.decorate('websocketAdapter', {
      get pendingUpgrades() {
        return guard.pendingCount
      },
    })

    await app.register(websocket, {
      options: {
        maxPayload: wsMessageLimit(broker.profiles.largestMaxPacketSize),
        maxFragments: MAX_WS_FRAGMENTS,
        perMessageDeflate: false,
        // The broker tracks its connections; a second set here would cost memory per idle client.
        clientTracking: false,
        // Refusals were decided in the onRequest hook below; this only picks among acceptable offers.
        handleProtocols: (offered) => chooseSubprotocol(offered) ?? false,
      },
      // Errors of an open WebSocket are the core's to report (the listener in the handler); ws closes the socket.
      errorHandler: (err) => log.debug({ err }, 'websocket error'),
      // Shutdown: the broker's own preClose tells clients (v5 DISCONNECT 0x8B) and closes them; ours stops upgrades.
      preClose: async () => {
        guard.close()
        app.websocketServer.close()
      },
    })

    broker.on('settingsApplied', () => {
      // ws reads options.maxPayload for each connection it completes
      // (a profile may allow larger packets than the global maxPacketSize; the core checks each connection's own)
      app.websocketServer.options.maxPayload = wsMessageLimit(broker.profiles.largestMaxPacketSize)
      // deadlines are re-computed from each socket's accept time, so an unchanged timeout leaves them as they were
      guard.reschedule(broker.profiles.largestConnectTimeoutMs)
    })

    // Header errors ws finds itself (bad Sec-WebSocket-Key or -Version, not a websocket upgrade): reported, then 400.
    app.websocketServer.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
      report(
        metaOf(req, req.socket as Socket, null),
        `the WebSocket upgrade request was refused: ${err.message}`,
        'the client sent an invalid WebSocket handshake; check that it is a WebSocket client (RFC 6455, version 13)',
      )
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      socket.once('finish', destroySocket)
    })

    // Upgrade requests are judged here, before any route runs: wrong path or method, unacceptable subprotocols.
    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (!request.ws) return
      const req = request.raw
      const socket = req.socket as Socket
      if (request.routeOptions.url !== mqttPath || request.method !== 'GET') {
        report(
          metaOf(req, socket, header(req.headers['sec-websocket-protocol'])),
          `a WebSocket upgrade to ${clip(`${request.method} ${req.url ?? ''}`, 200)} was refused: the MQTT endpoint is GET ${mqttPath}`,
          `point the client at ws://HOST:PORT${mqttPath} (the path is set by MQTT_PATH)`,
        )
        return reply.code(404).send({ error: 'Not Found', message: `the MQTT WebSocket endpoint is ${mqttPath}` })
      }
      const origin = req.headers.origin
      if (origin !== undefined && !originAllowed(origin, broker.settings.values.allowedOrigins)) {
        // a browser page from another site: refused, so a page on the web cannot reach a broker on the LAN
        // through a visitor's browser (cross-site WebSocket hijacking)
        report(
          metaOf(req, socket, header(req.headers['sec-websocket-protocol'])),
          `the WebSocket upgrade was refused: Origin "${clip(origin, 200)}" is not in allowedOrigins`,
          'if this web page should reach the broker, add its origin (scheme://host[:port]) to allowedOrigins; otherwise another site is trying to use a visitor\'s browser to reach the broker',
        )
        return reply.code(403).send({ error: 'Forbidden', message: 'this Origin may not open the MQTT WebSocket (see allowedOrigins)' })
      }
      const offered = offeredSubprotocols(req.headers['sec-websocket-protocol'])
      // No Sec-WebSocket-Protocol at all is accepted: many embedded clients send none.
      if (offered === null) return
      if (offered === false || chooseSubprotocol(offered) === null) {
        const list = offered === false ? header(req.headers['sec-websocket-protocol']) ?? '' : clip(offered.join(', '))
        report(
          metaOf(req, socket, list),
          offered === false
            ? `the WebSocket upgrade was refused: malformed Sec-WebSocket-Protocol header "${list}"`
            : `the WebSocket upgrade was refused: the client offered only the subprotocols "${list}"; this broker speaks ${MQTT_SUBPROTOCOLS.map((p) => `"${p}"`).join(' or ')}`,
          'configure the client to offer the WebSocket subprotocol "mqtt" (MQTT 3.1 clients: "mqttv3.1"), or to send none',
        )
        return reply
          .code(400)
          .send({ error: 'Bad Request', message: `the WebSocket subprotocol must be one of: ${MQTT_SUBPROTOCOLS.join(', ')}` })
      }
    })

    app.route({
      method: 'GET',
      url: mqttPath,
      schema: { hide: true },
      // A plain HTTP GET (a browser, a health check): say what this endpoint is.
      handler: async (_request, reply) =>
        reply
          .code(426)
          .header('upgrade', 'websocket')
          .send({ error: 'Upgrade Required', message: 'this is the MQTT endpoint: connect with an MQTT client over WebSocket (subprotocol "mqtt")' }),
      wsHandler: (ws: WebSocket, request: FastifyRequest) => {
        const req = request.raw
        const socket = req.socket as Socket
        // What an idle connection holds is what it costs: the HTTP objects of its upgrade go now. The response
        // @fastify/websocket made for the upgrade stays on the socket (and holds the request) unless detached, and
        // its 'error' listener holds Fastify's request, reply and child logger; ours below replaces it.
        ;(socket as { _httpMessage?: ServerResponse | null })._httpMessage?.detachSocket(socket)
        let input: ConnectionInput
        try {
          input = broker.handleConnection(new WebSocketTransport(ws, socket), metaOf(req, socket, ws.protocol || null))
        } catch (err) {
          log.error({ err }, 'the broker could not take a new connection')
          ws.terminate()
          return
        }
        // ours replaces @fastify/websocket's 'error' listener (kept until here: ws never goes without one)
        ws.removeAllListeners('error')
        // the limit ws applies to this connection: the one in force when it completed
        const binding = new Binding(input, ws, socket, log, app.websocketServer.options.maxPayload as number)
        ;(ws as Bound)[kBinding] = binding
        ;(socket as Bound)[kBinding] = binding
        // the listeners are shared functions that find the connection through the binding: no closures per client
        socket.on('data', beforeConnect)
        ws.on('message', onMessage)
        ws.on('error', onError)
        ws.on('close', onClose)
        socket.on('drain', onDrain)
        // Once our side has ended (the closing handshake done, or a client's half-close answered), the socket goes:
        // ws would otherwise end the socket a second time when the peer's FIN arrives, and Node builds an
        // ERR_STREAM_ALREADY_FINISHED error (a stack trace) for it, several % of a connect's CPU in a
        // connect/disconnect churn. The server closes the TCP connection first, as RFC 6455 (7.1.1) asks.
        socket.on('finish', destroySocket)
      },
    })
  },
  { name: 'websocket', dependencies: ['broker'] },
)
