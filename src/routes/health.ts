// GET /healthz: liveness, no token. Cheap and never touching the database, so a locked or full disk does not make a
// load balancer kill a broker that is still serving clients.
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'

const startedAt = Date.now()

export default async function healthRoutes(app: FastifyInstance) {
  app.get('/healthz', {
    config: { role: 'public' },
    schema: {
      tags: ['health'],
      summary: 'Liveness',
      response: { 200: Type.Object({ status: Type.Literal('ok'), uptimeSec: Type.Number() }) },
    },
  }, async () => ({ status: 'ok' as const, uptimeSec: Math.round((Date.now() - startedAt) / 1000) }))
}
