// Who may call what. Decorates `adminTokens` (the token store, src/audit/tokens.ts) and enforces every route's role
// with one onRequest hook: a route declares `config: { role }` ('public', 'viewer', 'operator' or 'admin'; see
// src/api.ts), and the onRoute hook below puts the check first among the route's own hooks (so the root hooks, the
// rate limits and the WebSocket adapter's refusals, still come before it). No token or an unknown one gets 401; a
// token whose role is below the route's gets 403. A route under /api/ that declares no role is refused to every token
// but an admin's (never open), warned about at start-up and listed in `app.routeRoles` as undeclared, which a test
// fails on. Routes outside /api/ that declare nothing (the UI's files, /docs, the MQTT endpoint) are public. The role
// is shown in the OpenAPI document: `x-role` and a line of each operation's description. Sets `request.actor` (the
// token's name: the author of settings versions and audit entries) and `request.role`.
//
// The boot token is role admin. ADMIN_TOKEN sets it. Without it, a random token is generated on first start; only
// its SHA-256 is stored (table admin_tokens, name "admin") and the token itself is logged once. Later starts use the
// stored hash. Further tokens are made and revoked through /api/admin-tokens (src/routes/admin-tokens.ts).
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { ErrorBody, ForbiddenError, UnauthorizedError } from '../errors.ts'
import { roleAllows, type Role, type RouteRole } from '../contracts/roles.ts'
import {
  createAdminTokenStore, generateToken, sha256, storedBootToken, storeBootToken, BOOT_TOKEN_NAME, type AdminTokenStore,
  type BootToken, type TokenHolder,
} from '../audit/tokens.ts'

export { generateToken, sha256 }
export const ADMIN_TOKEN_NAME = BOOT_TOKEN_NAME

/** One route as the auth plugin saw it registered, with the role it enforces. */
export interface RouteRoleEntry {
  method: string
  url: string
  role: RouteRole
  /** false: the route declares no role (under /api/: refused to all but admin tokens; elsewhere: public) */
  declared: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    adminTokens: AdminTokenStore
    /** every route registered after the auth plugin, with its role (tests walk it) */
    routeRoles: readonly RouteRoleEntry[]
    /** A hook for a route guarded by hand: 401 without a valid token, 403 unless it is an admin's. Prefer `config.role`. */
    requireAdmin: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** the token this start generated (null: ADMIN_TOKEN or a stored hash), for the start-up banner (server.ts clears it) */
    generatedAdminToken: string | null
  }
  interface FastifyRequest {
    /** the name of the admin token that authenticated this request ('' on a public route) */
    actor: string
    /** its role (null on a public route) */
    role: Role | null
  }
}

const BEARER = /^Bearer +(\S+) *$/i

const isApi = (url: string | undefined) => url !== undefined && url.startsWith('/api/')

/** The role a route enforces: the one it declares; else admin under /api/ (never open), public elsewhere. */
const roleOf = (url: string | undefined, declared: RouteRole | undefined): RouteRole =>
  declared ?? (isApi(url) ? 'admin' : 'public')

const WHO_PASSES: Record<RouteRole, string> = {
  public: 'no token needed',
  viewer: 'any admin token (viewer, operator or admin)',
  operator: 'a token of role operator or admin',
  admin: 'a token of role admin',
}

/** The boot token: ADMIN_TOKEN, or the stored generated one, or a new one (stored as a hash, logged once). */
function bootToken(app: FastifyInstance): BootToken {
  const stored = storedBootToken(app.db)
  if (app.config.adminToken !== null) {
    app.log.info('admin API: token "admin" taken from ADMIN_TOKEN')
    return { hash: sha256(app.config.adminToken), createdAt: stored?.createdAt ?? new Date().toISOString(), rowId: null }
  }
  if (stored !== null) {
    app.log.info('admin API: using the token generated on first start (only its hash is stored); set ADMIN_TOKEN to choose your own')
    return { hash: stored.hash, createdAt: stored.createdAt, rowId: stored.id }
  }
  const token = generateToken()
  app.generatedAdminToken = token
  const hash = sha256(token)
  const createdAt = new Date().toISOString()
  const rowId = storeBootToken(app.db, hash, createdAt)
  const lines = [
    `admin API token generated (shown only this once, only its hash is stored): ${token}`,
    'to use your own token instead, start the server with ADMIN_TOKEN=<at least 8 characters>',
  ]
  // The operator must see it even when the log level hides warnings.
  if (['trace', 'debug', 'info', 'warn'].includes(app.log.level)) for (const line of lines) app.log.warn(line)
  else process.stderr.write(lines.map((l) => `${l}\n`).join(''))
  return { hash, createdAt, rowId }
}

