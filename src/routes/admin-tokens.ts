// /api/admin-tokens*: the admin tokens (list, create, revoke; admin only) and GET /api/whoami (any token: its name and
// role, which the admin UI reads to show only what the role may do). Thin handlers over app.adminTokens
// (src/audit/tokens.ts). A token's secret is answered once, by the POST that makes it; no other answer, log line or
// audit entry holds it.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { adminApi, errorResponses } from '../api.ts'
import { AdminToken, RoleSchema } from '../audit/schema.ts'
import { TOKEN_NAME_MAX_CHARS, type AdminToken as AdminTokenType } from '../audit/tokens.ts'

const TokenName = Type.String({
  minLength: 1, maxLength: TOKEN_NAME_MAX_CHARS,
  // printable, no control characters, not blank
  pattern: '^[^\\u0000-\\u001F\\u007F]*[^\\s\\u0000-\\u001F\\u007F][^\\u0000-\\u001F\\u007F]*$',
  description: `1..${TOKEN_NAME_MAX_CHARS} characters, no control characters; unique, never reused (it names the actor in the audit trail)`,
})

const CreateBody = Type.Object({ name: TokenName, role: RoleSchema }, { additionalProperties: false })

const Created = Type.Object({
  ...AdminToken.properties,
  token: Type.String({ description: 'the secret: send it as `Authorization: Bearer <token>`. Shown only in this answer; only its SHA-256 is stored' }),
})

const IdParams = Type.Object({ id: Type.Integer({ minimum: 0 }) })

const Whoami = Type.Object({ name: Type.String(), role: RoleSchema })

/** A token in the audit trail: who it is and what it may do (never its secret). */
const auditView = (t: AdminTokenType) => ({ id: t.id, name: t.name, role: t.role })

export default async function adminTokenRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const tokens = app.adminTokens
  adminApi(app)
  const tags = ['admin-tokens']

  app.get('/api/whoami', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'The token this request was made with: its name and role',
      response: { 200: Whoami },
    },
  }, async (request) => ({ name: request.actor, role: request.role! }))

  app.get('/api/admin-tokens', {
    config: { role: 'admin' },
    schema: {
      tags,
      summary: 'Admin tokens in force: the boot token first, then by id',
      description: 'Never a secret or a hash. `lastUsedAt` is kept in memory and written to the database at most once a minute.',
      response: { 200: Type.Object({ items: Type.Array(AdminToken) }) },
    },
  }, async () => ({ items: tokens.list() }))

  app.post('/api/admin-tokens', {
    config: { role: 'admin' },
    schema: {
      tags,
      summary: 'Make a token',
      description: 'The answer holds the secret as `token`, this once: copy it now. It works at once.',
      body: CreateBody,
      response: { 201: Created, ...errorResponses(400, 409) },
    },
  }, async (request, reply) => {
    const { token, secret } = tokens.create(request.body)
    request.audit({ action: 'token.create', target: token.name, after: auditView(token) })
    return reply.code(201).header('location', `/api/admin-tokens/${token.id}`).send({ ...token, token: secret })
  })

  app.delete('/api/admin-tokens/:id', {
    config: { role: 'admin' },
    schema: {
      tags,
      summary: 'Revoke a token',
      description: 'Refused from the next request on, no restart. The boot token (id 0) cannot be revoked (409): restart with another ADMIN_TOKEN to replace it.',
      params: IdParams,
      response: { 204: Type.Null(), ...errorResponses(400, 404, 409) },
    },
  }, async (request, reply) => {
    const before = tokens.revoke(request.params.id)
    request.audit({ action: 'token.revoke', target: before.name, before: auditView(before) })
    return reply.code(204).send(null)
  })
}
