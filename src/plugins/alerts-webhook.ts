// Webhook deliveries of alert events, off the failure path: a bounded queue (full: the oldest delivery is dropped and
// counted), a few deliveries at a time, each POSTed with an HMAC-SHA256 signature of its raw body when its rule has a
// secret, retried after a network error, a timeout or a 5xx with growing delays. Nothing here can block or throw into
// the broker: enqueue() only pushes onto an array.
import { createHmac } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import type { Logger } from '../contracts/logger.ts'

export interface Delivery {
  /** names the delivery in X-Broker-Delivery (the alert history id) */
  id: string
  ruleName: string
  url: string
  /** the raw JSON body, signed as is */
  body: string
  secret: string | null
}

export interface WebhookTuning {
  /** deliveries waiting; beyond it the oldest is dropped (default 1000) */
  queueMax: number
  /** deliveries in flight at once (default 4) */
  concurrency: number
  /** waits before each retry (default 1 s, 4 s, 16 s: four tries in all) */
  retryDelaysMs: number[]
  /** one try's time limit (default 10 s) */
  timeoutMs: number
}

export const DEFAULT_WEBHOOK_TUNING: Readonly<WebhookTuning> = Object.freeze({
  queueMax: 1000, concurrency: 4, retryDelaysMs: [1000, 4000, 16000], timeoutMs: 10_000,
})

export interface WebhookStats {
  ok: number
  failed: number
  dropped: number
  retries: number
}

/** The header carrying the signature: `sha256=<hex HMAC-SHA256 of the raw body with the rule's secret>`. */
export const SIGNATURE_HEADER = 'x-broker-signature'

export const signature = (secret: string, body: string): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`

/** A URL as logged: without user info or query (either may carry a credential). */
const shown = (url: string): string => {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname}`
  } catch {
    return '(bad URL)'
  }
}

type Outcome = { ok: true } | { ok: false; retry: boolean; why: string }

export class WebhookSender {
  readonly stats: WebhookStats = { ok: 0, failed: 0, dropped: 0, retries: 0 }
  #tuning: WebhookTuning = { ...DEFAULT_WEBHOOK_TUNING }
  readonly #queue: Delivery[] = []
  #inFlight = 0
  #closed = false
  readonly #requests = new Set<http.ClientRequest>()
  readonly #waits = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>()
  readonly #log: Pick<Logger, 'warn' | 'info'>

  constructor(log: Pick<Logger, 'warn' | 'info'>) {
    this.#log = log
  }

  tune(t: Partial<WebhookTuning>): void {
    this.#tuning = { ...this.#tuning, ...t }
    while (this.#queue.length > this.#tuning.queueMax) this.#drop()
    this.#pump()
  }

  get queued(): number {
    return this.#queue.length
  }

  get inFlight(): number {
    return this.#inFlight
  }

  enqueue(d: Delivery): void {
    if (this.#closed) return
    if (this.#queue.length >= this.#tuning.queueMax) this.#drop()
    this.#queue.push(d)
    this.#pump()
  }

  /** Stops: what waits is dropped, what is in flight aborted. */
  close(): void {
    this.#closed = true
    this.#queue.length = 0
    for (const req of this.#requests) req.destroy()
    for (const w of this.#waits) {
      clearTimeout(w.timer)
      w.resolve()
    }
  }

  #drop(): void {
    const d = this.#queue.shift()
    if (d === undefined) return
    this.stats.dropped++
    if (this.stats.dropped === 1 || this.stats.dropped % 100 === 0) {
      this.#log.warn({ rule: d.ruleName, dropped: this.stats.dropped, queueMax: this.#tuning.queueMax },
        `alert webhook queue full (${this.#tuning.queueMax}): the oldest delivery was dropped (${this.stats.dropped} so far)`)
    }
  }

  #pump(): void {
    while (!this.#closed && this.#inFlight < this.#tuning.concurrency && this.#queue.length > 0) {
      const d = this.#queue.shift()!
      this.#inFlight++
      void this.#deliver(d).finally(() => {
        this.#inFlight--
        this.#pump()
      })
    }
  }

  async #deliver(d: Delivery): Promise<void> {
    const delays = this.#tuning.retryDelaysMs
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.#post(d)
      if (this.#closed) return
      if (outcome.ok) {
        this.stats.ok++
        return
      }
      if (!outcome.retry || attempt >= delays.length) {
        this.stats.failed++
        this.#log.warn({ rule: d.ruleName, url: shown(d.url), delivery: d.id, tries: attempt + 1 },
          `alert webhook delivery failed after ${attempt + 1} tries: ${outcome.why}`)
        return
      }
      this.stats.retries++
      await this.#wait(delays[attempt])
      if (this.#closed) return
    }
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const w = {
        timer: setTimeout(() => {
          this.#waits.delete(w)
          resolve()
        }, ms),
        resolve,
      }
      this.#waits.add(w)
    })
  }

  #post(d: Delivery): Promise<Outcome> {
    return new Promise((resolve) => {
      let url: URL
      try {
        url = new URL(d.url)
      } catch {
        resolve({ ok: false, retry: false, why: 'bad URL' })
        return
      }
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(d.body)),
        'user-agent': 'wsmqtt-broker-alerts',
        'x-broker-event': 'alert',
        'x-broker-delivery': d.id,
      }
      if (d.secret !== null) headers[SIGNATURE_HEADER] = signature(d.secret, d.body)
      const lib = url.protocol === 'https:' ? https : http
      const req = lib.request(url, { method: 'POST', headers, agent: false, timeout: this.#tuning.timeoutMs })
      this.#requests.add(req)
      let settled = false
      const done = (o: Outcome) => {
        if (settled) return
        settled = true
        this.#requests.delete(req)
        resolve(o)
      }
      req.on('timeout', () => {
        req.destroy()
        done({ ok: false, retry: true, why: `no answer within ${this.#tuning.timeoutMs} ms` })
      })
      req.on('error', (err) => done({ ok: false, retry: true, why: err.message }))
      req.on('close', () => done({ ok: false, retry: true, why: 'the connection closed' }))
      req.on('response', (res) => {
        res.resume()
        const status = res.statusCode ?? 0
        if (status >= 200 && status < 300) done({ ok: true })
        else done({ ok: false, retry: status >= 500, why: `HTTP ${status}` })
      })
      req.end(d.body)
    })
  }
}
