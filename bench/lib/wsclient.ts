// Cheap MQTT clients for load generation, over WebSocket or plain TCP. One mqtt-packet parser per client parses what
// arrives; outgoing packets are pre-built once and written many times, several per socket write when batched:
//  - WebSocket (`ws://`): `ws` does the upgrade and parses incoming frames; packets go to the TCP socket under it as
//    pre-built WebSocket frames (one MQTT packet per frame, as MQTT.js sends them);
//  - TCP (`mqtt://`): a `net.Socket` carrying the raw MQTT packets both ways.
// `framing(transport)` builds what is written for either; `connectClient(url, ...)` picks the client by the URL's scheme.
import net from 'node:net'
import { WebSocket } from 'ws'
import mqtt from 'mqtt-packet'
import type { Packet, IConnackPacket } from 'mqtt-packet'

const PROTOCOL_VERSION = 4 // MQTT 3.1.1: the one version all three peers speak

export type Transport = 'ws' | 'tcp'
export const TRANSPORTS: readonly Transport[] = ['ws', 'tcp']

/** `mqtt://host:port` is plain TCP; anything else (`ws://...`) a WebSocket. */
export function transportOf(url: string): Transport {
  return url.startsWith('mqtt://') ? 'tcp' : 'ws'
}

/**
 * One binary WebSocket frame, client-to-server, masked with the all-zero key (RFC 6455 requires a mask; a zero
 * key leaves the payload as is, so a frame can be built once and written many times).
 */
export function wsFrame(payload: Buffer): Buffer {
  const len = payload.length
  const headLen = len < 126 ? 2 : len < 65536 ? 4 : 10
  const out = Buffer.allocUnsafe(headLen + 4 + len)
  out[0] = 0x82 // FIN + binary
  if (len < 126) {
    out[1] = 0x80 | len
  } else if (len < 65536) {
    out[1] = 0x80 | 126
    out.writeUInt16BE(len, 2)
  } else {
    out[1] = 0x80 | 127
    out.writeBigUInt64BE(BigInt(len), 2)
  }
  out.writeUInt32BE(0, headLen) // mask key 0
  payload.copy(out, headLen + 4)
  return out
}

/** An MQTT packet as one ready-to-write WebSocket frame. */
export function packetFrame(packet: Packet): Buffer {
  return wsFrame(mqtt.generate(packet, { protocolVersion: PROTOCOL_VERSION }))
}

/** PUBACK for `messageId`, framed (2-byte MQTT packet + 6-byte frame header). */
export function pubackFrame(messageId: number): Buffer {
  const b = Buffer.allocUnsafe(10)
  b[0] = 0x82
  b[1] = 0x84
  b.writeUInt32BE(0, 2)
  b[6] = 0x40
  b[7] = 0x02
  b.writeUInt16BE(messageId, 8)
  return b
}

export const DISCONNECT_FRAME = packetFrame({ cmd: 'disconnect' })

export function connectFrame(clientId: string, keepalive = 60, clean = true): Buffer {
  return packetFrame(connectPacket(clientId, keepalive, clean))
}

function connectPacket(clientId: string, keepalive: number, clean: boolean): Packet {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: PROTOCOL_VERSION, clientId, keepalive, clean }
}

/** What a client writes on a transport: MQTT packets as WebSocket frames (ws) or as they are (tcp). */
export interface Framing {
  readonly transport: Transport
  /** an encoded MQTT packet, ready to write */
  wrap(mqttBytes: Buffer): Buffer
  packet(p: Packet): Buffer
  /** PUBACK for `messageId`: always `pubackBytes` long */
  puback(messageId: number): Buffer
  readonly pubackBytes: number
  readonly disconnect: Buffer
  connect(clientId: string, keepalive?: number, clean?: boolean): Buffer
}

const WS_FRAMING: Framing = {
  transport: 'ws',
  wrap: wsFrame,
  packet: packetFrame,
  puback: pubackFrame,
  pubackBytes: 10,
  disconnect: DISCONNECT_FRAME,
  connect: connectFrame,
}

const generate = (p: Packet) => mqtt.generate(p, { protocolVersion: PROTOCOL_VERSION })
const TCP_FRAMING: Framing = {
  transport: 'tcp',
  wrap: (b) => b,
  packet: generate,
  puback: (messageId) => {
    const b = Buffer.allocUnsafe(4)
    b[0] = 0x40
    b[1] = 0x02
    b.writeUInt16BE(messageId, 2)
    return b
  },
  pubackBytes: 4,
  disconnect: generate({ cmd: 'disconnect' }),
  connect: (clientId, keepalive = 60, clean = true) => generate(connectPacket(clientId, keepalive, clean)),
}

