// /api/sessions*: the MQTT sessions the broker holds, online and offline: which client has one, what it subscribed
// to, how much waits for it, when it expires, and ending one (its client, if connected, gets DISCONNECT 0x98).
// Thin handlers over app.broker: its SessionStore, clientConnection(), sessionExpiresAt() and deleteSession().
// Reading needs a viewer token, ending one an operator's (an audit entry with the session as it was).
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { adminApi, errorResponses, wildcardValidatorCompiler } from '../api.ts'
import { TRANSPORTS, type LiveConnection } from '../contracts/connection.ts'
import { NotFoundError } from '../contracts/errors.ts'
import type { Assert, Same } from '../contracts/same.ts'
import { NEVER_EXPIRES, type Session, type Subscription } from '../contracts/state.ts'
import { Nullable } from '../failures/schema.ts'
import type { Broker } from '../mqtt/broker.ts'
import { liveView } from '../mqtt/live.ts'

export const LIST_DEFAULT_LIMIT = 100
export const LIST_MAX_LIMIT = 1000
/** An MQTT client id is at most 65535 bytes of UTF-8, so never more characters than that. */
const CLIENT_ID_MAX_CHARS = 65535

// ---- schemas -----------------------------------------------------------------------------------------------------

const DateTime = Type.String({ format: 'date-time' })

const summaryFields = {
  clientId: Type.String(),
  online: Type.Boolean({ description: 'a connection holds the session now' }),
  expiryIntervalSec: Type.Integer({ description: `how long it outlives its connection: 0 = not at all, ${NEVER_EXPIRES} = never expires` }),
  disconnectedAt: Nullable(Type.String({ format: 'date-time', description: 'when its last connection ended; null while online' })),
  expiresAt: Nullable(Type.String({ format: 'date-time', description: 'when it ends unless its client comes back; null while online or when it never expires' })),
  subscriptions: Type.Integer(),
  queued: Type.Integer({ description: 'QoS 1/2 messages waiting to be sent' }),
  queuedBytes: Type.Integer({ description: 'their payload bytes (bounded by maxQueuedBytes)' }),
  inflight: Type.Integer({ description: 'QoS 1/2 messages sent and not yet acknowledged' }),
  willPending: Type.Boolean({ description: 'offline with a Will still to be published (after its delay)' }),
}

const SessionSummary = Type.Object(summaryFields)
type SessionSummary = Type.Static<typeof SessionSummary>

const SubscriptionView = Type.Object({
  filter: Type.String({ description: 'as the client sent it, `$share/group/` included' }),
  qos: Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)]),
  noLocal: Type.Boolean(),
  retainAsPublished: Type.Boolean(),
  retainHandling: Type.Integer({ minimum: 0, maximum: 2 }),
  subscriptionIds: Type.Array(Type.Integer()),
})
export type SubscriptionIsTheContract = Assert<Same<Type.Static<typeof SubscriptionView>, Omit<Subscription, 'clientId'>>>

const ConnectionSummary = Type.Object({
  id: Type.Integer(),
  transport: Type.Enum(TRANSPORTS),
  remoteAddress: Nullable(Type.String()),
  remotePort: Nullable(Type.Integer()),
  username: Nullable(Type.String()),
  protocolVersion: Type.Integer(),
  keepaliveSec: Type.Integer({ description: 'in force, seconds (0 = none)' }),
  connectedAt: DateTime,
  lastPacketAt: DateTime,
}, { description: 'the live connection (see GET /api/connections); null while offline' })
type ConnectionSummary = Type.Static<typeof ConnectionSummary>
const CONNECTION_KEYS = ['id', 'transport', 'remoteAddress', 'remotePort', 'username', 'protocolVersion', 'keepaliveSec', 'connectedAt', 'lastPacketAt'] as const
export type ConnectionIsTheContract = Assert<Same<ConnectionSummary, Pick<LiveConnection, (typeof CONNECTION_KEYS)[number]>>>

const SessionDetail = Type.Object({
  ...summaryFields,
  subscriptionList: Type.Array(SubscriptionView, { description: 'by filter' }),
  connection: Nullable(ConnectionSummary),
})

const SessionPage = Type.Object({
  items: Type.Array(SessionSummary),
  next: Nullable(Type.String({ description: 'pass as `after` for the next page; null on the last page' })),
  total: Type.Object({
    online: Type.Integer(),
    offline: Type.Integer(),
  }, { description: 'sessions whose client id starts with `clientId`, whatever `state`, `after` and `limit`' }),
})

const ListQuery = Type.Object({
  state: Type.Optional(Type.Union([Type.Literal('online'), Type.Literal('offline'), Type.Literal('all')], { default: 'all' })),
  clientId: Type.Optional(Type.String({ maxLength: CLIENT_ID_MAX_CHARS, description: 'client id prefix' })),
  after: Type.Optional(Type.String({ maxLength: CLIENT_ID_MAX_CHARS, description: 'only client ids after this one (`next` of the previous page)' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIST_MAX_LIMIT, default: LIST_DEFAULT_LIMIT })),
}, { additionalProperties: false })

