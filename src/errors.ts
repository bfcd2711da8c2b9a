// Every error code the service answers with or stops on, in one place, and the one error handler that turns them
// into JSON. 4xx messages are shown to the caller; 5xx messages are shown only for errors made here on purpose
// (their words are written for an operator); any other 5xx is logged and answered with a bare "Internal Server Error".
import { STATUS_CODES } from 'node:http'
import createError from '@fastify/error'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import Type from 'typebox'

/** One broken rule of one input field: `{ field: 'connectTimeoutMs', rule: 'maximum 600000', message: 'must be <= 600000' }`. */
export const FieldError = Type.Object({ field: Type.String(), rule: Type.String(), message: Type.String() })
export type FieldError = Type.Static<typeof FieldError>

/** The JSON body of every error response (also its schema in the OpenAPI document). */
export const ErrorBody = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String(),
  error: Type.String(),
  message: Type.String(),
  fields: Type.Optional(Type.Array(FieldError)),
})
export type ErrorBody = Type.Static<typeof ErrorBody>

// ---- HTTP errors -------------------------------------------------------------------------------------------------

export const InvalidInputError = createError<'INVALID_INPUT', 400, [string]>('INVALID_INPUT', 'invalid input: %s', 400)
export const InvalidJsonError = createError<'INVALID_JSON', 400, []>('INVALID_JSON', 'the body is not valid JSON', 400)
export const UnsupportedMediaTypeError = createError<'UNSUPPORTED_MEDIA_TYPE', 415, []>('UNSUPPORTED_MEDIA_TYPE', 'send the body as JSON', 415)
export const UnauthorizedError = createError<'UNAUTHORIZED', 401, [string]>('UNAUTHORIZED', '%s', 401)
export const NotFoundError = createError<'NOT_FOUND', 404, [string]>('NOT_FOUND', '%s', 404)
export const VersionNotFoundError = createError<'VERSION_NOT_FOUND', 404, [number, number]>(
  'VERSION_NOT_FOUND', 'there is no settings version %d (the newest is %d)', 404,
)
export const StaleVersionError = createError<'STALE_VERSION', 412, [string, number]>(
  'STALE_VERSION', 'If-Match %s is stale: the settings are at version %d; reload them and retry', 412,
)
export const StoreUnavailableError = createError<'STORE_UNAVAILABLE', 503, [string, number, Cause?]>(
  'STORE_UNAVAILABLE', 'the settings database could not be written (%s); nothing was changed, the broker keeps running on version %d', 503,
)

/** The optional last argument of an error constructor: the error it wraps. */
type Cause = { cause: unknown }

// ---- start-up errors (server.ts prints the message alone, one line, no stack) ---------------------------------------

export const DbOpenError = createError<'DB_OPEN_FAILED', 500, [string, string, Cause?]>(
  'DB_OPEN_FAILED', 'cannot open the database at DB_PATH=%s: %s', 500,
)
export const DbNotADatabaseError = createError<'DB_NOT_A_DATABASE', 500, [string, Cause?]>(
  'DB_NOT_A_DATABASE', 'DB_PATH=%s is not an SQLite database (or is encrypted or damaged); move it away or set DB_PATH to another file', 500,
)
export const DbTooNewError = createError<'DB_TOO_NEW', 500, [string, number, number]>(
  'DB_TOO_NEW', 'the database at DB_PATH=%s has schema version %d, newer than this build knows (%d): it was written by a newer release; run that release or set DB_PATH to another file', 500,
)
export const DbMigrationError = createError<'DB_MIGRATION_FAILED', 500, [string, string, string, Cause?]>(
  'DB_MIGRATION_FAILED', 'migration %s failed on DB_PATH=%s: %s (nothing of it was applied)', 500,
)
export const SettingsCorruptError = createError<'SETTINGS_CORRUPT', 500, [number, string]>(
  'SETTINGS_CORRUPT', 'settings version %d stored in the database is invalid (%s); roll back with the API or fix the row', 500,
)
export const TooManyStreamsError = createError<'TOO_MANY_STREAMS', 503, [number]>(
  'TOO_MANY_STREAMS', 'already %d failure streams open; close one and retry', 503,
)

/** Codes made here whose 5xx message is meant to be read (not hidden). */
const SHOWN_5XX = new Set(['STORE_UNAVAILABLE', 'TOO_MANY_STREAMS'])

// ---- field errors ------------------------------------------------------------------------------------------------

/** An input error naming each broken field and rule. The message lists them too, for callers that show only it. */
export function invalidInput(fields: FieldError[]): FastifyError & { fields: FieldError[] } {
  const err = new InvalidInputError(fields.map((f) => `${f.field}: ${f.rule}`).join('; '))
  return Object.assign(err, { fields })
}

/** A validation error as Ajv and TypeBox both report it. */
export interface SchemaError {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
  message?: string
}

