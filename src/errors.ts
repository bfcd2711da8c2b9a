// The HTTP face of every error: the errors of the HTTP layer itself, the status of each domain error
// (src/contracts/errors.ts, raised by the stores and the database layer), and the one error handler that turns them
// into JSON. 4xx messages are shown to the caller; 5xx messages are shown only for errors made here on purpose
// (their words are written for an operator); any other 5xx is logged and answered with a bare "Internal Server Error".
import { STATUS_CODES } from 'node:http'
import createError from '@fastify/error'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import Type from 'typebox'
import { DomainError, InvalidInputError, fieldErrorsFromSchema, type FieldError as FieldErrorContract, type SchemaError } from './contracts/errors.ts'
import type { Assert, Same } from './contracts/same.ts'

/** One broken rule of one input field: `{ field: 'connectTimeoutMs', rule: 'maximum 600000', message: 'must be <= 600000' }`. */
export const FieldError = Type.Object({ field: Type.String(), rule: Type.String(), message: Type.String() })
export type FieldError = Type.Static<typeof FieldError>
export type FieldErrorIsTheContract = Assert<Same<FieldError, FieldErrorContract>>

/** The JSON body of every error response (also its schema in the OpenAPI document). */
export const ErrorBody = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String(),
  error: Type.String(),
  message: Type.String(),
  fields: Type.Optional(Type.Array(FieldError)),
})
export type ErrorBody = Type.Static<typeof ErrorBody>

// ---- errors of the HTTP layer itself ---------------------------------------------------------------------------------

export const InvalidJsonError = createError<'INVALID_JSON', 400, []>('INVALID_JSON', 'the body is not valid JSON', 400)
export const UnsupportedMediaTypeError = createError<'UNSUPPORTED_MEDIA_TYPE', 415, []>('UNSUPPORTED_MEDIA_TYPE', 'send the body as JSON', 415)
export const UnauthorizedError = createError<'UNAUTHORIZED', 401, [string]>('UNAUTHORIZED', '%s', 401)
/** A valid token whose role is below what the route needs. */
export const ForbiddenError = createError<'FORBIDDEN', 403, [string]>('FORBIDDEN', '%s', 403)
export const TooManyStreamsError = createError<'TOO_MANY_STREAMS', 503, [number]>(
  'TOO_MANY_STREAMS', 'already %d failure streams open; close one and retry', 503,
)

// ---- the HTTP status of each domain error (src/contracts/errors.ts) --------------------------------------------------

const STATUS_OF_DOMAIN_CODE: Readonly<Record<string, number>> = {
  INVALID_INPUT: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  VERSION_NOT_FOUND: 404,
  STALE_VERSION: 412,
  STORE_UNAVAILABLE: 503,
}

/** Codes whose 5xx message is meant to be read (not hidden). */
const SHOWN_5XX = new Set(['STORE_UNAVAILABLE', 'TOO_MANY_STREAMS'])

/** The HTTP status an error is answered with: a domain error's by its code (500 when unmapped), else its own. */
export function httpStatusOf(err: { statusCode?: number; code?: string }): number {
  if (err instanceof DomainError) return STATUS_OF_DOMAIN_CODE[err.code] ?? 500
  return err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
}

// ---- the error handler -------------------------------------------------------------------------------------------

type HandledError = (FastifyError | DomainError) & { fields?: FieldError[]; validation?: unknown; validationContext?: string; statusCode?: number }

/** The JSON answer for any error: field errors for bad input, shown messages for 4xx, hidden ones for unknown 5xx. */
export function toErrorBody(err: HandledError): ErrorBody {
  // Fastify's own (Ajv) schema validation of route schemas, with the fields named by our rules
  if (err.validation) {
    const fields = fieldErrorsFromSchema(err.validation as unknown as SchemaError[], (p) => {
      const context = err.validationContext ?? 'body'
      if (context === 'body') return p || '(body)'
      return p ? `${context}.${p}` : context
    })
    return toErrorBody(new InvalidInputError(fields))
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY': // malformed JSON, or a forbidden __proto__ key
      return toErrorBody(Object.assign(new InvalidJsonError(), {
        fields: [{ field: '(body)', rule: 'valid JSON', message: 'is not valid JSON' }],
      }))
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return toErrorBody(new InvalidInputError([{ field: '(body)', rule: 'required', message: 'the body is empty' }]))
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return toErrorBody(Object.assign(new UnsupportedMediaTypeError(), {
        fields: [{ field: 'Content-Type', rule: 'application/json', message: 'must be application/json' }],
      }))
  }
  const statusCode = httpStatusOf(err)
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
export function errorHandler(this: unknown, err: FastifyError | DomainError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const body = toErrorBody(err)
  if (body.statusCode >= 500) request.log.error({ err }, `request failed: ${err.message}`)
  else request.log.info({ code: body.code, fields: body.fields }, `rejected: ${body.message}`)
  return reply.code(body.statusCode).type('application/json; charset=utf-8').send(body)
}
