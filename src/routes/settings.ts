// /api/settings*: thin handlers over app.settingsStore. Bodies are checked by TypeBox (not Fastify's Ajv, which
// would coerce "5000" into 5000 and fill a partial PATCH with defaults); every bad field is named in the 400.
// Reading needs a viewer token, changing an operator's; each change is one audit entry naming its new version.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { CROSS_FIELD_RULES, MAX_PROFILES, SETTING_KEYS, SettingsPatch, SettingsValues, TimeoutProfile } from '../settings/schema.ts'
import { COMMENT_MAX_LENGTH, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, diffValues, type SettingsVersion } from '../settings/store.ts'
import { adminApi, errorResponses } from '../api.ts'
import { InvalidInputError } from '../contracts/errors.ts'

// ---- schemas -----------------------------------------------------------------------------------------------------

const SettingsVersionSchema = Type.Object({
  version: Type.Integer({ minimum: 1, description: 'increases by one with every change' }),
  updatedAt: Type.String({ format: 'date-time' }),
  updatedBy: Type.String({ description: "the admin token's name, or 'system' for the built-in defaults" }),
  comment: Type.Union([Type.String(), Type.Null()]),
  values: SettingsValues,
})

const Change = Type.Object({
  key: Type.String(),
  from: Type.Unknown(),
  to: Type.Unknown(),
})

const HistoryEntry = Type.Object({
  ...SettingsVersionSchema.properties,
  diff: Type.Array(Change, { description: 'what this version changed compared with the one before it' }),
})

const Comment = Type.Optional(
  Type.Union([Type.Null(), Type.String({ maxLength: COMMENT_MAX_LENGTH })], { description: 'why, for the history' }),
)

const PatchBody = Type.Object(
  {
    values: SettingsPatch,
    comment: Comment,
  },
  { additionalProperties: false },
)

const PutBody = Type.Object({ values: SettingsValues, comment: Comment }, { additionalProperties: false })

const RollbackBody = Type.Object(
  { version: Type.Integer({ minimum: 1, description: 'the version whose values become a new version' }), comment: Comment },
  { additionalProperties: false },
)

const ProfilesBody = Type.Object(
  { profiles: Type.Array(TimeoutProfile, { maxItems: MAX_PROFILES, description: 'every profile, in the order they are tried' }), comment: Comment },
  { additionalProperties: false },
)

const ProfilesAnswer = Type.Object({
  version: Type.Integer({ minimum: 1 }),
  profiles: Type.Array(TimeoutProfile),
})

/** How a change of the timeout profiles is made and refused, for OpenAPI. */
const PROFILES_DOC =
  'Timeout profiles are the `profiles` key of the settings values: an ordered list of `{ name, match, overrides }`, ' +
  'first match wins, none = the global values. A bad profile gets 400 naming its field path, e.g. ' +
  '`profiles.2.match.cidr.0` (not an address block), `profiles.1.name` (used twice), `profiles.0.overrides.connectTimeoutMs` (out of range).'

const HistoryQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: HISTORY_MAX_LIMIT, default: HISTORY_DEFAULT_LIMIT })),
  before: Type.Optional(Type.Integer({ minimum: 1, description: 'only versions older than this (nextCursor of the previous page)' })),
})

const IfMatchHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ description: 'the ETag of the version you edited, e.g. "3"; a stale one gets 412' })),
})


// ---- validation --------------------------------------------------------------------------------------------------

/** A body field's name as the caller knows it: the setting key for `values.*`, else its dotted path. */
const bodyFieldName = (path: string) => (path.startsWith('values.') ? path.slice('values.'.length) : path || '(body)')

/** `If-Match: "3"` (or `"3", "4"`, or `*`) -> the versions it accepts; undefined when absent or `*`. */
export function parseIfMatch(header: string | undefined): number[] | undefined {
  if (header === undefined || header.trim() === '*') return undefined
  const versions = header.split(',').map((tag) => /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(tag)?.[1])
  if (versions.length === 0 || versions.some((v) => v === undefined)) {
    throw new InvalidInputError([{ field: 'If-Match', rule: 'an ETag like "3"', message: 'must be the ETag of a settings version, e.g. "3"' }])
  }
  return versions.map(Number)
}

/** Who writes, why, and against which version (If-Match): the options of every write route. */
const writeOptions = (request: { actor: string; body: { comment?: string | null }; headers: { 'if-match'?: string } }) => ({
  actor: request.actor,
  comment: request.body.comment,
  ifMatch: parseIfMatch(request.headers['if-match']),
})

const sendVersion = (reply: FastifyReply, v: SettingsVersion) => {
  reply.header('etag', `"${v.version}"`)
  return v
}

/** The keys a change set, each with its value in `from` and in `to`. */
function changedValues(from: SettingsVersion, to: SettingsVersion) {
  const before: Record<string, unknown> = {}
  const after: Record<string, unknown> = {}
  for (const { key, from: a, to: b } of diffValues(from.values, to.values)) {
    before[key] = a
    after[key] = b
  }
  return { before, after }
}

// ---- routes ------------------------------------------------------------------------------------------------------

