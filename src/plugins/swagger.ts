// OpenAPI document generated from the routes' TypeBox schemas, and Swagger UI at /docs.
// /api/* routes are documented as needing the bearer token; routes outside the API (the MQTT WebSocket, the admin
// UI's files) are left out.
import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'

export const DOCS_PREFIX = '/docs'

const DOCUMENTED = /^\/(api\/|healthz$|readyz$|metrics$)/

export default fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'MQTT-over-WebSocket broker: admin API',
          description:
            'Live timeout and keepalive settings (versioned, with history and rollback), the connection-failure log ' +
            'and live connections. Every /api/* route needs `Authorization: Bearer <admin token>` of a role at least the one ' +
            'the route names (viewer < operator < admin; see x-role on each operation).',
          version: '1',
        },
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', description: 'an admin token: ADMIN_TOKEN or the token logged on first start (role admin), or one made through /api/admin-tokens' },
          },
        },
        tags: [
          { name: 'settings', description: 'hot settings, versioned in SQLite' },
          { name: 'failures', description: 'the connection-failure log' },
          { name: 'connections', description: 'live clients' },
          { name: 'mqtt-users', description: 'the usernames and passwords MQTT clients log in with' },
          { name: 'health', description: 'liveness, readiness and metrics' },
        ],
      },
      transform: ({ schema, url }) => {
        const documented = { ...(schema ?? {}) } as Record<string, unknown>
        if (!DOCUMENTED.test(url)) documented.hide = true
        else if (url.startsWith('/api/') && documented.security === undefined) documented.security = [{ bearerAuth: [] }]
        return { schema: documented as typeof schema, url }
      },
    })
    await app.register(swaggerUi, { routePrefix: DOCS_PREFIX })
  },
  { name: 'swagger', dependencies: [] },
)
