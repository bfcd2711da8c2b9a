// GET /api/failures/stream: Server-Sent Events of live failure records, with the token in the header or `?token=`,
// replay after Last-Event-ID, listener cleanup when the client goes, and a server close that ends open streams.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import failureRoutes from '../../src/routes/failures.ts'
import { createFailureLog } from '../../src/failures/store.ts'
import { failureDb } from '../failures/fixtures.ts'
import type { FailureRecord } from '../../src/failures/schema.ts'
import { RawClient, startServer, type TestServer } from '../helpers.ts'

interface SseEvent {
  event: string
  id: string | null
  data: string
}

/** A text/event-stream read with fetch: events and comments as they arrive. */
class SseReader {
  readonly events: SseEvent[] = []
  readonly comments: string[] = []
  status = 0
  contentType: string | null = null
  private readonly abort = new AbortController()
  private waiters: (() => void)[] = []
  ended = false

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const r = new SseReader()
    const res = await fetch(url, { headers, signal: r.abort.signal })
    r.status = res.status
    r.contentType = res.headers.get('content-type')
    if (res.ok && res.body) void r.pump(res.body)
    else r.ended = true
    return r
  }

  private async pump(body: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder()
    let buf = ''
    try {
      for await (const chunk of body) {
        buf += decoder.decode(chunk, { stream: true })
        let end: number
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end)
          buf = buf.slice(end + 2)
          const ev: SseEvent = { event: 'message', id: null, data: '' }
          let isEvent = false
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) this.comments.push(line.slice(1).trim())
            else if (line.startsWith('event: ')) [ev.event, isEvent] = [line.slice(7), true]
            else if (line.startsWith('id: ')) ev.id = line.slice(4)
            else if (line.startsWith('data: ')) [ev.data, isEvent] = [line.slice(6), true]
          }
          if (isEvent) this.events.push(ev)
          this.wake()
        }
      }
    } catch {
      // aborted
    }
    this.ended = true
    this.wake()
  }

  private wake() {
    const w = this.waiters
    this.waiters = []
    for (const fn of w) fn()
  }

  /** Resolves once `ready()` holds, re-checked on every event, comment or end. */
  async until<T>(ready: () => T | undefined | false, timeoutMs = 3000): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const v = ready()
      if (v) return v
      if (this.ended) throw new Error('the stream ended')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out; events: ${JSON.stringify(this.events)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  failures(): FailureRecord[] {
    return this.events.filter((e) => e.event === 'failure').map((e) => JSON.parse(e.data) as FailureRecord)
  }

  close() {
    this.abort.abort()
  }
}

/** A connect timeout for real: a WebSocket that never sends its CONNECT. */
async function silentClient(server: TestServer, ua: string) {
  const c = await RawClient.open(server.wsUrl, { headers: { 'user-agent': ua } })
  await c.closed()
}

/** Polls a cheap condition (no event to wait on) every 10 ms, up to timeoutMs. */
async function eventually(cond: () => boolean, what: string, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

test('the failure stream delivers live records, replays after Last-Event-ID, and cleans up', async (t) => {
  const server = await startServer({ settings: { connectTimeoutMs: 200 } })
  t.after(() => server.close())
  const streamUrl = `${server.url}/api/failures/stream`
  const log = server.app.failureLog
  const baseListeners = log.listenerCount('record')

  // no token: 401 before any stream opens
  const refused = await SseReader.open(streamUrl)
  assert.equal(refused.status, 401)
  assert.equal((await SseReader.open(`${streamUrl}?token=not-the-token`)).status, 401)

  // the header, as fetch-based readers send it
  const byHeader = await SseReader.open(streamUrl, server.auth)
  t.after(() => byHeader.close())
  assert.equal(byHeader.status, 200)
  assert.match(byHeader.contentType ?? '', /^text\/event-stream/)
  await byHeader.until(() => byHeader.comments.some((c) => c.startsWith('connected')))

  // ?token=, as EventSource must; with a filter that the next failure does not match
  const byQuery = await SseReader.open(`${streamUrl}?token=${encodeURIComponent(server.token)}`)
  t.after(() => byQuery.close())
  assert.equal(byQuery.status, 200)
  const filtered = await SseReader.open(`${streamUrl}?reason=taken_over`, server.auth)
  t.after(() => filtered.close())
  await eventually(() => log.listenerCount('record') === baseListeners + 3, 'three streams listening')

  // a real client times out; every stream gets the record within a flush interval, without anyone calling flush()
  await silentClient(server, 'stream-test/1')
  const [live] = await byHeader.until(() => byHeader.failures().length > 0 && byHeader.failures())
  assert.equal(live.reason, 'connect_timeout')
  assert.equal(live.userAgent, 'stream-test/1')
  assert.equal(live.bytesReceived, 0)
  assert.equal(byHeader.events.find((e) => e.event === 'failure')?.id, String(live.id))
  assert.deepEqual(await byQuery.until(() => byQuery.failures()[0]), live)
  assert.deepEqual((await server.app.inject({ url: `/api/failures/${live.id}`, headers: server.auth })).json(), live)

  // the filtered stream saw nothing: a second record goes to it only if it matches
  await silentClient(server, 'stream-test/2')
  await byHeader.until(() => byHeader.failures().length === 2)
  assert.equal(filtered.failures().length, 0)

  // reconnecting with Last-Event-ID replays what came after it
  const replay = await SseReader.open(streamUrl, { ...server.auth, 'last-event-id': String(live.id - 1) })
  t.after(() => replay.close())
  const replayed = await replay.until(() => replay.failures().length >= 2 && replay.failures())
  assert.deepEqual(replayed.map((r) => r.id), [live.id, live.id + 1])
  assert.deepEqual(replayed[0], live)

  // a client that goes away takes its listeners with it
  byQuery.close()
  filtered.close()
  replay.close()
  await eventually(() => log.listenerCount('record') === baseListeners + 1, 'listeners removed on close')
  assert.equal(log.listenerCount('folded'), baseListeners + 1)

  // closing the server ends the streams still open (and does not hang on them)
  await server.close()
  await byHeader.until(() => byHeader.ended)
})

test('the stream sends heartbeat comments at the configured interval', async (t) => {
  // the route plugin alone, on a real failure log, with a short heartbeat
  const file = failureDb()
  const log = createFailureLog(file.db, { limits: () => ({ maxRows: 1000, maxAgeDays: 1 }), defaultLimits: { maxRows: 1000, maxAgeDays: 1 } })
  const app = Fastify()
  app.decorate('failureLog', log)
  app.decorate('requireAdmin', async () => {})
  await app.register(failureRoutes, { heartbeatMs: 30 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(async () => {
    await app.close()
    log.close()
    file.close()
  })
  const { port } = app.server.address() as AddressInfo
  const stream = await SseReader.open(`http://127.0.0.1:${port}/api/failures/stream`)
  t.after(() => stream.close())
  await stream.until(() => stream.comments.filter((c) => c.startsWith('heartbeat')).length >= 2)
  assert.equal(stream.events.length, 0, 'heartbeats are comments, not events')
})
