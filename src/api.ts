// What every admin API route module shares: requests checked by TypeBox as sent (no coercion of bodies) failing with
// the one INVALID_INPUT body that names each field, answers never cached, the error responses each route documents in
// OpenAPI, and the role each route declares: `config: { role: 'viewer' | 'operator' | 'admin' | 'public' }`. The auth
// plugin (src/plugins/auth.ts) checks the token against it in one onRequest hook, before a body is even parsed (it
// may hold a password); an /api/ route that declares none is refused to all but admin tokens, and a test fails on it.
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify'
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { Value } from 'typebox/value'
import { fieldErrorsFromSchema, InvalidInputError, type FieldError } from './contracts/errors.ts'
import { ErrorBody } from './errors.ts'
import type { RouteRole } from './contracts/roles.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** who may call the route: 'public' (no token), or the least role its token needs */
    role?: RouteRole
    /** the token may also come as `?token=` (only the failure stream: EventSource cannot send headers) */
    tokenInQuery?: boolean
  }
}

/** TypeBox validation; `bodyField` maps a body path ('' for the root) to the name the caller knows. */
export function typeBoxValidatorCompiler(bodyField: (path: string) => string = (p) => p || '(body)'): FastifySchemaCompiler<TSchema> {
  return ({ schema, httpPart }) => {
    const check = Compile(schema)
    return (input) => {
      // only bodies are typed JSON; query strings and headers arrive as text
      const value = httpPart === 'body' ? input : Value.Convert(schema, input)
      if (check.Check(value)) return { value }
      return { error: new InvalidInputError(fieldErrorsFromSchema(check.Errors(value), httpPart === 'body' ? bodyField : (p) => p || String(httpPart))) }
    }
  }
}

/**
 * For a body that a store checks by its own rules (more than a schema says: a topic filter, an http(s) URL): every
 * bad field named at once, by the store's `problems`. Params and query are checked by TypeBox as usual.
 */
export function storeCheckedBody(problems: (input: unknown) => FieldError[]): FastifySchemaCompiler<TSchema> {
  const typeBox = typeBoxValidatorCompiler()
  return (route) => {
    if (route.httpPart !== 'body') return typeBox(route)
    return (input) => {
      const fields = problems(input)
      return fields.length === 0 ? { value: input } : { error: new InvalidInputError(fields) }
    }
  }
}

/**
 * For a route with a wildcard (`/api/retained/*`): its `*` parameter is taken as the router decoded it (any text is
 * a name to look up), everything else is checked as usual. TypeBox's conversion cannot take a property named `*`
 * (it builds a RegExp of the name), yet the `params` schema stays, for OpenAPI.
 */
export function wildcardValidatorCompiler(): FastifySchemaCompiler<TSchema> {
  const typeBox = typeBoxValidatorCompiler()
  return (route) => (route.httpPart === 'params' ? (input) => ({ value: input }) : typeBox(route))
}

/** Make a route module's scope an admin API: TypeBox validation, no caching. Each route still declares its role. */
export function adminApi(app: FastifyInstance, bodyField?: (path: string) => string): void {
  app.setValidatorCompiler(typeBoxValidatorCompiler(bodyField))
  app.addHook('onSend', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
  })
}

/** `{ 400: ErrorBody, 404: ErrorBody, ... }` for a route's `response` schema. */
export const errorResponses = (...codes: number[]): Record<number, typeof ErrorBody> =>
  Object.fromEntries(codes.map((c) => [c, ErrorBody]))