const ruleOf = (e: SchemaError): string => {
  const p = e.params
  switch (e.keyword) {
    case 'type': return p.type === 'null' ? 'null' : `type ${String(p.type)}`
    case 'minimum': case 'maximum': case 'exclusiveMinimum': case 'exclusiveMaximum':
    case 'minLength': case 'maxLength': case 'minProperties': case 'maxProperties': case 'minItems': case 'maxItems':
      return `${e.keyword} ${String(p.limit)}`
    case 'const': return `const ${JSON.stringify(p.allowedValue ?? p.const)}`
    case 'enum': return `one of ${JSON.stringify(p.allowedValues)}`
    case 'pattern': return `pattern ${String(p.pattern)}`
    case 'format': return `format ${String(p.format)}`
    default: return e.keyword
  }
}

/**
 * Field errors from Ajv or TypeBox errors: one entry per field and rule, named by its dotted path
 * (`values.connectTimeoutMs`, or `(body)` for the whole body). A union's branch errors fold into one rule,
 * e.g. `null or minimum 1`. `rename` maps a dotted path ('' for the root) to the name the caller knows.
 */
export function fieldErrorsFromSchema(
  errors: readonly SchemaError[],
  rename: (path: string) => string = (p) => p || '(body)',
): FieldError[] {
  const name = (pointer: string) =>
    rename(pointer.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')).join('.'))
  const join = (base: string, key: string) => (base === '' ? `/${key}` : `${base}/${key}`)
  const unions = new Set(errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.instancePath))
  const out: FieldError[] = []
  const seen = new Set<string>()
  const add = (f: FieldError) => {
    const key = `${f.field}\0${f.rule}`
    if (!seen.has(key)) {
      seen.add(key)
      out.push(f)
    }
  }
  for (const e of errors) {
    if (unions.has(e.instancePath)) {
      const branches = errors.filter((b) => b.instancePath === e.instancePath && b.keyword !== 'anyOf' && b.keyword !== 'oneOf')
      const rule = [...new Set(branches.map(ruleOf))].join(' or ') || 'one of the allowed forms'
      add({ field: name(e.instancePath), rule, message: `must be ${rule}` })
      continue
    }
    // TypeBox reports an extra key twice (a `false` sub-schema and `additionalProperties`); keep the latter
    if (e.keyword === 'boolean') continue
    if (e.keyword === 'additionalProperties') {
      const extra = e.params.additionalProperties ?? e.params.additionalProperty
      for (const key of Array.isArray(extra) ? extra : [extra]) {
        add({ field: name(join(e.instancePath, String(key))), rule: 'unknown key', message: 'is not a known key' })
      }
    } else if (e.keyword === 'required') {
      const missing = e.params.requiredProperties ?? e.params.missingProperty
      for (const key of Array.isArray(missing) ? missing : [missing]) {
        add({ field: name(join(e.instancePath, String(key))), rule: 'required', message: 'is required' })
      }
    } else {
      add({ field: name(e.instancePath), rule: ruleOf(e), message: e.message ?? ruleOf(e) })
    }
  }
  return out
}

// ---- the error handler -------------------------------------------------------------------------------------------

type HandledError = FastifyError & { fields?: FieldError[] }

/** The JSON answer for any error: field errors for bad input, shown messages for 4xx, hidden ones for unknown 5xx. */
export function toErrorBody(err: HandledError): ErrorBody {
  // Fastify's own (Ajv) schema validation of route schemas, with the fields named by our rules
  if (err.validation) {
    const fields = fieldErrorsFromSchema(err.validation as unknown as SchemaError[], (p) => {
      const context = err.validationContext ?? 'body'
      if (context === 'body') return p || '(body)'
      return p ? `${context}.${p}` : context
    })
    return toErrorBody(invalidInput(fields))
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY': // malformed JSON, or a forbidden __proto__ key
      return toErrorBody(Object.assign(new InvalidJsonError(), {
        fields: [{ field: '(body)', rule: 'valid JSON', message: 'is not valid JSON' }],
      }))
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return toErrorBody(invalidInput([{ field: '(body)', rule: 'required', message: 'the body is empty' }]))
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return toErrorBody(Object.assign(new UnsupportedMediaTypeError(), {
        fields: [{ field: 'Content-Type', rule: 'application/json', message: 'must be application/json' }],
      }))
  }
  const statusCode = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
  const shown = statusCode < 500 || SHOWN_5XX.has(err.code)
  const body: ErrorBody = {
    statusCode,
    code: shown ? (err.code ?? 'ERROR') : 'INTERNAL_ERROR',
    error: STATUS_CODES[statusCode] ?? 'Error',
    message: shown ? err.message : 'Internal Server Error',
  }
  if (shown && err.fields) body.fields = err.fields
  return body
}

/** The service's one error handler: `app.setErrorHandler(errorHandler)`. */
export function errorHandler(this: unknown, err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const body = toErrorBody(err)
  if (body.statusCode >= 500) request.log.error({ err }, `request failed: ${err.message}`)
  else request.log.info({ code: body.code, fields: body.fields }, `rejected: ${body.message}`)
  return reply.code(body.statusCode).type('application/json; charset=utf-8').send(body)
}
