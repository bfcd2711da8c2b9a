// GET /api/audit: the audit trail, newest first, filtered (actor, action prefix, target, time) and cursor-paged like
// GET /api/failures. A thin handler over app.auditLog (src/audit/log.ts). It names the people holding tokens and
// where they connect from, so it needs an operator token: those who make changes see each other's.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { adminApi, errorResponses } from '../api.ts'
import { AuditPage } from '../audit/schema.ts'
import { AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT } from '../audit/log.ts'
import { InvalidInputError } from '../contracts/errors.ts'

const DateTime = (description: string) => Type.String({ format: 'date-time', description })

const ListQuery = Type.Object(
  {
    actor: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "the token's name, exactly" })),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'a prefix: `settings`, `mqtt-user.`, `acl.delete`' })),
    target: Type.Optional(Type.String({ minLength: 1, maxLength: 65535, description: 'exactly: a username, a rule id, a topic, a client id, a token name' })),
    since: Type.Optional(DateTime('at or after')),
    until: Type.Optional(DateTime('at or before')),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'cursor: `nextCursor` of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: AUDIT_MAX_LIMIT, default: AUDIT_DEFAULT_LIMIT })),
  },
  { additionalProperties: false },
)

const parseTime = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined
  const t = Date.parse(v)
  if (Number.isNaN(t)) throw new InvalidInputError([{ field: `querystring.${name}`, rule: 'format date-time', message: 'is not a date-time' }])
  return t
}

export default async function auditRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  adminApi(app)

  app.get('/api/audit', {
    config: { role: 'operator' },
    schema: {
      tags: ['audit'],
      summary: 'Who changed what through the API, newest first, filtered, cursor-paged',
      description:
        'One entry per change: settings (`settings.update`, `settings.replace`, `settings.rollback`; `after.version` is ' +
        'the version in the history), MQTT users (`mqtt-user.create|update|delete`), ACL rules (`acl.create|update|delete`), ' +
        'retained messages (`retained.delete`, `retained.delete-prefix`), sessions (`session.delete`) and admin tokens ' +
        '(`token.create`, `token.revoke`): the token\'s name, the time, the target, the thing before and after (never a ' +
        'password, token or hash) and the address the request came from. A refused change leaves no entry.',
      querystring: ListQuery,
      response: { 200: AuditPage, ...errorResponses(400) },
    },
  }, async (request) => {
    const q = request.query
    return app.auditLog.list({
      actor: q.actor,
      action: q.action,
      target: q.target,
      since: parseTime('since', q.since),
      until: parseTime('until', q.until),
      before: q.before,
      limit: q.limit,
    })
  })
}
