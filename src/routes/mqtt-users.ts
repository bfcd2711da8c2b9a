// /api/mqtt-users*: the MQTT users clients log in as. Thin handlers over app.mqttUsers (src/access/users.ts).
// A password goes in (POST, PATCH) and never comes out: the response schemas have no field for it, and no error
// path quotes a body, nor does the audit entry of a change. Bodies are checked by TypeBox as sent (no coercion); every
// bad field is named in the 400. Reading needs a viewer token, changing an operator's.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import {
  LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, mqttUserNotFound, NOTE_MAX_CHARS, PASSWORD_MAX_BYTES, USERNAME_MAX_CHARS, type MqttUser as MqttUserType,
} from '../access/users.ts'
import { Nullable } from '../failures/schema.ts'
import { adminApi, errorResponses } from '../api.ts'
import type { Assert, Same } from '../contracts/same.ts'

// ---- schemas -----------------------------------------------------------------------------------------------------

const Username = Type.String({
  minLength: 1, maxLength: USERNAME_MAX_CHARS,
  description: `case-sensitive, 1..${USERNAME_MAX_CHARS} characters, no control characters`,
})
const Password = Type.String({
  minLength: 1,
  description: `1..${PASSWORD_MAX_BYTES} bytes as UTF-8; stored only as a salted scrypt hash, never returned`,
})
const Enabled = Type.Boolean({ description: 'a disabled user cannot log in (default true)' })
const Note = Type.Union([Type.Null(), Type.String({ maxLength: NOTE_MAX_CHARS })], { description: 'for operators; trimmed, empty = null' })

const MqttUser = Type.Object({
  username: Username,
  enabled: Type.Boolean(),
  note: Nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
})
export type SchemaIsTheStoreType = Assert<Same<Type.Static<typeof MqttUser>, MqttUserType>>

const UserPage = Type.Object({
  items: Type.Array(MqttUser),
  nextCursor: Nullable(Type.String({ description: 'pass as `after` for the next page; null on the last page' })),
})

const CreateBody = Type.Object(
  { username: Username, password: Password, enabled: Type.Optional(Enabled), note: Type.Optional(Note) },
  { additionalProperties: false },
)

const PatchBody = Type.Object(
  { password: Type.Optional(Password), enabled: Type.Optional(Enabled), note: Type.Optional(Note) },
  { additionalProperties: false, minProperties: 1 },
)

const UserParams = Type.Object({ username: Username })

const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIST_MAX_LIMIT, default: LIST_DEFAULT_LIMIT })),
    after: Type.Optional(Type.String({ description: 'only usernames after this one (nextCursor of the previous page)' })),
  },
  { additionalProperties: false },
)


// ---- routes ------------------------------------------------------------------------------------------------------

export default async function mqttUserRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const users = app.mqttUsers
  // changes go through the control plane: the store itself on one node, PostgreSQL first in cluster mode
  const writer = app.controlPlane.users
  adminApi(app)
  const tags = ['mqtt-users']

  app.get('/api/mqtt-users', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'MQTT users, by username',
      description: 'Paged in binary (case-sensitive) order of username: pass `nextCursor` as `after` for the next page.',
      querystring: ListQuery,
      response: { 200: UserPage, ...errorResponses(400, 401) },
    },
  }, async (request) => users.list(request.query))

  app.post('/api/mqtt-users', {
    config: { role: 'operator' },
    schema: {
      tags,
      summary: 'Create an MQTT user',
      description: 'Clients log in with this username and password in CONNECT. The answer never holds the password.',
      body: CreateBody,
      response: { 201: MqttUser, ...errorResponses(400, 401, 409) },
    },
  }, async (request, reply) => {
    const user = await writer.create(request.body, { actor: request.actor })
    request.audit({ action: 'mqtt-user.create', target: user.username, after: user })
    return reply.code(201).header('location', `/api/mqtt-users/${encodeURIComponent(user.username)}`).send(user)
  })

  app.get('/api/mqtt-users/:username', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'One MQTT user',
      params: UserParams,
      response: { 200: MqttUser, ...errorResponses(400, 401, 404) },
    },
  }, async (request) => {
    const user = users.get(request.params.username)
    if (user === null) throw mqttUserNotFound(request.params.username)
    return user
  })

  app.patch('/api/mqtt-users/:username', {
    config: { role: 'operator' },
    schema: {
      tags,
      summary: 'Change the password, enabled flag or note of an MQTT user',
      description: 'At least one of `password`, `enabled`, `note`; the next login is checked against the change.',
      params: UserParams,
      body: PatchBody,
      response: { 200: MqttUser, ...errorResponses(400, 401, 404) },
    },
  }, async (request) => {
    const { username } = request.params
    const before = users.get(username)
    const after = await writer.update(username, request.body, { actor: request.actor })
    // the password itself never: only that it changed
    request.audit({ action: 'mqtt-user.update', target: username, before, after: { ...after, passwordChanged: request.body.password !== undefined } })
    return after
  })

  app.delete('/api/mqtt-users/:username', {
    config: { role: 'operator' },
    schema: {
      tags,
      summary: 'Delete an MQTT user',
      description: 'A later login with this username is treated as an unknown user\'s: refused, or anonymous when allowAnonymous is true.',
      params: UserParams,
      response: { 204: Type.Null(), ...errorResponses(400, 401, 404) },
    },
  }, async (request, reply) => {
    const before = users.get(request.params.username)
    await writer.delete(request.params.username, { actor: request.actor })
    request.audit({ action: 'mqtt-user.delete', target: request.params.username, before })
    return reply.code(204).send(null)
  })
}
