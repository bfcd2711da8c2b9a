// Below the WebSocket layer, for the adapter's tests: a plain TCP socket that sends (part of) an upgrade request
// and hand-built frames, so that stalled handshakes and invalid frames can be produced on purpose.
import net from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'

/** A TCP connection to 127.0.0.1:port; errors are swallowed (the server closing on us is what tests look for). */
export async function tcpConnect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** The text of a WebSocket upgrade request. */
export function upgradeRequest(path = '/mqtt', headers: Record<string, string> = { 'Sec-WebSocket-Protocol': 'mqtt' }): string {
  const lines = [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ]
  return `${lines.join('\r\n')}\r\n\r\n`
}

/** Reads the HTTP response head (up to the blank line) that answers an upgrade request. */
export async function readResponseHead(socket: net.Socket, timeoutMs = 3000): Promise<string> {
  let text = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no HTTP response within ${timeoutMs} ms`)), timeoutMs)
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end >= 0) done(null, text.slice(0, end))
    }
    const onClose = () => done(new Error(`socket closed before a response: ${JSON.stringify(text)}`))
    function done(err: Error | null, head?: string) {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('close', onClose)
      if (err) reject(err)
      else resolve(head as string)
    }
    socket.on('data', onData)
    socket.on('close', onClose)
  })
}

/** A TCP socket upgraded by hand (HTTP 101 read); what follows on it are WebSocket frames. */
export async function rawUpgrade(port: number, path = '/mqtt'): Promise<net.Socket> {
  const socket = await tcpConnect(port)
  socket.write(upgradeRequest(path))
  const head = await readResponseHead(socket)
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${head.split('\r\n')[0]}`)
  return socket
}

/** A masked client frame. `declaredLength` lies about the payload length (the payload is not sent then). */
export function clientFrame(opcode: number, payload: Buffer, opts: { fin?: boolean; declaredLength?: number } = {}): Buffer {
  const length = opts.declaredLength ?? payload.length
  const first = (opts.fin === false ? 0 : 0x80) | opcode
  let head: Buffer
  if (length < 126) head = Buffer.from([first, 0x80 | length])
  else if (length < 65536) {
    head = Buffer.alloc(4)
    head[0] = first
    head[1] = 0x80 | 126
    head.writeUInt16BE(length, 2)
  } else {
    head = Buffer.alloc(10)
    head[0] = first
    head[1] = 0x80 | 127
    head.writeBigUInt64BE(BigInt(length), 2)
  }
  const mask = randomBytes(4)
  if (opts.declaredLength !== undefined) return Buffer.concat([head, mask])
  const masked = Buffer.from(payload)
  for (let i = 0; i < masked.length; i++) masked[i] ^= mask[i & 3]
  return Buffer.concat([head, mask, masked])
}

/** Resolves with the ms from `since` until the socket closes, rejects after timeoutMs. */
export function closedAfter(socket: net.Socket, since: number, timeoutMs = 5000): Promise<number> {
  if (socket.destroyed) return Promise.resolve(Date.now() - since)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve(Date.now() - since)
    })
  })
}

/**
 * Resolves with the ms from `since` until the server closes an upgraded socket: its WebSocket close frame (when
 * nothing else precedes it) or the TCP close, whichever comes first.
 */
export function serverClosedAfter(socket: net.Socket, since: number, timeoutMs = 5000): Promise<number> {
  if (socket.destroyed) return Promise.resolve(Date.now() - since)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no close from the server within ${timeoutMs} ms`)), timeoutMs)
    const onData = (chunk: Buffer) => {
      if (chunk[0] === 0x88) done(null)
    }
    const onClose = () => done(null)
    function done(err: Error | null) {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('close', onClose)
      if (err) reject(err)
      else resolve(Date.now() - since)
    }
    socket.on('data', onData)
    socket.once('close', onClose)
  })
}
