// /api/failures: the failure log over REST (list, one record, stats) and as Server-Sent Events (stream).
// Thin handlers over app.failureLog; a viewer token reads them all (the stream also takes it as `?token=`).
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { ServerResponse } from 'node:http'
import Type from 'typebox'
import {
  DateTime, FailureCounts, FailureLogStats, FailurePage, FailureRecord, LatencyHistogram, LatencyWhatIf,
} from '../failures/schema.ts'
import { FAILURE_REASONS } from '../contracts/failure.ts'
import { TRANSPORTS } from '../contracts/connection.ts'
import type { FailureLog, FoldedUpdate } from '../failures/store.ts'
import { DAY_MS } from '../failures/time.ts'
import { TooManyStreamsError } from '../errors.ts'
import { InvalidInputError, NotFoundError } from '../contracts/errors.ts'

/** `?profile=NAME`: records of connections under that timeout profile; `?profile=-`: under none (the global values). */
const ProfileFilter = Type.Optional(Type.String({
  minLength: 1, maxLength: 64, description: 'the timeout profile the connection ran under; `-` = none (the global values)',
}))
const profileOf = (filter: string | undefined): string | null | undefined => (filter === '-' ? null : filter)

const NodeFilter = Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'the node it happened on (cluster mode)' }))

const ListQuery = Type.Object(
  {
    reason: Type.Optional(Type.Enum(FAILURE_REASONS, { description: 'only this reason' })),
    clientId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'client id prefix' })),
    remoteAddress: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'exact remote address' })),
    transport: Type.Optional(Type.Enum(TRANSPORTS, { description: 'ws, wss, tcp or tls' })),
    profile: ProfileFilter,
    node: NodeFilter,
    since: Type.Optional(DateTime('occurred at or after')),
    until: Type.Optional(DateTime('occurred at or before')),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'cursor: `nextCursor` of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  },
  { additionalProperties: false },
)

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) })

const StatsQuery = Type.Object(
  {
    since: Type.Optional(DateTime('window start (default: 24 h before `until`)')),
    until: Type.Optional(DateTime('window end (default: now)')),
    bucketSec: Type.Optional(Type.Integer({
      minimum: 60, maximum: 86400, multipleOf: 60,
      description: 'time bucket, whole minutes (default: chosen for at most about 100 buckets)',
    })),
    thresholdMs: Type.Optional(Type.Number({ minimum: 0, maximum: 600000, description: 'what-if threshold (default: the current connectTimeoutMs)' })),
  },
  { additionalProperties: false },
)

const FailureStats = Type.Object({
  ...FailureCounts.properties,
  connectTimeoutMs: Type.Integer({ description: 'in force now' }),
  latency: LatencyHistogram,
  whatIf: LatencyWhatIf,
  log: FailureLogStats,
})

const StreamQuery = Type.Object(
  {
    token: Type.Optional(Type.String({ description: 'the admin token, for EventSource (which cannot send headers)' })),
    lastEventId: Type.Optional(Type.Integer({ minimum: 0, description: 'replay records after this id (as the Last-Event-ID header)' })),
    reason: Type.Optional(Type.Enum(FAILURE_REASONS)),
    clientId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'client id prefix' })),
    remoteAddress: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    transport: Type.Optional(Type.Enum(TRANSPORTS)),
    profile: ProfileFilter,
    node: NodeFilter,
  },
  { additionalProperties: false },
)

const BUCKET_SIZES_SEC = [60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400]
const MAX_BUCKETS = 2000

const MAX_STREAMS = 64
/** Events are skipped (and the skip announced) for a client whose socket has this much unsent. */
const MAX_STREAM_BUFFER = 1 << 20
const REPLAY_LIMIT = 500

export interface FailureRoutesOptions {
  /** ms between SSE heartbeat comments (default 15000) */
  heartbeatMs?: number
}

const parseTime = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined
  const t = Date.parse(v)
  if (Number.isNaN(t)) throw new InvalidInputError([{ field: `querystring.${name}`, rule: 'format date-time', message: 'is not a date-time' }])
  return t
}