export default fp(
  async (app) => {
    app.decorate('generatedAdminToken', null as string | null)
    const tokens = createAdminTokenStore(app.db, { boot: bootToken(app), logger: app.log.child({ component: 'admin-tokens' }) })
    app.decorate('adminTokens', tokens)
    // the last uses are written before the database closes (its onClose hook was added first, so it runs last)
    app.addHook('onClose', async () => tokens.close())

    /** The holder of the request's token; 401 when there is none or it is not known (revoked ones included). */
    function authenticate(request: FastifyRequest, reply: FastifyReply): TokenHolder {
      let presented = BEARER.exec(request.headers.authorization ?? '')?.[1]
      if (presented === undefined && request.headers.authorization === undefined && request.routeOptions.config?.tokenInQuery) {
        const token = (request.query as { token?: unknown } | undefined)?.token
        if (typeof token === 'string' && token !== '') presented = token
      }
      if (presented === undefined) {
        reply.header('www-authenticate', 'Bearer realm="admin"')
        throw new UnauthorizedError('missing bearer token: send Authorization: Bearer <token>')
      }
      const holder = tokens.authenticate(presented)
      if (holder === null) {
        reply.header('www-authenticate', 'Bearer realm="admin", error="invalid_token"')
        throw new UnauthorizedError('the bearer token is not valid (unknown or revoked)')
      }
      request.actor = holder.name
      request.role = holder.role
      return holder
    }

    function authorize(request: FastifyRequest, reply: FastifyReply, need: RouteRole) {
      if (need === 'public') return
      const holder = authenticate(request, reply)
      if (!roleAllows(holder.role, need)) {
        throw new ForbiddenError(`this needs ${WHO_PASSES[need]}; the token "${holder.name}" is a ${holder.role}`)
      }
    }

    /** The one check: the route's own first onRequest hook (after the root hooks: rate limits, the WebSocket adapter). */
    async function checkRole(request: FastifyRequest, reply: FastifyReply) {
      authorize(request, reply, request.routeOptions.config.role ?? 'admin')
    }

    app.decorateRequest('actor', '')
    app.decorateRequest('role', null)

    const routes: RouteRoleEntry[] = []
    app.decorate('routeRoles', routes)
    app.addHook('onRoute', (route: RouteOptions) => {
      const declared = route.config?.role
      const role = roleOf(route.url, declared)
      for (const method of [route.method].flat()) routes.push({ method, url: route.url, role, declared: declared !== undefined })
      if (declared === undefined && isApi(route.url)) {
        app.log.warn({ url: route.url }, `route ${[route.method].flat().join(',')} ${route.url} declares no role: only admin tokens may call it (set config.role)`)
      }
      route.config = { ...route.config, role }
      if (role === 'public') return
      route.onRequest = [checkRole, ...[route.onRequest ?? []].flat()]
      if (route.schema?.hide === true) return
      // the OpenAPI document shows it: an extension, and a line of the operation's description
      const schema = (route.schema ?? {}) as Record<string, unknown>
      // and the refusals it can answer with, in the one error body
      const refusals = role === 'viewer' ? [401] : [401, 403]
      const response = schema.response === undefined ? undefined
        : { ...Object.fromEntries(refusals.map((code) => [code, ErrorBody])), ...(schema.response as object) }
      const line = `**Role:** \`${role}\`: ${WHO_PASSES[role]}.`
      route.schema = {
        ...schema,
        'x-role': role,
        ...(response && { response }),
        description: typeof schema.description === 'string' && schema.description !== '' ? `${schema.description}\n\n${line}` : line,
      } as RouteOptions['schema']
    })
    // A route this plugin did not see registered (one added before it) has no role in its config: under /api/ it is
    // treated as needing admin, never as open.
    app.addHook('onRequest', async (request, reply) => {
      if (request.routeOptions.config?.role === undefined && isApi(request.routeOptions.url)) authorize(request, reply, 'admin')
    })
    app.decorate('requireAdmin', async (request: FastifyRequest, reply: FastifyReply) => authorize(request, reply, 'admin'))
  },
  { name: 'auth', dependencies: ['database'] },
)
