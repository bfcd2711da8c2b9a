// The settings schema: the single source of the hot settings' types, defaults, ranges and documentation.
// The store, the REST routes, the OpenAPI document, the admin UI and the broker core all read it.
import Type from 'typebox'
import { Value } from 'typebox/value'
import type { SettingsValues as SettingsValuesContract } from '../contracts/settings.ts'
import type { Assert, Same } from '../contracts/same.ts'

export const SettingsValues = Type.Object(
  {
    connectTimeoutMs: Type.Integer({
      minimum: 100, maximum: 600000, default: 5000,
      description: 'Time from WebSocket open until a complete CONNECT has arrived.',
      'x-scope': 'New connections and those still waiting for CONNECT (deadline re-computed from their open time).',
    }),
    keepaliveMultiplier: Type.Number({
      minimum: 1, maximum: 5, default: 1.5,
      description: 'A connected client is dropped when nothing arrives for keepalive x multiplier.',
      'x-scope': 'All live connections, re-armed at once.',
    }),
    maxKeepaliveSec: Type.Integer({
      minimum: 1, maximum: 65535, default: 65535,
      description: 'Largest keepalive a client may ask for. MQTT 5: Server Keep Alive = this; MQTT 3.x: refused.',
      'x-scope': 'Checked at CONNECT.',
    }),
    serverKeepaliveSec: Type.Union([Type.Null(), Type.Integer({ minimum: 1, maximum: 65535 })], {
      default: null,
      description: 'When set, every MQTT 5 client is told this Server Keep Alive and held to it.',
      'x-scope': 'Checked at CONNECT.',
    }),
    allowZeroKeepalive: Type.Boolean({
      default: true,
      description: 'Keepalive 0 means no keepalive. When false: MQTT 5 gets Server Keep Alive = maxKeepaliveSec, MQTT 3.x is refused.',
      'x-scope': 'Checked at CONNECT.',
    }),
    maxPacketSize: Type.Integer({
      minimum: 64, maximum: 268435455, default: 1048576,
      description: 'Larger packets close the connection (v5: DISCONNECT 0x95).',
      'x-scope': 'All live connections, from their next packet.',
    }),
    maxConnections: Type.Integer({
      minimum: 1, maximum: 1000000, default: 10000,
      description: 'Over it, new connections are refused (v5 CONNACK 0x97 / v3 server unavailable).',
      'x-scope': 'New connections.',
    }),
    failureLogMaxRows: Type.Integer({
      minimum: 1000, maximum: 10000000, default: 100000,
      description: 'Oldest failure records are pruned beyond this many rows.',
      'x-scope': 'The failure log, from its next pruning pass.',
    }),
    failureLogMaxAgeDays: Type.Integer({
      minimum: 1, maximum: 3650, default: 30,
      description: 'Failure records older than this are pruned.',
      'x-scope': 'The failure log, from its next pruning pass.',
    }),
    allowAnonymous: Type.Boolean({
      default: true,
      description: 'A client may connect without a username (or with one that is not a known MQTT user). When false, every client must present the username and password of an enabled MQTT user.',
      'x-scope': 'Checked at CONNECT.',
    }),
    allowedOrigins: Type.Union([Type.Null(), Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { maxItems: 100, uniqueItems: true })], {
      default: null,
      description: 'Origins (e.g. "https://app.example.com") a browser may open the MQTT WebSocket from; null = any. An upgrade with another Origin gets 403. Requests without an Origin header (non-browser clients) are always allowed.',
      'x-scope': 'New WebSocket upgrades.',
    }),
    aclDefault: Type.Union([Type.Literal('allow'), Type.Literal('deny')], {
      default: 'allow',
      description: 'What a publish or subscribe that no ACL rule matches gets.',
      'x-scope': 'Every publish, subscribe and delivery from the change on.',
    }),
  },
  { additionalProperties: false },
)
export type SettingsValues = Type.Static<typeof SettingsValues>
/** The values the core runs on (src/contracts/settings.ts) are exactly these. */
export type SchemaIsTheContract = Assert<Same<SettingsValues, SettingsValuesContract>>
export type SettingKey = keyof SettingsValues

export const SETTING_KEYS = Object.keys(SettingsValues.properties) as SettingKey[]

/** A change of some settings (PATCH): at least one known key, each within its own range. */
export const SettingsPatch = Type.Partial(SettingsValues, { additionalProperties: false, minProperties: 1, description: 'the settings to change' })

/** The built-in defaults, read from the schema's `default`s (so they are written once). */
export const DEFAULT_SETTINGS: Readonly<SettingsValues> = Object.freeze(Value.Default(SettingsValues, {}) as SettingsValues)

/** A rule between settings, checked on every change after each field's own range. */
export interface CrossFieldRule {
  /** the settings the rule ties together */
  readonly fields: readonly SettingKey[]
  /** short form, as error responses name it */
  readonly rule: string
  readonly description: string
  holds(values: SettingsValues): boolean
}

export const CROSS_FIELD_RULES: readonly CrossFieldRule[] = [
  {
    fields: ['serverKeepaliveSec', 'maxKeepaliveSec'],
    rule: 'serverKeepaliveSec <= maxKeepaliveSec',
    description: 'The keepalive the server imposes on MQTT 5 clients cannot be above the largest keepalive it allows.',
    holds: (v) => v.serverKeepaliveSec === null || v.serverKeepaliveSec <= v.maxKeepaliveSec,
  },
]
