// The topic ACL rule as the store keeps it and the API shows it, what a create or an update may send, and the
// "try it" question and answer. One TypeBox source: the store validates with it, the routes document it.
import Type from 'typebox'
import { USERNAME_MAX_CHARS } from './users.ts'

export const ACL_RULE_ACTIONS = ['publish', 'subscribe', 'all'] as const
export const ACL_PERMISSIONS = ['allow', 'deny'] as const
export const ACL_CHECK_ACTIONS = ['publish', 'subscribe'] as const

export const CLIENT_ID_GLOB_MAX_LENGTH = 256
export const ACL_COMMENT_MAX_LENGTH = 1000
/** MQTT strings are at most 65535 bytes; the same bound for a rule's filter and for a checked topic or client id. */
export const MQTT_STRING_MAX_BYTES = 65535

const Nullable = <T extends Type.TSchema>(t: T) => Type.Union([t, Type.Null()])

/** What a rule says, every field a create or an update may send. */
const RuleFields = {
  position: Type.Integer({
    minimum: 1,
    description: 'checked in this order, 1 first; on create the rules from here on move down one (default: after the last)',
  }),
  username: Nullable(Type.String({
    minLength: 1, maxLength: USERNAME_MAX_CHARS,
    description: 'only this MQTT user (never an anonymous client); null = any client',
  })),
  clientId: Nullable(Type.String({
    minLength: 1, maxLength: CLIENT_ID_GLOB_MAX_LENGTH,
    description: 'only client ids matching this glob (`*` any run of characters, `?` one character); null = any',
  })),
  anonymous: Type.Boolean({ description: 'true: only clients that connected without a username' }),
  topic: Type.String({
    minLength: 1,
    description: 'an MQTT topic filter (`+`, `#`); `%u` stands for the username, `%c` for the client id',
  }),
  action: Type.Enum(ACL_RULE_ACTIONS, { description: "what the rule is about: 'all' = publish and subscribe" }),
  permission: Type.Enum(ACL_PERMISSIONS),
  comment: Nullable(Type.String({ maxLength: ACL_COMMENT_MAX_LENGTH })),
}

export const AclRule = Type.Object({
  id: Type.Integer({ minimum: 1 }),
  ...RuleFields,
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
})
export type AclRule = Type.Static<typeof AclRule>
export type AclRuleAction = AclRule['action']
export type AclPermission = AclRule['permission']

export const AclRuleInput = Type.Object(
  {
    position: Type.Optional(RuleFields.position),
    username: Type.Optional(RuleFields.username),
    clientId: Type.Optional(RuleFields.clientId),
    anonymous: Type.Optional(RuleFields.anonymous),
    topic: RuleFields.topic,
    action: RuleFields.action,
    permission: RuleFields.permission,
    comment: Type.Optional(RuleFields.comment),
  },
  { additionalProperties: false },
)
export type AclRuleInput = Type.Static<typeof AclRuleInput>

export const AclRulePatch = Type.Object(
  {
    position: Type.Optional(RuleFields.position),
    username: Type.Optional(RuleFields.username),
    clientId: Type.Optional(RuleFields.clientId),
    anonymous: Type.Optional(RuleFields.anonymous),
    topic: Type.Optional(RuleFields.topic),
    action: Type.Optional(RuleFields.action),
    permission: Type.Optional(RuleFields.permission),
    comment: Type.Optional(RuleFields.comment),
  },
  { additionalProperties: false, minProperties: 1 },
)
export type AclRulePatch = Type.Static<typeof AclRulePatch>

export const AclRuleList = Type.Object({
  items: Type.Array(AclRule, { description: 'in position order: the order they are checked in' }),
  aclDefault: Type.Enum(ACL_PERMISSIONS, { description: 'what a publish or subscribe no rule matches gets (the setting aclDefault)' }),
  version: Type.Integer({ description: 'changes with every change of the rules or of aclDefault' }),
})

export const AclCheckInput = Type.Object(
  {
    username: Type.Optional(Nullable(Type.String({ maxLength: MQTT_STRING_MAX_BYTES, description: 'null or absent = an anonymous client' }))),
    clientId: Type.String({ maxLength: MQTT_STRING_MAX_BYTES }),
    action: Type.Enum(ACL_CHECK_ACTIONS),
    topic: Type.String({ minLength: 1, description: 'publish: a topic name; subscribe: a topic filter, `$share/group/filter` too' }),
  },
  { additionalProperties: false },
)
export type AclCheckInput = Type.Static<typeof AclCheckInput>

export const AclCheckResult = Type.Object({
  allowed: Type.Boolean(),
  decidedBy: Type.Union([
    Type.Object({ id: Type.Integer(), position: Type.Integer() }),
    Type.Literal('default'),
  ], { description: "the rule that decided, or 'default' when none matched (aclDefault decided)" }),
  rule: Type.Optional(AclRule),
  explanation: Type.String({ description: 'why, in words' }),
})
export type AclCheckResult = Type.Static<typeof AclCheckResult>
