// A TCP front for the broker's WebSocket endpoint, for MQTT clients that speak only TCP (the Eclipse Paho
// interoperability suites): each TCP connection becomes one WebSocket (subprotocol `mqtt`), bytes are relayed both
// ways unchanged as binary frames, and either side closing closes the other. Loopback only.
import { createServer, type Server, type Socket } from 'node:net'
import { WebSocket } from 'ws'

export interface Bridge {
  port: number
  close(): Promise<void>
}

export async function startBridge(wsUrl: string, port = 0): Promise<Bridge> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((tcp) => {
    sockets.add(tcp)
    const ws = new WebSocket(wsUrl, 'mqtt')
    const early: Buffer[] = []
    tcp.on('data', (chunk) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(chunk, { binary: true })
      else early.push(chunk)
    })
    ws.on('open', () => {
      for (const chunk of early.splice(0)) ws.send(chunk, { binary: true })
    })
    ws.on('message', (data: Buffer) => tcp.write(data))
    // a side that ends lets the other flush what it was given (a DISCONNECT just before a close) and then end
    ws.on('close', () => tcp.end())
    ws.on('error', () => tcp.destroy())
    tcp.on('end', () => ws.close())
    tcp.on('close', () => {
      sockets.delete(tcp)
      if (ws.readyState !== WebSocket.CLOSED) ws.terminate()
    })
    tcp.on('error', () => tcp.destroy())
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const address = server.address()
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}
