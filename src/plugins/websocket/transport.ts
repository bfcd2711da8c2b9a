// The WebSocket and its socket as the broker core sees them (a Transport), and the words for why one closed.
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import type { Transport } from '../../contracts/connection.ts'
import { MAX_HEADER_CHARS } from '../../contracts/failure.ts'
import { closeWithGrace } from '../peer.ts'

const OPEN = 1

/** Client-controlled text kept in a failure record: at most `max` characters, an ellipsis marking a cut. */
export const clip = (s: string, max = MAX_HEADER_CHARS): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s)

/** The socket and its WebSocket as the core sees them. Uses only the public API of `ws` and `net.Socket`. */
export class WebSocketTransport implements Transport {
  readonly #ws: WebSocket
  readonly #socket: Socket

  constructor(ws: WebSocket, socket: Socket) {
    this.#ws = ws
    this.#socket = socket
  }

  write(data: Buffer): boolean {
    // ws frames an unmasked server message as [header, data] without copying `data`.
    this.#ws.send(data)
    // ws writes straight to the socket (no permessage-deflate), so the socket says when to wait for 'drain'.
    return !this.#socket.writableNeedDrain
  }

  end(): void {
    if (this.#ws.readyState !== OPEN) return
    const ws = this.#ws
    closeWithGrace(ws, () => ws.close(1000), () => ws.terminate())
  }

  destroy(): void {
    this.#ws.terminate()
  }

  pause(): void {
    this.#ws.pause()
  }

  resume(): void {
    this.#ws.resume()
  }
}

/** Why a WebSocket closed, in words, from its close code. */
export function closeDetail(code: number, reason: Buffer): string {
  if (code === 1006) return 'the connection closed without a WebSocket close frame (code 1006)'
  const why = reason.length > 0 ? `: ${clip(reason.toString('utf8'), 123)}` : ''
  return `the peer closed the WebSocket with code ${code}${why}`
}
