// The alert rule as the store keeps it and the API shows it (its webhook secret never: `hasSecret` says whether
// there is one), what a create or an update may send, and a firing or resolved event of the alert history.
// One TypeBox source: the store validates with it, the routes document it.
import Type from 'typebox'
import { FAILURE_REASONS } from '../contracts/failure.ts'

export const ALERT_KINDS = ['threshold', 'spike'] as const
export type AlertKind = (typeof ALERT_KINDS)[number]
export const ALERT_STATES = ['firing', 'resolved'] as const
export type AlertState = (typeof ALERT_STATES)[number]

/** The built-in rule: the seed outage of this product (clients timing out in the middle of their CONNECT). */
export const BUILT_IN_RULE_NAME = 'partial-connect-timeouts'

export const RULE_NAME_MAX = 64
export const WINDOW_SEC_MAX = 86_400
export const BASELINE_SEC_MAX = 7 * 86_400
export const URL_MAX = 2048
export const SECRET_MIN = 8
export const SECRET_MAX = 256

const Nullable = <T extends Type.TSchema>(t: T) => Type.Union([t, Type.Null()])

/** What a rule says, every field a create or an update may send. */
const RuleFields = {
  name: Type.String({
    minLength: 1, maxLength: RULE_NAME_MAX, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$',
    description: 'unique; letters, digits, `-`, `_`, `.`; the `rule` label of mqtt_alert_firing',
  }),
  enabled: Type.Boolean({ description: 'false: not evaluated (a firing rule resolves when disabled)' }),
  reason: Nullable(Type.Enum(FAILURE_REASONS, { description: 'only failures of this reason; null = any' })),
  profile: Nullable(Type.String({
    minLength: 1, maxLength: 64,
    description: 'only failures under this timeout profile (a record without one has profile null); null = any',
  })),
  minBytesReceived: Type.Integer({
    minimum: 0, maximum: 1_000_000,
    description: 'only failures of clients that had sent at least this many bytes; 1 = partial CONNECTs only (not silent sockets); 0 = any',
  }),
  kind: Type.Enum(ALERT_KINDS, {
    description: "'threshold': at least `count` failures within `windowSec`; 'spike': the rate over the last `windowSec` is over `factor` x the rate of the `baselineSec` before it, with at least `count` failures",
  }),
  count: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'threshold: failures in the window; spike: the least count that can be a spike' }),
  windowSec: Type.Integer({
    minimum: 1, maximum: WINDOW_SEC_MAX,
    description: 'the window counted; the rule resolves once its condition has been false this long',
  }),
  factor: Type.Number({ minimum: 1, maximum: 1000, description: 'spike: how many times the baseline rate (default 3)' }),
  baselineSec: Type.Integer({ minimum: 1, maximum: BASELINE_SEC_MAX, description: 'spike: the trailing baseline before the window (default 3600)' }),
  notifyUi: Type.Boolean({ description: 'shown in the admin UI banner while firing' }),
  webhookUrl: Nullable(Type.String({ minLength: 1, maxLength: URL_MAX, description: 'an http:// or https:// URL POSTed each firing and resolved event; null = none' })),
  comment: Nullable(Type.String({ maxLength: 1000 })),
}

const Secret = Nullable(Type.String({
  minLength: SECRET_MIN, maxLength: SECRET_MAX,
  description: 'write-only: the key of the X-Broker-Signature HMAC-SHA256; never answered, logged or audited; null = unsigned',
}))

export const AlertRule = Type.Object({
  id: Type.Integer({ minimum: 1 }),
  ...RuleFields,
  builtIn: Type.Boolean({ description: 'the built-in rule: editable and disableable, not deletable, its name fixed' }),
  hasSecret: Type.Boolean({ description: 'whether webhook deliveries are signed (the secret itself is never shown)' }),
  firing: Type.Boolean({ description: 'firing now' }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
})
export type AlertRule = Type.Static<typeof AlertRule>

export const AlertRuleInput = Type.Object(
  {
    name: RuleFields.name,
    enabled: Type.Optional(RuleFields.enabled),
    reason: Type.Optional(RuleFields.reason),
    profile: Type.Optional(RuleFields.profile),
    minBytesReceived: Type.Optional(RuleFields.minBytesReceived),
    kind: Type.Optional(RuleFields.kind),
    count: RuleFields.count,
    windowSec: RuleFields.windowSec,
    factor: Type.Optional(RuleFields.factor),
    baselineSec: Type.Optional(RuleFields.baselineSec),
    notifyUi: Type.Optional(RuleFields.notifyUi),
    webhookUrl: Type.Optional(RuleFields.webhookUrl),
    secret: Type.Optional(Secret),
    comment: Type.Optional(RuleFields.comment),
  },
  { additionalProperties: false },
)
export type AlertRuleInput = Type.Static<typeof AlertRuleInput>

/** Any of the fields of a new rule, at least one. */
export const AlertRulePatch = Type.Partial(AlertRuleInput, { additionalProperties: false, minProperties: 1 })
export type AlertRulePatch = Type.Static<typeof AlertRulePatch>

export const AlertRuleList = Type.Object({ items: Type.Array(AlertRule, { description: 'by id; the built-in rule first' }) })

/** The failure log query that lists the failures behind an event (GET /api/failures with these parameters). */
export const FailuresQuery = Type.Object({
  reason: Type.Optional(Type.Enum(FAILURE_REASONS)),
  profile: Type.Optional(Type.String({ description: "the rule's timeout profile, when it names one" })),
  since: Type.String({ format: 'date-time' }),
  until: Type.String({ format: 'date-time' }),
}, { description: 'GET /api/failures with these parameters lists the failures behind the event (all of the reason and profile in that time: the byte condition is not a failure-list filter)' })
export type FailuresQuery = Type.Static<typeof FailuresQuery>

export const AlertEvent = Type.Object({
  id: Type.Integer(),
  ruleId: Type.Integer(),
  ruleName: Type.String(),
  state: Type.Enum(ALERT_STATES),
  at: Type.String({ format: 'date-time' }),
  count: Type.Integer({ description: 'firing: matching failures in the window; resolved: during the whole episode' }),
  baselineCount: Nullable(Type.Integer({ description: 'spike rules: matching failures in the baseline before the window' })),
  windowSec: Type.Integer(),
  reason: Nullable(Type.Enum(FAILURE_REASONS)),
  profile: Nullable(Type.String()),
  detail: Type.String({ description: 'what happened, in words' }),
  failures: FailuresQuery,
})
export type AlertEvent = Type.Static<typeof AlertEvent>

export const AlertHistoryPage = Type.Object({
  items: Type.Array(AlertEvent, { description: 'newest first' }),
  nextCursor: Nullable(Type.Integer({ description: 'pass as `before` for the next page; null on the last page' })),
})
export type AlertHistoryPage = Type.Static<typeof AlertHistoryPage>

export const ActiveAlert = Type.Object({
  ruleId: Type.Integer(),
  ruleName: Type.String(),
  builtIn: Type.Boolean(),
  notifyUi: Type.Boolean(),
  since: Type.String({ format: 'date-time', description: 'firing since' }),
  count: Type.Integer({ description: 'matching failures in the window now' }),
  windowSec: Type.Integer(),
  detail: Type.String(),
  historyId: Nullable(Type.Integer({ description: 'the firing event in the alert history' })),
  failures: FailuresQuery,
})
export type ActiveAlert = Type.Static<typeof ActiveAlert>

export const ActiveAlerts = Type.Object({ items: Type.Array(ActiveAlert, { description: 'the rules firing now' }) })
