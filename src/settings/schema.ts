// The settings schema: the single source of the hot settings' types, defaults, ranges and documentation.
// The store, the REST routes, the OpenAPI document, the admin UI and the broker core all read it.
import Type from 'typebox'
import { Value } from 'typebox/value'
import {
  PROFILE_KEYS,
  type ProfileMatch as ProfileMatchContract,
  type ProfileOverrides as ProfileOverridesContract,
  type SettingsValues as SettingsValuesContract,
  type TimeoutProfile as TimeoutProfileContract,
} from '../contracts/settings.ts'
import { TRANSPORTS } from '../contracts/connection.ts'
import type { Assert, Same } from '../contracts/same.ts'

/** The global settings, each with its range: what a profile's overrides are checked against too. */
const GlobalSettings = Type.Object(
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
    aclRevealDenials: Type.Boolean({
      default: true,
      description: 'MQTT 5 clients are told an ACL refusal is "Not authorized" (0x87) in SUBACK, PUBACK, PUBREC and CONNACK. When false they get "Unspecified error" (0x80), which does not reveal that a rule exists (MQTT 3.1.1 clients get 0x80 in a SUBACK either way).',
      'x-scope': 'Every refusal from the change on.',
    }),
    maxSessionExpirySec: Type.Integer({
      minimum: 0, maximum: 4294967295, default: 604800,
      description: 'Longest a session outlives its connection. MQTT 5 clients asking more get this in the CONNACK (Session Expiry Interval); MQTT 3.x persistent sessions (clean session 0) expire after it. 4294967295 = no limit.',
      'x-scope': 'Sessions whose connection ends from the change on.',
    }),
    maxSessions: Type.Integer({
      minimum: 1, maximum: 10000000, default: 100000,
      description: 'Sessions the broker holds at most, online and offline. A CONNECT that would start one more is refused (v5 CONNACK 0x97 / v3 server unavailable); resuming an existing session is always allowed.',
      'x-scope': 'Checked at CONNECT.',
    }),
    maxSubscriptionsPerClient: Type.Integer({
      minimum: 1, maximum: 1000000, default: 1000,
      description: 'Subscriptions one session may hold. A filter beyond it is refused in the SUBACK (v5 0x97 / v3 0x80); the others in the same SUBSCRIBE are not affected.',
      'x-scope': 'Every SUBSCRIBE from the change on.',
    }),
    maxTopicLevels: Type.Integer({
      minimum: 1, maximum: 65535, default: 128,
      description: 'Levels (parts between "/") a topic name or filter may have. A PUBLISH beyond it closes the connection as a protocol error (v5 DISCONNECT 0x90 Topic Name invalid); a filter beyond it is refused in the SUBACK.',
      'x-scope': 'Every PUBLISH and SUBSCRIBE from the change on.',
    }),
    maxTopicLength: Type.Integer({
      minimum: 1, maximum: 65535, default: 4096,
      description: 'Bytes (UTF-8) a topic name or filter may have. Treated as maxTopicLevels is.',
      'x-scope': 'Every PUBLISH and SUBSCRIBE from the change on.',
    }),
    maxRetainedMessages: Type.Integer({
      minimum: 0, maximum: 100000000, default: 100000,
      description: 'Retained messages the broker holds at most. At the limit a retained message for a new topic is not stored (v5 QoS 1/2 publishers get 0x97 Quota exceeded and the message is not routed); replacing or clearing an existing one always works.',
      'x-scope': 'Every retained PUBLISH from the change on.',
    }),
    maxRetainedBytes: Type.Integer({
      minimum: 0, maximum: 1099511627776, default: 268435456,
      description: 'Bytes of retained payloads and topics the broker holds at most; treated as maxRetainedMessages is.',
      'x-scope': 'Every retained PUBLISH from the change on.',
    }),
    maxQueuedMessages: Type.Integer({
      minimum: 1, maximum: 1000000, default: 1000,
      description: 'QoS 1/2 messages one session may have waiting (offline, or over its Receive Maximum); more are dropped and counted.',
      'x-scope': 'Every message queued from the change on.',
    }),
    maxQueuedBytes: Type.Integer({
      minimum: 1024, maximum: 1073741824, default: 4194304,
      description: 'Payload bytes one session may have waiting; treated as maxQueuedMessages is.',
      'x-scope': 'Every message queued from the change on.',
    }),
    maxOutputBytes: Type.Integer({
      minimum: 16384, maximum: 268435456, default: 1048576,
      description: 'Bytes waiting to be sent to one connection that has stopped reading. Over it the broker stops reading from that client, drops its QoS 0 messages and queues its QoS 1/2 ones; if it stays over for slowConsumerTimeoutMs it is closed (slow_consumer).',
      'x-scope': 'All live connections, from their next write.',
    }),
    slowConsumerTimeoutMs: Type.Integer({
      minimum: 100, maximum: 600000, default: 30000,
      description: 'How long a connection may stay over maxOutputBytes before it is closed as a slow_consumer.',
      'x-scope': 'Connections that go over maxOutputBytes from the change on.',
    }),
    maxPendingConnects: Type.Integer({
      minimum: 1, maximum: 1000000, default: 10000,
      description: 'Connections opened (WebSocket upgraded) and still waiting for their CONNECT. Over it the one waiting longest is closed, so a flood of silent sockets never keeps a real client out. Each may hold at most one CONNECT (at most maxPacketSize and 256 KiB).',
      'x-scope': 'New connections.',
    }),
    sysIntervalSec: Type.Integer({
      minimum: 0, maximum: 86400, default: 10,
      description: 'Seconds between two rounds of the broker\'s $SYS/ messages (retained, QoS 0: clients, messages, bytes, failures by reason, uptime); only the values that changed are sent, the uptime always. 0 = none are sent (the last ones stay retained).',
      'x-scope': 'At once: a round is sent on the change, then one every this many seconds; 0 stops them.',
    }),
  },
  { additionalProperties: false },
)

