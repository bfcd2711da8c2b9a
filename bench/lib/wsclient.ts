// A cheap MQTT-over-WebSocket client for load generation: `ws` does the upgrade and parses incoming frames, one
// mqtt-packet parser per client parses what arrives, and outgoing packets are written to the TCP socket as
// pre-built WebSocket frames (one MQTT packet per frame, as MQTT.js sends them), many frames per write when batched.
import net from 'node:net'
import { WebSocket } from 'ws'
import mqtt from 'mqtt-packet'
import type { Packet, IConnackPacket } from 'mqtt-packet'

const PROTOCOL_VERSION = 4 // MQTT 3.1.1: the one version all three peers speak

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
  return packetFrame({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: PROTOCOL_VERSION, clientId, keepalive, clean })
}

export interface OpenOptions {
  /** ms for the upgrade to complete */
  timeoutMs?: number
  /** called for every parsed MQTT packet */
  onPacket?: (p: Packet) => void
}

export class BenchClient {
  /** the raw TCP socket under the WebSocket: pre-built frames go straight to it */
  readonly socket: net.Socket
  readonly ws: WebSocket
  onPacket: (p: Packet) => void
  onClose: () => void = () => {}
  closed = false
  private readonly parser = mqtt.parser({ protocolVersion: PROTOCOL_VERSION })

  private constructor(ws: WebSocket, socket: net.Socket, onPacket: (p: Packet) => void) {
    this.ws = ws
    this.socket = socket
    this.onPacket = onPacket
    this.parser.on('packet', (p: Packet) => this.onPacket(p))
    this.parser.on('error', () => this.destroy())
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
        createConnection: (o: net.NetConnectOpts) => (socket = net.connect(o)),
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
  static async connect(url: string, clientId: string, opts: OpenOptions & { keepalive?: number, clean?: boolean } = {}): Promise<BenchClient> {
    const c = await BenchClient.open(url, opts)
    const onPacket = opts.onPacket ?? (() => {})
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { c.destroy(); reject(new Error(`no CONNACK for ${clientId}`)) }, opts.timeoutMs ?? 10_000)
      c.onClose = () => { clearTimeout(timer); reject(new Error(`closed before CONNACK (${clientId})`)) }
      c.onPacket = (p) => {
        if (p.cmd !== 'connack') return
        clearTimeout(timer)
        c.onPacket = onPacket
        c.onClose = () => {}
        const code = (p as IConnackPacket).returnCode ?? (p as IConnackPacket).reasonCode ?? 0
        if (code !== 0) { c.destroy(); reject(new Error(`CONNACK ${code} for ${clientId}`)) } else resolve()
      }
      c.write(connectFrame(clientId, opts.keepalive ?? 60, opts.clean ?? true))
    })
    return c
  }

  /** Subscribe and wait for the SUBACK. */
  subscribe(topic: string, qos: 0 | 1, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const prev = this.onPacket
      const timer = setTimeout(() => { this.onPacket = prev; reject(new Error(`no SUBACK for ${topic}`)) }, timeoutMs)
      this.onPacket = (p) => {
        if (p.cmd === 'suback' && p.messageId === 1) {
          clearTimeout(timer)
          this.onPacket = prev
          if (p.granted[0] === 128) reject(new Error(`subscription to ${topic} refused`))
          else resolve()
        } else prev(p)
      }
      this.write(packetFrame({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] }))
    })
  }

  /** Write pre-built frames; false when the socket buffer is over its high-water mark. */
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

  /** Clean end: DISCONNECT, then the WebSocket closing handshake; resolves on close (or after timeoutMs). */
  end(timeoutMs = 3000): Promise<void> {
    if (this.closed) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.destroy(); resolve() }, timeoutMs)
      this.ws.once('close', () => { clearTimeout(timer); resolve() })
      this.write(DISCONNECT_FRAME)
      this.ws.close(1000)
    })
  }

  destroy(): void {
    this.closed = true
    this.ws.terminate()
  }
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