/**
 * A wildcard rather than `:clientId`: a client id may be up to 65535 bytes, far over the router's parameter limit,
 * and an operator must still be able to read and end its session. The URL is the same: `/api/sessions/<encoded id>`.
 */
const ClientIdParams = Type.Object({
  '*': Type.String({ description: 'the client id, URL-encoded: `/api/sessions/kitchen%2Fsensor%207`' }),
})

// ---- views -------------------------------------------------------------------------------------------------------

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString())

function summaryView(broker: Broker, s: Session, online: boolean): SessionSummary {
  return {
    clientId: s.clientId,
    online,
    expiryIntervalSec: s.expiryIntervalSec,
    disconnectedAt: iso(s.disconnectedAt),
    expiresAt: iso(broker.sessionExpiresAt(s)),
    subscriptions: s.subscriptions.size,
    queued: s.queue?.length ?? 0,
    queuedBytes: s.queuedBytes,
    inflight: s.inflight?.size ?? 0,
    willPending: s.will !== null && !online,
  }
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

function subscriptionView({ clientId: _, ...sub }: Subscription): Type.Static<typeof SubscriptionView> {
  return { ...sub, subscriptionIds: [...sub.subscriptionIds] }
}

function connectionView(live: LiveConnection): ConnectionSummary {
  return Object.fromEntries(CONNECTION_KEYS.map((k) => [k, live[k]])) as ConnectionSummary
}

const notFound = (clientId: string) => new NotFoundError(`there is no session of client id ${JSON.stringify(clientId)}`)

// ---- routes ------------------------------------------------------------------------------------------------------

export default async function sessionRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const broker = app.broker
  adminApi(app)
  const wildcard = wildcardValidatorCompiler()
  const tags = ['sessions']

  app.get('/api/sessions', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'MQTT sessions, online and offline, by client id',
      description:
        'Every session the broker holds: those of connected clients (clean ones too) and those kept for clients ' +
        'that went away (persistent sessions, until they expire). Paged in binary (case-sensitive) order of client ' +
        'id: pass `next` as `after` for the next page.',
      querystring: ListQuery,
      response: { 200: SessionPage, ...errorResponses(400, 401) },
    },
  }, async (request) => {
    const { state = 'all', clientId: prefix = '', after, limit = LIST_DEFAULT_LIMIT } = request.query
    const total = { online: 0, offline: 0 }
    const matching: SessionSummary[] = []
    for (const s of broker.sessions.all()) {
      if (!s.clientId.startsWith(prefix)) continue
      const online = broker.clientConnection(s.clientId) !== undefined
      if (online) total.online++
      else total.offline++
      if ((state === 'online' && !online) || (state === 'offline' && online)) continue
      if (after !== undefined && s.clientId <= after) continue
      matching.push(summaryView(broker, s, online))
    }
    matching.sort((a, b) => byText(a.clientId, b.clientId))
    const items = matching.slice(0, limit)
    return { items, next: matching.length > limit ? items[items.length - 1].clientId : null, total }
  })

  app.get('/api/sessions/*', {
    config: { role: 'viewer' },
    validatorCompiler: wildcard,
    schema: {
      tags,
      summary: 'One session: its subscriptions and, while online, its connection',
      description: 'The client id follows `/api/sessions/`, URL-encoded (a space as `%20`, `/` as `%2F`, `%` as `%25`).',
      params: ClientIdParams,
      response: { 200: SessionDetail, ...errorResponses(401, 404) },
    },
  }, async (request) => {
    const clientId = request.params['*']
    const session = broker.sessions.get(clientId)
    if (session === undefined) throw notFound(clientId)
    const connection = broker.clientConnection(clientId)
    return {
      ...summaryView(broker, session, connection !== undefined),
      subscriptionList: [...session.subscriptions.values()].sort((a, b) => byText(a.filter, b.filter)).map(subscriptionView),
      connection: connection === undefined ? null : connectionView(liveView(connection)),
    }
  })

  app.delete('/api/sessions/*', {
    config: { role: 'operator' },
    validatorCompiler: wildcard,
    schema: {
      tags,
      summary: 'End a session',
      description:
        'A connected client is disconnected (MQTT 5: DISCONNECT 0x98 Administrative action; its Will is not ' +
        'published) and the session is dropped with its subscriptions and queued messages: the client\'s next ' +
        'CONNECT starts a new one (session present = false).',
      params: ClientIdParams,
      response: { 204: Type.Null(), ...errorResponses(401, 404) },
    },
  }, async (request, reply) => {
    const clientId = request.params['*']
    const session = broker.sessions.get(clientId)
    const before = session === undefined ? null : summaryView(broker, session, broker.clientConnection(clientId) !== undefined)
    if (!broker.deleteSession(clientId)) throw notFound(clientId)
    request.audit({ action: 'session.delete', target: clientId, before })
    return reply.code(204).send(null)
  })
}