export function framing(t: Transport): Framing {
  return t === 'tcp' ? TCP_FRAMING : WS_FRAMING
}

export interface OpenOptions {
  /** ms for the connection (TCP connect, and the upgrade for a WebSocket) to complete */
  timeoutMs?: number
  /** called for every parsed MQTT packet */
  onPacket?: (p: Packet) => void
  /** the local address to connect from (WebSocket only; e.g. 127.0.0.2: each address has its own ephemeral ports) */
  localAddress?: string
}

export type ConnectOptions = OpenOptions & { keepalive?: number, clean?: boolean }

/** What the scenarios use of a client, on either transport. */
export abstract class MqttClient {
  abstract readonly transport: Transport
  /** the TCP socket (under the WebSocket, for ws): pre-built packets or frames go straight to it */
  readonly socket: net.Socket
  readonly framing: Framing
  onPacket: (p: Packet) => void
  onClose: () => void = () => {}
  closed = false
  protected readonly parser = mqtt.parser({ protocolVersion: PROTOCOL_VERSION })

  protected constructor(socket: net.Socket, framing: Framing, onPacket: (p: Packet) => void) {
    this.socket = socket
    this.framing = framing
    this.onPacket = onPacket
    this.parser.on('packet', (p: Packet) => this.onPacket(p))
    this.parser.on('error', () => this.destroy())
  }

  /** Start a graceful close: the WebSocket closing handshake, or a TCP FIN (no DISCONNECT: write it first). */
  abstract close(): void
  /** `cb` once the connection is closed (at once if it is already). */
  abstract whenClosed(cb: () => void): void
  /** Cut the connection. */
  abstract destroy(): void

  /** CONNECT, wait for a successful CONNACK. */
  protected handshake(clientId: string, opts: ConnectOptions): Promise<void> {
    const onPacket = opts.onPacket ?? (() => {})
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { this.destroy(); reject(new Error(`no CONNACK for ${clientId}`)) }, opts.timeoutMs ?? 10_000)
      this.onClose = () => { clearTimeout(timer); reject(new Error(`closed before CONNACK (${clientId})`)) }
      this.onPacket = (p) => {
        if (p.cmd !== 'connack') return
        clearTimeout(timer)
        this.onPacket = onPacket
        this.onClose = () => {}
        const code = (p as IConnackPacket).returnCode ?? (p as IConnackPacket).reasonCode ?? 0
        if (code !== 0) { this.destroy(); reject(new Error(`CONNACK ${code} for ${clientId}`)) } else resolve()
      }
      this.write(this.framing.connect(clientId, opts.keepalive ?? 60, opts.clean ?? true))
    })
  }

  /** Subscribe and wait for the SUBACK. */
  subscribe(topic: string, qos: 0 | 1, timeoutMs = 10_000): Promise<void> {
    return this.subscribeAll([{ topic, qos }], timeoutMs)
  }

  /** Subscribe to several filters in one SUBSCRIBE and wait for the SUBACK (every filter granted). */
  subscribeAll(subscriptions: Array<{ topic: string, qos: 0 | 1 }>, timeoutMs = 10_000): Promise<void> {
    const what = subscriptions.map((s) => s.topic).join(', ')
    return new Promise((resolve, reject) => {
      const prev = this.onPacket
      const timer = setTimeout(() => { this.onPacket = prev; reject(new Error(`no SUBACK for ${what}`)) }, timeoutMs)
      this.onPacket = (p) => {
        if (p.cmd === 'suback' && p.messageId === 1) {
          clearTimeout(timer)
          this.onPacket = prev
          if (p.granted.some((g) => g === 128)) reject(new Error(`subscription to ${what} refused`))
          else resolve()
        } else prev(p)
      }
      this.write(this.framing.packet({ cmd: 'subscribe', messageId: 1, subscriptions }))
    })
  }

  /** Write pre-built packets (frames, for ws); false when the socket buffer is over its high-water mark. */
  write(frames: Buffer): boolean {
    return this.socket.write(frames)
  }

  /** Resolves when what was written has been handed to the kernel (or the socket is gone). */
  drained(timeoutMs = 5000): Promise<void> {
    if (this.socket.writableLength === 0 || this.closed) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs)
      function done() { clearTimeout(timer); resolve() }
      this.socket.once('drain', done)
      this.socket.once('close', done)
    })
  }

  /** Clean end: DISCONNECT, then a graceful close; resolves on close (or after timeoutMs, cutting the connection). */
  end(timeoutMs = 3000): Promise<void> {
    if (this.closed) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.destroy(); resolve() }, timeoutMs)
      this.whenClosed(() => { clearTimeout(timer); resolve() })
      this.write(this.framing.disconnect)
      this.close()
    })
  }
}