/** At most this many timeout profiles. */
export const MAX_PROFILES = 50

const Patterns = (description: string, maxLength = 512) =>
  Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength }), { minItems: 1, maxItems: 100, uniqueItems: true, description }))

export const ProfileMatch = Type.Object(
  {
    transport: Type.Optional(Type.Array(Type.Enum(TRANSPORTS), { minItems: 1, uniqueItems: true, description: 'ws, wss, tcp or tls' })),
    cidr: Patterns('remote address blocks, IPv4 or IPv6 ("10.0.0.0/8", "fd00::/8"; a bare address is one host)', 64),
    origin: Patterns('the WebSocket Origin header, exact or glob (* any run, ? one character), case-insensitive; a connection without an Origin never matches'),
    userAgent: Patterns('the User-Agent header, glob'),
    subprotocol: Patterns('the WebSocket subprotocol the connection speaks (mqtt, mqttv3.1), glob', 128),
    path: Patterns('the WebSocket request path with its query string, glob', 1024),
    clientId: Patterns('client id, glob ("sensor-*" is a prefix); checked at CONNECT only', 256),
    username: Patterns('the authenticated MQTT username, glob; checked at CONNECT only (anonymous clients never match)', 256),
  },
  {
    additionalProperties: false,
    description: 'Every condition given must hold; each lists alternatives, any one is enough. No condition = every connection.',
  },
)

export const ProfileOverrides = Type.Partial(Type.Pick(GlobalSettings, PROFILE_KEYS), {
  additionalProperties: false,
  description: `Settings this profile sets for the connections it applies to, each within its own range: ${PROFILE_KEYS.join(', ')}.`,
})
// (copies of the global keys' schemas: without their `default`, which a response serializer would fill in, and scope)
for (const key of PROFILE_KEYS) {
  const prop = ProfileOverrides.properties[key] as unknown as Record<string, unknown>
  delete prop.default
  delete prop['x-scope']
}

export const TimeoutProfile = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', description: 'unique; letters, digits, _ . -' }),
    match: ProfileMatch,
    overrides: ProfileOverrides,
  },
  { additionalProperties: false },
)

export const SettingsValues = Type.Object(
  {
    ...GlobalSettings.properties,
    profiles: Type.Array(TimeoutProfile, {
      maxItems: MAX_PROFILES,
      default: [],
      description:
        'Timeout profiles: named overrides of the connect deadline, keepalive policy and per-client quotas for the connections they match. ' +
        'First match in this order wins; none = the global values. A match on transport, address, Origin, User-Agent, subprotocol or path is decided when the socket opens ' +
        '(it sets connectTimeoutMs); one with clientId or username conditions only at CONNECT (it sets the keepalive values and quotas). Names are unique.',
      'x-scope': 'New connections, those waiting for CONNECT (deadline re-computed from their open time) and connected ones (keepalive re-armed); the other overrides at the next CONNECT, SUBSCRIBE, queued message or write.',
    }),
  },
  { additionalProperties: false },
)
export type SettingsValues = Type.Static<typeof SettingsValues>
/** The values the core runs on (src/contracts/settings.ts) are exactly these. */
export type SchemaIsTheContract = Assert<Same<SettingsValues, SettingsValuesContract>>
export type ProfileIsTheContract = Assert<Same<Type.Static<typeof TimeoutProfile>, TimeoutProfileContract>>
export type MatchIsTheContract = Assert<Same<Type.Static<typeof ProfileMatch>, ProfileMatchContract>>
export type OverridesAreTheContract = Assert<Same<Type.Static<typeof ProfileOverrides>, ProfileOverridesContract>>
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
