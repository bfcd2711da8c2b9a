// GET /api/connections: the broker's live clients with the keepalive in force. A thin handler over app.broker; a
// viewer token reads it.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Nullable } from '../failures/schema.ts'
import { TRANSPORTS, type LiveConnection } from '../contracts/connection.ts'
import type { Assert, Same } from '../contracts/same.ts'

/** The live-connection view of src/contracts/connection.ts, checked against it below. */
const LiveConnectionSchema = Type.Object({
  id: Type.Integer(),
  transport: Type.Enum(TRANSPORTS, { description: 'ws, wss, tcp or tls' }),
  clientId: Type.String(),
  username: Nullable(Type.String()),
  remoteAddress: Nullable(Type.String()),
  remotePort: Nullable(Type.Integer()),
  userAgent: Nullable(Type.String()),
  protocolVersion: Type.Integer(),
  keepaliveSec: Type.Integer({ description: 'in force after server policy, seconds (0 = none)' }),
  requestedKeepaliveSec: Type.Integer({ description: 'what the client asked for' }),
  keepaliveTimeoutMs: Nullable(Type.Number({ description: 'silence after which the connection is dropped (null = never)' })),
  connectedAt: Type.String({ format: 'date-time' }),
  lastPacketAt: Type.String({ format: 'date-time' }),
  packetsReceived: Type.Integer(),
  packetsSent: Type.Integer(),
  subscriptions: Type.Integer(),
  aclDenied: Type.Object({
    publish: Type.Integer({ description: 'PUBLISHes refused' }),
    subscribe: Type.Integer({ description: 'SUBSCRIBE filters refused' }),
    deliver: Type.Integer({ description: 'messages not sent: a subscription a later rule forbids' }),
  }, { description: 'what the ACL refused this connection so far' }),
  profile: Nullable(Type.String({ description: 'the timeout profile it runs under (decided at CONNECT, again on each settings version); null = the global values' })),
})

export type SchemaIsTheContract = Assert<Same<Type.Static<typeof LiveConnectionSchema>, LiveConnection>>

const ConnectionsQuery = Type.Object(
  {
    clientId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'client id prefix' })),
    profile: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'only clients under this timeout profile; `-` = under none (the global values)' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 1000 })),
  },
  { additionalProperties: false },
)

const ConnectionsPage = Type.Object({
  items: Type.Array(LiveConnectionSchema),
  total: Type.Integer({ description: 'live clients matching, before the limit' }),
})

export default async function connectionRoutes(app: FastifyInstance) {
  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/connections', {
    config: { role: 'viewer' },
    schema: {
      tags: ['connections'],
      summary: 'Live clients: id, address, protocol, keepalive in force, connected since, last packet',
      querystring: ConnectionsQuery,
      response: { 200: ConnectionsPage },
    },
  }, async (request) => {
    const { clientId, profile, limit = 1000 } = request.query
    const wanted = profile === '-' ? null : profile
    const matching = app.broker.connections().filter((c) =>
      (clientId === undefined || c.clientId.startsWith(clientId)) && (wanted === undefined || c.profile === wanted))
    return { items: matching.slice(0, limit), total: matching.length }
  })
}
