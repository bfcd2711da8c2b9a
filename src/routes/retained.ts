// /api/retained*: the retained messages, for the operator whose device "didn't get its config": listed by topic
// prefix (paged, by topic), one read with its payload (as text when it is printable UTF-8, always as base64), one
// deleted, or every one under a prefix. Thin handlers over app.broker.retained, the RetainedStore the core matches
// subscriptions against; a durable store writes the deletions behind. An expired message (v5 Message Expiry) is no
// longer delivered, so it is not shown either. Reading needs a viewer token, deleting an operator's (one audit entry
// per delete: the topic or the prefix).
import { isUtf8 } from 'node:buffer'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { adminApi, errorResponses, wildcardValidatorCompiler } from '../api.ts'
import { InvalidInputError, NotFoundError } from '../contracts/errors.ts'
import type { Message } from '../contracts/state.ts'
import { Nullable } from '../failures/schema.ts'

export const LIST_DEFAULT_LIMIT = 100
export const LIST_MAX_LIMIT = 1000
/** The longest text preview, in payload bytes (cut at a character boundary). */
export const PREVIEW_BYTES = 256
/** An MQTT topic is at most 65535 bytes of UTF-8, so never more characters than that. */
const TOPIC_MAX_CHARS = 65535

// ---- schemas -----------------------------------------------------------------------------------------------------

const Qos = Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)])

const RetainedProperties = Type.Object({
  payloadFormatIndicator: Nullable(Type.Boolean({ description: 'v5: true = the publisher says the payload is UTF-8 text; null = not sent' })),
  contentType: Nullable(Type.String()),
  responseTopic: Nullable(Type.String()),
  correlationData: Nullable(Type.String({ description: 'base64' })),
  userProperties: Nullable(Type.Record(Type.String(), Type.Union([Type.String(), Type.Array(Type.String())]))),
}, { description: 'the MQTT 5 properties kept with the message (null = not sent)' })

const itemFields = {
  topic: Type.String(),
  qos: Qos,
  payloadBytes: Type.Integer({ description: 'the whole payload' }),
  payloadPreview: Nullable(Type.String({
    description: `the payload as text, its first ${PREVIEW_BYTES} bytes at most, when the whole payload is valid UTF-8 ` +
      'and that text has no control characters but tab, newline and carriage return; null otherwise (binary)',
  })),
  properties: RetainedProperties,
  expiresAt: Nullable(Type.String({ format: 'date-time', description: 'v5 Message Expiry; null = never' })),
}

const RetainedItem = Type.Object(itemFields)
const RetainedMessage = Type.Object({ ...itemFields, payloadBase64: Type.String({ description: 'the whole payload' }) })
type RetainedItem = Type.Static<typeof RetainedItem>
type RetainedMessage = Type.Static<typeof RetainedMessage>

const RetainedPage = Type.Object({
  items: Type.Array(RetainedItem),
  next: Nullable(Type.String({ description: 'pass as `after` for the next page; null on the last page' })),
  stored: Type.Object({
    messages: Type.Integer(),
    bytes: Type.Integer({ description: 'payload and topic bytes (what maxRetainedBytes bounds)' }),
  }, { description: 'everything the store holds, whatever the prefix' }),
})

const Prefix = Type.String({ maxLength: TOPIC_MAX_CHARS, description: 'a plain string prefix of the topic (no wildcards): `sensors/` or `sensors/ki`' })

const ListQuery = Type.Object({
  prefix: Type.Optional(Prefix),
  after: Type.Optional(Type.String({ maxLength: TOPIC_MAX_CHARS, description: 'only topics after this one (`next` of the previous page)' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIST_MAX_LIMIT, default: LIST_DEFAULT_LIMIT })),
}, { additionalProperties: false })

const DeleteQuery = Type.Object({
  prefix: Prefix,
  all: Type.Optional(Type.Boolean({ description: 'with an empty `prefix`: yes, delete every retained message' })),
}, { additionalProperties: false })

const TopicParams = Type.Object({
  '*': Type.String({ description: 'the topic, URL-encoded (`/` may stay as it is): `/api/retained/devices%2F7%2Fconfig`' }),
})

// ---- views -------------------------------------------------------------------------------------------------------

const iso = (ms: number): string | null => (ms === 0 ? null : new Date(ms).toISOString())

/** Anything but tab, newline and carriage return below U+0020, DEL, and the C1 controls: not shown as text. */
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The payload's first PREVIEW_BYTES as text, when it is all valid UTF-8 and printable; null for anything binary. */
export function payloadPreview(payload: Buffer): string | null {
  if (!isUtf8(payload)) return null
  let end = Math.min(payload.length, PREVIEW_BYTES)
  // never cut a character: back up to the lead byte of the one that does not fit
  if (end < payload.length) while (end > 0 && (payload[end] & 0xc0) === 0x80) end--
  const text = utf8.decode(payload.subarray(0, end))
  return CONTROL.test(text) ? null : text
}

