// A webhook receiver for the alert tests: a real node:http server on 127.0.0.1 that records each request (headers
// and raw body) and answers with the status `answer(n)` gives the n-th request (1 first), or never ('hang').
// Closed (with its open connections) in the test's `t.after`.
import http from 'node:http'
import { createHmac } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { until } from '../helpers.ts'

export interface Received {
  headers: http.IncomingHttpHeaders
  body: string
  json: { state: string; rule: { name: string }; [key: string]: unknown }
}

export interface Receiver {
  url: string
  got: Received[]
  /** resolves once `n` requests passing `match` have arrived */
  waitFor(n: number, match?: (r: Received) => boolean, timeoutMs?: number): Promise<Received[]>
}

export async function receiver(t: { after(fn: () => unknown): void }, answer: (n: number) => number | 'hang' = () => 200): Promise<Receiver> {
  const got: Received[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      got.push({ headers: req.headers, body, json: JSON.parse(body) })
      const a = answer(got.length)
      if (a !== 'hang') res.writeHead(a, { 'content-type': 'text/plain' }).end(String(a))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    server.closeAllConnections()
    server.close()
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?k=v`,
    got,
    async waitFor(n, match = () => true, timeoutMs = 10_000) {
      await until(() => got.filter(match).length >= n, `${n} webhook requests`, timeoutMs)
      return got.filter(match)
    },
  }
}

/** What a receiver computes to check a delivery: `sha256=` and the hex HMAC-SHA256 of the raw body. */
export const expectedSignature = (secret: string, body: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
