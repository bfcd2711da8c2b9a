// The audit entry and the admin token as the API shows them: TypeBox schemas checked against the store's types.
import Type from 'typebox'
import type { Assert, Same } from '../contracts/same.ts'
import { ROLES } from '../contracts/roles.ts'
import type { AdminToken as AdminTokenType } from './tokens.ts'

const Nullable = <T extends Type.TSchema>(t: T) => Type.Union([t, Type.Null()])

export const RoleSchema = Type.Enum(ROLES, { description: 'viewer: reads; operator: also changes the broker; admin: also manages tokens' })

export const AdminToken = Type.Object({
  id: Type.Integer({ minimum: 0, description: '0 is the boot token' }),
  name: Type.String(),
  role: RoleSchema,
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Nullable(Type.String({ format: 'date-time', description: 'to the minute or better; null = never used' })),
  builtIn: Type.Boolean({ description: 'the boot token (ADMIN_TOKEN or the generated one): not revocable' }),
})
export type TokenSchemaIsTheStoreType = Assert<Same<Type.Static<typeof AdminToken>, AdminTokenType>>

export const AuditEntry = Type.Object({
  id: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  actor: Type.String({ description: "the admin token's name" }),
  action: Type.String({ description: 'what: settings.update, mqtt-user.create, acl.delete, token.revoke, retained.delete, session.delete, ...' }),
  target: Nullable(Type.String({ description: 'a username, an ACL rule id, a topic or prefix, a client id, a token name; null for the settings' })),
  before: Type.Unknown({ description: 'what it was (null: it did not exist); never a secret' }),
  after: Type.Unknown({ description: 'what it became (null: it is gone); a settings change names its `version`' }),
  remoteAddress: Nullable(Type.String({ description: 'the address the request came from' })),
})
export type AuditEntry = Type.Static<typeof AuditEntry>

export const AuditPage = Type.Object({
  items: Type.Array(AuditEntry),
  nextCursor: Nullable(Type.Integer({ description: 'pass as `before` for the next page; null on the last page' })),
})
export type AuditPage = Type.Static<typeof AuditPage>
