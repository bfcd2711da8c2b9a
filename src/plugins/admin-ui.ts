// Serves the admin UI (web/: plain HTML, ES modules and CSS, no build step) at /admin/.
// The UI only calls /api/* with the admin token it is given at sign-in; serving the files needs no token.
import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import type {} from '@fastify/swagger' // `schema.hide`: these routes stay out of the OpenAPI document

export const WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url))

// Scripts, styles and images from this origin only, and no inline script: even if client-controlled text ever
// reached the DOM as markup, the browser would refuse to run it.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

async function adminUi(app: FastifyInstance): Promise<void> {
  // The browser asks for /favicon.ico on pages that name no icon (/docs, /metrics): answer it instead of a 404.
  app.get('/favicon.ico', { schema: { hide: true } }, (_req, reply) => {
    return reply.redirect('/admin/favicon.svg', 301)
  })

  app.get('/admin', { schema: { hide: true } }, (req, reply) => {
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : ''
    return reply.redirect(`/admin/${query}`, 302)
  })

  // An encapsulated scope, so that the headers below apply to the UI's files only.
  await app.register(async (scope) => {
    scope.addHook('onSend', async (_req, reply, payload) => {
      reply.header('content-security-policy', CONTENT_SECURITY_POLICY)
      reply.header('x-content-type-options', 'nosniff')
      reply.header('referrer-policy', 'no-referrer')
      // The UI is small and changes with the server: always revalidate (ETag / Last-Modified make that cheap).
      reply.header('cache-control', 'no-cache')
      return payload
    })
    await scope.register(fastifyStatic, {
      root: WEB_ROOT,
      prefix: '/admin/',
      decorateReply: false,
      dotfiles: 'ignore',
      cacheControl: false,
      schemaHide: true,
    })
  })
}

export default fp(adminUi, { name: 'admin-ui', fastify: '5.x' })