export default async function failureRoutes(app: FastifyInstance, opts: FailureRoutesOptions = {}) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>()
  const log: FailureLog = app.failureLog
  const heartbeatMs = opts.heartbeatMs ?? 15_000
  app.addHook('onSend', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
  })

  r.get('/api/failures', {
    config: { role: 'viewer' },
    schema: {
      tags: ['failures'],
      summary: 'Connection failures, newest first, filtered, cursor-paged',
      querystring: ListQuery,
      response: { 200: FailurePage },
    },
  }, async (request) => {
    const q = request.query
    return log.list({
      reason: q.reason,
      clientId: q.clientId,
      remoteAddress: q.remoteAddress,
      transport: q.transport,
      profile: profileOf(q.profile),
      node: q.node,
      since: parseTime('since', q.since),
      until: parseTime('until', q.until),
      before: q.before,
      limit: q.limit,
    })
  })

  r.get('/api/failures/stats', {
    config: { role: 'viewer' },
    schema: {
      tags: ['failures'],
      summary: 'Failures per time bucket and reason; connect-latency histogram of successful connections',
      querystring: StatsQuery,
      response: { 200: FailureStats },
    },
  }, async (request) => {
    const q = request.query
    const until = parseTime('until', q.until) ?? Date.now()
    const since = parseTime('since', q.since) ?? until - DAY_MS
    if (since >= until) {
      throw new InvalidInputError([{ field: 'querystring.since', rule: 'before until', message: 'must be before until' }])
    }
    const span = until - since
    const bucketSec = q.bucketSec ?? BUCKET_SIZES_SEC.find((s) => span / (s * 1000) <= 100) ?? 86400
    if (span / (bucketSec * 1000) > MAX_BUCKETS) {
      throw new InvalidInputError([{
        field: 'querystring.bucketSec',
        rule: `at most ${MAX_BUCKETS} buckets`,
        message: `gives more than ${MAX_BUCKETS} buckets for this window; use a larger bucket or a shorter window`,
      }])
    }
    const connectTimeoutMs = app.settingsStore.current().values.connectTimeoutMs
    return {
      ...log.counts({ since, until, bucketMs: bucketSec * 1000 }),
      connectTimeoutMs,
      ...log.latency({ since, until }, q.thresholdMs ?? connectTimeoutMs),
      log: log.stats(),
    }
  })

  // Server-Sent Events. EventSource cannot send headers: `?token=` is accepted here (and only here) when there is no
  // Authorization header. A fetch() reader sending the header works as well.
  const streams = new Set<ServerResponse>()
  r.get('/api/failures/stream', {
    config: { role: 'viewer', tokenInQuery: true },
    schema: {
      tags: ['failures'],
      summary: 'Live failures as Server-Sent Events (`event: failure`, `event: folded`; `: heartbeat` comments)',
      description: 'Each `failure` event carries one record as JSON with `id:` set to its id; on reconnect, the ' +
        '`Last-Event-ID` header (or `lastEventId`) replays what was missed (up to 500). `folded` events say that ' +
        'a written flood summary now stands for more failures: `{ id, foldedCount, lastFoldedAt }`. `dropped` ' +
        'events say how many were skipped because this client read too slowly.',
      querystring: StreamQuery,
      produces: ['text/event-stream'],
    },
  }, async (request, reply) => {
    if (streams.size >= MAX_STREAMS) throw new TooManyStreamsError(MAX_STREAMS)
    const q = request.query
    const header = request.headers['last-event-id']
    const lastId = q.lastEventId ?? (typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : undefined)
    const matches = (rec: FailureRecord) =>
      (q.reason === undefined || rec.reason === q.reason) &&
      (q.clientId === undefined || (rec.clientId ?? '').startsWith(q.clientId)) &&
      (q.remoteAddress === undefined || rec.remoteAddress === q.remoteAddress) &&
      (q.transport === undefined || rec.transport === q.transport) &&
      (q.profile === undefined || rec.profile === profileOf(q.profile)) &&
      (q.node === undefined || rec.node === q.node)
    openStream(reply, lastId, matches)
  })

  function openStream(reply: FastifyReply, lastId: number | undefined, matches: (r: FailureRecord) => boolean) {
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    let skipped = 0
    // every write goes through here (records, folds, heartbeats): a failing socket is logged, never thrown
    const send = (chunk: string) => {
      try {
        if (res.destroyed || res.writableEnded) return
        if (res.writableLength > MAX_STREAM_BUFFER) {
          skipped++
          return
        }
        if (skipped > 0) {
          res.write(`event: dropped\ndata: {"count":${skipped}}\n\n`)
          skipped = 0
        }
        res.write(chunk)
      } catch (err) {
        app.log.warn({ err }, 'failure stream write failed')
      }
    }
    // JSON.stringify escapes CR and LF, so one record is always one `data:` line
    const onRecord = (rec: FailureRecord) => {
      if (matches(rec)) send(`id: ${rec.id}\nevent: failure\ndata: ${JSON.stringify(rec)}\n\n`)
    }
    const onFolded = (u: FoldedUpdate) => send(`event: folded\ndata: ${JSON.stringify(u)}\n\n`)

    res.write(`retry: 3000\n: connected ${new Date().toISOString()}\n\n`)
    if (lastId !== undefined) {
      try {
        for (const rec of log.after(lastId, REPLAY_LIMIT)) onRecord(rec)
      } catch (err) {
        app.log.warn({ err }, 'failure stream replay failed')
      }
    }
    log.on('record', onRecord)
    log.on('folded', onFolded)
    const heartbeat = setInterval(() => send(`: heartbeat ${new Date().toISOString()}\n\n`), heartbeatMs)
    streams.add(res)
    res.once('close', () => {
      clearInterval(heartbeat)
      log.off('record', onRecord)
      log.off('folded', onFolded)
      streams.delete(res)
    })
  }

  // Open streams would hold the HTTP server open: end them before it closes.
  app.addHook('preClose', async () => {
    for (const res of streams) res.end()
  })

  r.get('/api/failures/:id', {
    config: { role: 'viewer' },
    schema: {
      tags: ['failures'],
      summary: 'One connection failure',
      params: IdParams,
      response: { 200: FailureRecord },
    },
  }, async (request) => {
    const rec = log.get(request.params.id)
    if (!rec) throw new NotFoundError(`there is no failure record ${request.params.id} (it may have been pruned)`)
    return rec
  })
}
