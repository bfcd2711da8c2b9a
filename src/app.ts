// buildApp(): the whole product as one Fastify instance, plugins registered in a visible order.
// server.ts calls listen(); tests build the app on :memory: and a free port.
import Fastify, { type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { DEFAULT_CONFIG, type BootConfig } from './config.ts'
import { errorHandler } from './errors.ts'
import { USERNAME_MAX_CHARS } from './access/users.ts'
import tls, { loadCertificates } from './plugins/tls.ts'
import database from './plugins/database.ts'
import settings from './plugins/settings.ts'
import acl from './plugins/acl.ts'
import access from './plugins/access.ts'
import auth from './plugins/auth.ts'
import audit from './plugins/audit.ts'
import failures from './plugins/failures.ts'
import controlPlane from './plugins/control-plane.ts'
import cluster from './plugins/cluster.ts'
import mqttState from './plugins/state.ts'
import broker from './plugins/broker.ts'
import websocket from './plugins/websocket/index.ts'
import tcp from './plugins/tcp.ts'
import alerts from './plugins/alerts.ts'
import metrics from './plugins/metrics.ts'
import swagger from './plugins/swagger.ts'
import readiness from './plugins/readiness.ts'
import rateLimits from './plugins/rate-limits.ts'
import backup from './plugins/backup.ts'
import healthRoutes from './routes/health.ts'
import settingsRoutes from './routes/settings.ts'
import suggestionRoutes from './routes/suggestions.ts'
import failuresRoutes from './routes/failures.ts'
import connectionsRoutes from './routes/connections.ts'
import nodeRoutes from './routes/nodes.ts'
import aclRoutes from './routes/acl.ts'
import mqttUsersRoutes from './routes/mqtt-users.ts'
import retainedRoutes from './routes/retained.ts'
import sessionsRoutes from './routes/sessions.ts'
import adminTokenRoutes from './routes/admin-tokens.ts'
import auditRoutes from './routes/audit.ts'
import backupRoutes from './routes/backup.ts'
import alertRoutes from './routes/alerts.ts'
import adminUi from './plugins/admin-ui.ts'

export interface AppOptions {
  config?: Partial<BootConfig>
  /** pino options, `false` for silence (tests), or `true` for defaults */
  logger?: FastifyServerOptions['logger']
  /** log lines for a person at a terminal (pino-pretty) instead of JSON; used when `logger` is not given */
  prettyLogs?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    config: BootConfig
  }
}

/** Request log lines never carry a credential (the failure stream accepts `?token=` for EventSource). */
const redactUrl = (url: string) => url.replace(/([?&]token=)[^&]*/g, '$1[redacted]')
const serializers = {
  req: (req: FastifyRequest) => ({ method: req.method, url: redactUrl(req.url), remoteAddress: req.ip }),
}

async function loggerOptions(opts: AppOptions, config: BootConfig): Promise<FastifyServerOptions['logger']> {
  if (opts.logger === false) return false
  const base = typeof opts.logger === 'object' && opts.logger !== null ? opts.logger : {}
  // A terminal gets one readable line per entry, written synchronously (ordered with the start-up banner); pino-pretty
  // is loaded only then: JSON (the default, for log collectors) costs nothing more.
  const pretty = opts.prettyLogs === true && (opts.logger === undefined || opts.logger === true)
    ? (await import('pino-pretty')).default({ colorize: true, sync: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
    : undefined
  return {
    level: config.logLevel, ...(pretty && { stream: pretty }), ...base,
    serializers: { ...serializers, ...(base as { serializers?: object }).serializers },
  }
}

export async function buildApp(opts: AppOptions = {}) {
  const config: BootConfig = { ...DEFAULT_CONFIG, ...opts.config }
  // read before the server exists: an HTTPS server needs its certificate when it is created
  const certificates = loadCertificates(config)
  // The upgrade request of a WebSocket client is bounded by the connect timeout (see plugins/websocket/upgrade-guard.ts),
  // never by Node's 60 s default. Later requests on a kept-alive socket fall to Node's headersTimeout, which the
  // adapter sets from connectTimeoutMs (plus the most the guard gives back for the broker's own stalls); Node checks
  // it every connectionsCheckingInterval (default 30 s, here 1 s).
  const http = { connectionsCheckingInterval: 1000 }
  const app = Fastify({
    logger: await loggerOptions(opts, config),
    http,
    // with a certificate the one server speaks HTTPS and WSS (plugins/tls.ts swaps in renewed certificates)
    ...(certificates && { https: { ...http, key: certificates.key, cert: certificates.cert } }),
    // a path parameter as long as the longest MQTT username (/api/mqtt-users/:username), measured decoded in UTF-16 units
    routerOptions: { maxParamLength: 2 * USERNAME_MAX_CHARS },
    ajv: {
      customOptions: {
        // unknown keys must be refused with a 400, not silently stripped
        removeAdditional: false,
        // documentation keywords used by the settings schema
        keywords: ['x-scope'],
      },
    },
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.decorate('config', config)
  // one error shape for every route: 4xx messages shown, 5xx hidden unless written for an operator
  app.setErrorHandler(errorHandler)

  await app.register(tls, { certificates })
  // storage and state
  await app.register(database)
  await app.register(settings)
  await app.register(acl)
  await app.register(access)
  // the rate limits of /api/* and /metrics: their hook is added before the token check's, so it runs first
  await app.register(rateLimits)
  await app.register(auth)
  await app.register(audit)
  await app.register(failures)
  // cluster mode (DATABASE_URL): the settings, MQTT users, ACL rules and failure log in PostgreSQL, these stores its replica
  await app.register(controlPlane)
  // OpenAPI collects every route registered after it
  await app.register(swagger)
  // the broker and its transports; in cluster mode (NATS_URL) the other nodes are reached through NATS
  await app.register(cluster)
  await app.register(mqttState)
  await app.register(broker)
  await app.register(websocket)
  await app.register(tcp)
  // alert rules judged on the broker's failure events, webhooks off the failure path
  await app.register(alerts)
  await app.register(metrics)
  // readiness (GET /readyz) and online backups
  await app.register(readiness)
  await app.register(backup)
  // the admin surface
  await app.register(healthRoutes)
  await app.register(settingsRoutes)
  await app.register(suggestionRoutes)
  await app.register(failuresRoutes)
  await app.register(connectionsRoutes)
  await app.register(nodeRoutes)
  await app.register(aclRoutes)
  await app.register(mqttUsersRoutes)
  await app.register(retainedRoutes)
  await app.register(sessionsRoutes)
  await app.register(adminTokenRoutes)
  await app.register(auditRoutes)
  await app.register(backupRoutes)
  await app.register(alertRoutes)
  await app.register(adminUi)

  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