/** MQTT over WebSocket (subprotocol `mqtt`). */
export class BenchClient extends MqttClient {
  readonly transport = 'ws' as const
  readonly ws: WebSocket

  private constructor(ws: WebSocket, socket: net.Socket, onPacket: (p: Packet) => void) {
    super(socket, WS_FRAMING, onPacket)
    this.ws = ws
    ws.on('message', (data: Buffer) => { this.parser.parse(data) })
    ws.on('close', () => { this.closed = true; this.onClose() })
    ws.on('error', () => { this.closed = true })
  }

  /** Open a WebSocket with subprotocol `mqtt` (no MQTT bytes yet). */
  static open(url: string, opts: OpenOptions = {}): Promise<BenchClient> {
    return new Promise((resolve, reject) => {
      let socket: net.Socket | null = null
      const ws = new WebSocket(url, 'mqtt', {
        perMessageDeflate: false,
        handshakeTimeout: opts.timeoutMs ?? 10_000,
        createConnection: (o: net.NetConnectOpts) => (socket = net.connect(opts.localAddress ? { ...o, localAddress: opts.localAddress } as net.NetConnectOpts : o)),
      } as ConstructorParameters<typeof WebSocket>[2])
      ws.binaryType = 'nodebuffer'
      const fail = (err: Error) => { ws.terminate(); reject(err) }
      ws.once('error', fail)
      ws.once('unexpected-response', (_req, res) => fail(new Error(`upgrade refused: HTTP ${res.statusCode}`)))
      ws.once('open', () => {
        ws.off('error', fail)
        if (!socket) return fail(new Error('no socket'))
        socket.setNoDelay(true)
        resolve(new BenchClient(ws, socket, opts.onPacket ?? (() => {})))
      })
    })
  }

  /** Open, CONNECT, wait for a successful CONNACK. */
  static async connect(url: string, clientId: string, opts: ConnectOptions = {}): Promise<BenchClient> {
    const c = await BenchClient.open(url, opts)
    await c.handshake(clientId, opts)
    return c
  }

  close(): void {
    this.ws.close(1000)
  }

  whenClosed(cb: () => void): void {
    if (this.ws.readyState === WebSocket.CLOSED) queueMicrotask(cb)
    else this.ws.once('close', () => cb())
  }

  destroy(): void {
    this.closed = true
    this.ws.terminate()
  }
}

/** MQTT over a plain TCP socket (`mqtt://host:port`). */
export class TcpClient extends MqttClient {
  readonly transport = 'tcp' as const
  private gone = false

  private constructor(socket: net.Socket, onPacket: (p: Packet) => void) {
    super(socket, TCP_FRAMING, onPacket)
    socket.on('data', (data: Buffer) => { this.parser.parse(data) })
    socket.on('close', () => { this.gone = true; this.closed = true; this.onClose() })
    socket.on('error', () => { this.closed = true })
  }

  /** Open a TCP connection (no MQTT bytes yet). */
  static open(url: string, opts: OpenOptions = {}): Promise<TcpClient> {
    const u = new URL(url)
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: u.hostname, port: Number(u.port || 1883) })
      const timer = setTimeout(() => fail(new Error(`TCP connect to ${u.host} timed out`)), opts.timeoutMs ?? 10_000)
      function fail(err: Error) { clearTimeout(timer); socket.destroy(); reject(err) }
      socket.once('error', fail)
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.off('error', fail)
        socket.setNoDelay(true)
        resolve(new TcpClient(socket, opts.onPacket ?? (() => {})))
      })
    })
  }

  /** Open, CONNECT, wait for a successful CONNACK. */
  static async connect(url: string, clientId: string, opts: ConnectOptions = {}): Promise<TcpClient> {
    const c = await TcpClient.open(url, opts)
    await c.handshake(clientId, opts)
    return c
  }

  close(): void {
    this.socket.end()
  }

  whenClosed(cb: () => void): void {
    if (this.gone) queueMicrotask(cb)
    else this.socket.once('close', () => cb())
  }

  destroy(): void {
    this.closed = true
    this.socket.destroy()
  }
}

/** Open (no MQTT bytes yet) over the URL's transport: `ws://` WebSocket, `mqtt://` TCP. */
export function openClient(url: string, opts: OpenOptions = {}): Promise<MqttClient> {
  return transportOf(url) === 'tcp' ? TcpClient.open(url, opts) : BenchClient.open(url, opts)
}

/** Open, CONNECT, wait for a successful CONNACK, over the URL's transport. */
export function connectClient(url: string, clientId: string, opts: ConnectOptions = {}): Promise<MqttClient> {
  return transportOf(url) === 'tcp' ? TcpClient.connect(url, clientId, opts) : BenchClient.connect(url, clientId, opts)
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  async function worker() {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}
