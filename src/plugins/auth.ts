// Decorates `requireAdmin`: the bearer-token check of every /api/* route, which also sets `request.actor`
// (the token's name, recorded as the author of settings versions).
//
// ADMIN_TOKEN sets the token named "admin". Without it, a random token is generated on first start; only its
// SHA-256 is stored (table admin_tokens) and the token itself is logged once. Later starts use the stored hash.
// Every other row of admin_tokens is a further named token.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { UnauthorizedError } from '../errors.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest/preHandler hook: 401 unless `Authorization: Bearer <token>` names a known token */
    requireAdmin: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
  interface FastifyRequest {
    /** the name of the admin token that authenticated this request ('' before requireAdmin ran) */
    actor: string
  }
}

export const ADMIN_TOKEN_NAME = 'admin'

export const sha256 = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest()

/** 32 random bytes, base64url: 43 characters. */
export const generateToken = (): string => randomBytes(32).toString('base64url')

interface KnownToken {
  name: string
  hash: Buffer
}

const BEARER = /^Bearer +(\S+) *$/i

export default fp(
  async (app) => {
    const stored = app.db.prepare<[], { name: string; sha256_hex: string }>('SELECT name, sha256_hex FROM admin_tokens').all()
    const tokens: KnownToken[] = stored
      .filter((t) => app.config.adminToken === null || t.name !== ADMIN_TOKEN_NAME)
      .map((t) => ({ name: t.name, hash: Buffer.from(t.sha256_hex, 'hex') }))

    if (app.config.adminToken !== null) {
      tokens.push({ name: ADMIN_TOKEN_NAME, hash: sha256(app.config.adminToken) })
      app.log.info('admin API: token "admin" taken from ADMIN_TOKEN')
    } else if (stored.some((t) => t.name === ADMIN_TOKEN_NAME)) {
      app.log.info('admin API: using the token generated on first start (only its hash is stored); set ADMIN_TOKEN to choose your own')
    } else {
      const token = generateToken()
      const hash = sha256(token)
      app.db.prepare('INSERT INTO admin_tokens (name, sha256_hex, created_at) VALUES (?, ?, ?)')
        .run(ADMIN_TOKEN_NAME, hash.toString('hex'), new Date().toISOString())
      tokens.push({ name: ADMIN_TOKEN_NAME, hash })
      const lines = [
        `admin API token generated (shown only this once, only its hash is stored): ${token}`,
        'to use your own token instead, start the server with ADMIN_TOKEN=<at least 8 characters>',
      ]
      // The operator must see it even when the log level hides warnings.
      if (['trace', 'debug', 'info', 'warn'].includes(app.log.level)) for (const line of lines) app.log.warn(line)
      else process.stderr.write(lines.map((l) => `${l}\n`).join(''))
    }

    app.decorateRequest('actor', '')
    app.decorate('requireAdmin', async (request: FastifyRequest, reply: FastifyReply) => {
      const match = BEARER.exec(request.headers.authorization ?? '')
      if (match === null) {
        reply.header('www-authenticate', 'Bearer realm="admin"')
        throw new UnauthorizedError('missing bearer token: send Authorization: Bearer <ADMIN_TOKEN>')
      }
      // Equal-length hashes compared in constant time, against every token (no early exit).
      const presented = sha256(match[1])
      let actor: string | null = null
      for (const t of tokens) {
        if (timingSafeEqual(presented, t.hash) && actor === null) actor = t.name
      }
      if (actor === null) {
        reply.header('www-authenticate', 'Bearer realm="admin", error="invalid_token"')
        throw new UnauthorizedError('the bearer token is not valid')
      }
      request.actor = actor
    })
  },
  { name: 'auth', dependencies: ['database'] },
)