function itemView(m: Message): RetainedItem {
  const p = m.properties
  return {
    topic: m.topic,
    qos: m.qos,
    payloadBytes: m.payload.length,
    payloadPreview: payloadPreview(m.payload),
    properties: {
      payloadFormatIndicator: p?.payloadFormatIndicator ?? null,
      contentType: p?.contentType ?? null,
      responseTopic: p?.responseTopic ?? null,
      correlationData: p?.correlationData === undefined ? null : p.correlationData.toString('base64'),
      userProperties: p?.userProperties ?? null,
    },
    expiresAt: iso(m.expiresAt),
  }
}

/** A deleted message in the audit trail: its topic, QoS and size, never its payload. */
const auditView = (m: Message) => ({ topic: m.topic, qos: m.qos, payloadBytes: m.payload.length, expiresAt: iso(m.expiresAt) })

const messageView = (m: Message): RetainedMessage => ({ ...itemView(m), payloadBase64: m.payload.toString('base64') })

const expired = (m: Message, now: number) => m.expiresAt !== 0 && m.expiresAt <= now

/** The topic of a wildcard route; an empty one is refused, naming the field. */
function topicOf(params: { '*': string }): string {
  const topic = params['*']
  if (topic === '') throw new InvalidInputError([{ field: 'topic', rule: 'minLength 1', message: 'is empty: name the topic after /api/retained/' }])
  return topic
}

const notFound = (topic: string) => new NotFoundError(`there is no retained message on topic ${JSON.stringify(topic)}`)

// ---- routes ------------------------------------------------------------------------------------------------------

export default async function retainedRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  adminApi(app)
  const wildcard = wildcardValidatorCompiler()
  const tags = ['retained']
  const retained = app.broker.retained

  app.get('/api/retained', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'Retained messages whose topic starts with a prefix, by topic',
      description:
        'Paged in binary (case-sensitive) order of topic: pass `next` as `after` for the next page. A page may hold ' +
        'fewer than `limit` items when some had expired. The broker\'s own `$SYS/` topics are not kept here.',
      querystring: ListQuery,
      response: { 200: RetainedPage, ...errorResponses(400, 401) },
    },
  }, async (request) => {
    const { prefix = '', after, limit = LIST_DEFAULT_LIMIT } = request.query
    const page = retained.list(prefix, after ?? null, limit)
    const now = Date.now()
    return {
      items: page.items.filter((m) => !expired(m, now)).map(itemView),
      next: page.next,
      stored: { messages: retained.size, bytes: retained.bytes },
    }
  })

  app.get('/api/retained/*', {
    config: { role: 'viewer' },
    validatorCompiler: wildcard,
    schema: {
      tags,
      summary: 'One retained message, with its whole payload',
      description: 'The topic follows `/api/retained/`, URL-encoded (a space as `%20`, `%` as `%25`, `+` as `%2B`).',
      params: TopicParams,
      response: { 200: RetainedMessage, ...errorResponses(400, 401, 404) },
    },
  }, async (request) => {
    const topic = topicOf(request.params)
    const m = retained.get(topic)
    if (m === undefined || expired(m, Date.now())) throw notFound(topic)
    return messageView(m)
  })

  app.delete('/api/retained/*', {
    config: { role: 'operator' },
    validatorCompiler: wildcard,
    schema: {
      tags,
      summary: 'Delete the retained message of one topic',
      description: 'New subscribers no longer get it; the subscribers it reached keep what they got.',
      params: TopicParams,
      response: { 204: Type.Null(), ...errorResponses(400, 401, 404) },
    },
  }, async (request, reply) => {
    const topic = topicOf(request.params)
    const before = retained.get(topic)
    if (!retained.delete(topic)) throw notFound(topic)
    // what it was, without its payload (device data, perhaps confidential): the trail says what went, not what it held
    request.audit({ action: 'retained.delete', target: topic, before: before === undefined ? null : auditView(before) })
    return reply.code(204).send(null)
  })

  app.delete('/api/retained', {
    config: { role: 'operator' },
    schema: {
      tags,
      summary: 'Delete every retained message whose topic starts with a prefix',
      description:
        '`prefix` is required and a plain string prefix (`devices/7/` deletes `devices/7/config`, not `devices/70/x`). ' +
        'An empty prefix is refused unless `all=true` is sent with it: then every retained message is deleted.',
      querystring: DeleteQuery,
      response: {
        200: Type.Object({ deleted: Type.Integer({ description: 'how many retained messages were deleted' }) }),
        ...errorResponses(400, 401),
      },
    },
  }, async (request) => {
    const { prefix, all = false } = request.query
    if (prefix === '' && !all) {
      throw new InvalidInputError([{
        field: 'prefix', rule: 'minLength 1 (or all=true)',
        message: 'is empty, which would delete every retained message; send all=true with it to mean that',
      }])
    }
    const deleted = retained.deletePrefix(prefix)
    request.audit({ action: 'retained.delete-prefix', target: prefix, after: { prefix, all, deleted } })
    return { deleted }
  })
}