export default async function settingsRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const store = app.settingsStore
  // changes go through the control plane: the store itself on one node, PostgreSQL first in cluster mode
  const writer = app.controlPlane.settings
  adminApi(app, bodyFieldName)

  /**
   * Runs a change and notes it for the audit trail: the keys it changed, before and after, and the version it made
   * (the history holds every value; `after.version` links to it).
   */
  async function audited(
    request: FastifyRequest, action: string, change: () => SettingsVersion | Promise<SettingsVersion>, extra: object = {},
  ): Promise<SettingsVersion> {
    const previous = store.current()
    const next = await change()
    const { before, after } = changedValues(previous, next)
    request.audit({
      action,
      target: null,
      before: { version: previous.version, values: before },
      after: { version: next.version, values: after, comment: next.comment, ...extra },
    })
    return next
  }

  app.get('/api/settings', {
    config: { role: 'viewer' },
    schema: {
      tags: ['settings'],
      summary: 'The settings in force',
      description: 'The newest version, which the broker runs on. `ETag: "<version>"`; send it back as `If-Match` to edit safely.',
      response: { 200: SettingsVersionSchema, ...errorResponses(401) },
    },
  }, async (_request, reply) => sendVersion(reply, store.current()))

  app.patch('/api/settings', {
    config: { role: 'operator' },
    schema: {
      tags: ['settings'],
      summary: 'Change some settings',
      description:
        'Stores a new version with the given keys changed and puts it in force before answering. ' +
        'With `If-Match`, a stale version gets 412 and nothing changes; without it the last writer wins. ' + PROFILES_DOC,
      headers: IfMatchHeaders,
      body: PatchBody,
      response: { 200: SettingsVersionSchema, ...errorResponses(400, 401, 412, 503) },
    },
  }, async (request, reply) => sendVersion(reply, await audited(request, 'settings.update', () => writer.update(request.body.values, writeOptions(request)))))

  app.put('/api/settings', {
    config: { role: 'operator' },
    schema: {
      tags: ['settings'],
      summary: 'Replace all settings',
      description: 'Like PATCH, with every key (`profiles` too: `[]` for none).',
      headers: IfMatchHeaders,
      body: PutBody,
      response: { 200: SettingsVersionSchema, ...errorResponses(400, 401, 412, 503) },
    },
  }, async (request, reply) => sendVersion(reply, await audited(request, 'settings.replace', () => writer.update(request.body.values, { ...writeOptions(request), replace: true }))))

  app.get('/api/settings/profiles', {
    config: { role: 'viewer' },
    schema: {
      tags: ['settings'],
      summary: 'The timeout profiles in force',
      description: 'The `profiles` of the version in force, with its `ETag`. ' + PROFILES_DOC,
      response: { 200: ProfilesAnswer, ...errorResponses(401) },
    },
  }, async (_request, reply) => {
    const v = sendVersion(reply, store.current())
    return { version: v.version, profiles: v.values.profiles }
  })

  app.put('/api/settings/profiles', {
    config: { role: 'operator' },
    schema: {
      tags: ['settings'],
      summary: 'Replace the timeout profiles',
      description: 'The same as `PATCH /api/settings` with `{ values: { profiles } }`: a new settings version, in force before the answer. ' + PROFILES_DOC,
      headers: IfMatchHeaders,
      body: ProfilesBody,
      response: { 200: SettingsVersionSchema, ...errorResponses(400, 401, 412, 503) },
    },
  }, async (request, reply) => sendVersion(reply, await audited(request, 'settings.update', () => writer.update({ profiles: request.body.profiles }, writeOptions(request)))))

  app.get('/api/settings/history', {
    config: { role: 'viewer' },
    schema: {
      tags: ['settings'],
      summary: 'Every version, newest first, with its diff to the one before',
      querystring: HistoryQuery,
      response: { 200: Type.Object({ items: Type.Array(HistoryEntry), nextCursor: Type.Union([Type.Integer(), Type.Null()]) }), ...errorResponses(400, 401) },
    },
  }, async (request) => store.history(request.query))

  app.post('/api/settings/rollback', {
    config: { role: 'operator' },
    schema: {
      tags: ['settings'],
      summary: 'Go back to an earlier version',
      description: 'Stores a new version whose values equal those of `version`, and puts it in force.',
      headers: IfMatchHeaders,
      body: RollbackBody,
      response: { 200: SettingsVersionSchema, ...errorResponses(400, 401, 404, 412, 503) },
    },
  }, async (request, reply) => sendVersion(reply, await audited(request, 'settings.rollback', () => writer.rollback(request.body.version, writeOptions(request)), { rolledBackTo: request.body.version })))

  app.get('/api/settings/defaults', {
    config: { role: 'viewer' },
    schema: {
      tags: ['settings'],
      summary: 'The built-in defaults',
      description: 'In the shape PUT takes, so `PUT /api/settings` with this body restores them.',
      response: { 200: Type.Object({ values: SettingsValues }), ...errorResponses(401) },
    },
  }, async () => ({ values: store.defaults() }))

  app.get('/api/settings/schema', {
    config: { role: 'viewer' },
    schema: {
      tags: ['settings'],
      summary: 'The settings schema, for forms',
      description:
        "JSON Schema of the values: each key's type, range (`minimum`, `maximum`), `default`, `description` and " +
        '`x-scope` (which connections a change reaches, and when); and the rules between keys.',
      response: {
        200: Type.Object({
          keys: Type.Array(Type.String()),
          schema: Type.Unknown(),
          rules: Type.Array(Type.Object({ fields: Type.Array(Type.String()), rule: Type.String(), description: Type.String() })),
        }),
        ...errorResponses(401),
      },
    },
  }, async () => ({
    keys: SETTING_KEYS,
    schema: SettingsValues,
    rules: CROSS_FIELD_RULES.map(({ fields, rule, description }) => ({ fields: [...fields], rule, description })),
  }))
}
