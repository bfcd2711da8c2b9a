// Rate limits of the admin surface (@fastify/rate-limit, counted in memory per client address, an IPv6 address by its
// /64 as the plugin does; the address is the TCP peer's, X-Forwarded-For is not trusted): an address whose admin
// authentications failed RATE_LIMIT_AUTH_FAILURES_PER_MIN times within a minute gets 429 on /api/* until that minute
// is over (guessing tokens stays slow), and no address may send more than RATE_LIMIT_API_PER_MIN requests a minute to
// /api/*, nor as many again to /metrics (a flood of API calls cannot take the event loop from the broker). Never
// limited: the MQTT WebSocket path, /healthz, /readyz, the admin UI's files and /docs. Answers over a limit are 429 with
// Retry-After (seconds) and the one JSON error body (code RATE_LIMITED).
import fp from 'fastify-plugin'
import createError from '@fastify/error'
import rateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest } from 'fastify'

/** The window of both limits. */
export const RATE_WINDOW_MS = 60_000

export const RateLimitedError = createError<'RATE_LIMITED', 429, [string]>('RATE_LIMITED', '%s', 429)

export default fp(
  async (app) => {
    const { rateLimitApiPerMin, rateLimitAuthFailuresPerMin, mqttPath } = app.config
    if (rateLimitApiPerMin === 0 && rateLimitAuthFailuresPerMin === 0) return

    // global: false: nothing is limited unless asked here; the limiters below are only called for /api/* and /metrics
    await app.register(rateLimit, {
      global: false,
      errorResponseBuilder: (_request, context) => new RateLimitedError(
        `too many requests from this address (over ${context.max} a minute): retry in ${context.after}`),
    })

    const limited = (url: string) => url.startsWith('/api/') && !url.startsWith(mqttPath)
    const isMetrics = (url: string) => url === '/metrics' || url.startsWith('/metrics?')

    // Requests: the plugin's own onRequest handler (it sets x-ratelimit-* and Retry-After, and throws 429 over the limit).
    type Limit = (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    // (its handler is an async function of (request, reply), typed as a hook with `this` and `done`)
    const perMinute = (scope: string): Limit => rateLimitApiPerMin > 0
      ? app.rateLimit({ max: rateLimitApiPerMin, timeWindow: RATE_WINDOW_MS, keyGenerator: (r) => `${scope}|${normalizeIP(r.ip)}` }) as unknown as Limit
      : async () => {}
    const apiLimit = perMinute('api')
    const metricsLimit = perMinute('metrics')

    // Failed authentications: counted when a 401 leaves, read (not counted) when a request arrives.
    const authFailures = rateLimitAuthFailuresPerMin > 0
      ? app.createRateLimit({ max: rateLimitAuthFailuresPerMin, timeWindow: RATE_WINDOW_MS, keyGenerator: (r) => `auth|${normalizeIP(r.ip)}` })
      : null
    const refuseFailedAddress = async (request: FastifyRequest, reply: FastifyReply) => {
      if (authFailures === null) return
      const seen = await authFailures(request, { increment: false })
      if (seen.isAllowed || seen.remaining > 0) return
      reply.header('retry-after', seen.ttlInSeconds)
      throw new RateLimitedError(
        `too many failed authentications from this address (${seen.max} a minute): retry in ${seen.ttlInSeconds} s`)
    }

    // A root hook, so it runs before each route module's own token check (adminApi's onRequest).
    app.addHook('onRequest', async (request, reply) => {
      const url = request.url
      if (limited(url)) {
        await refuseFailedAddress(request, reply)
        await apiLimit(request, reply)
      } else if (isMetrics(url)) {
        await metricsLimit(request, reply)
      }
    })
    if (authFailures !== null) {
      app.addHook('onResponse', async (request, reply) => {
        if (reply.statusCode === 401 && limited(request.url)) await authFailures(request)
      })
    }
    app.log.info({ rateLimitApiPerMin, rateLimitAuthFailuresPerMin },
      `admin API rate limits: ${rateLimitApiPerMin || 'no limit of'} requests and ${rateLimitAuthFailuresPerMin || 'no limit of'} failed authentications per minute and address`)
  },
  { name: 'rate-limits', dependencies: [] },
)
