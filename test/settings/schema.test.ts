// The settings schema against DESIGN.md's table: names, defaults, ranges, scopes; defaults obey every rule.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CROSS_FIELD_RULES, DEFAULT_SETTINGS, SETTING_KEYS, SettingsValues } from '../../src/settings/schema.ts'
import { checkCrossFieldRules, checkValues } from '../../src/settings/store.ts'

// key, default, minimum, maximum (DESIGN.md "Hot settings")
const DESIGN: Array<[string, unknown, number | null, number | null]> = [
  ['connectTimeoutMs', 5000, 100, 600000],
  ['keepaliveMultiplier', 1.5, 1, 5],
  ['maxKeepaliveSec', 65535, 1, 65535],
  ['serverKeepaliveSec', null, 1, 65535],
  ['allowZeroKeepalive', true, null, null],
  ['maxPacketSize', 1048576, 64, 268435455],
  ['maxConnections', 10000, 1, 1000000],
  ['failureLogMaxRows', 100000, 1000, 10000000],
  ['failureLogMaxAgeDays', 30, 1, 3650],
  ['allowAnonymous', true, null, null],
  ['allowedOrigins', null, null, null],
  ['aclDefault', 'allow', null, null],
  ['aclRevealDenials', true, null, null],
  ['maxSessionExpirySec', 604800, 0, 4294967295],
  ['maxSessions', 100000, 1, 10000000],
  ['maxSubscriptionsPerClient', 1000, 1, 1000000],
  ['maxTopicLevels', 128, 1, 65535],
  ['maxTopicLength', 4096, 1, 65535],
  ['maxRetainedMessages', 100000, 0, 100000000],
  ['maxRetainedBytes', 268435456, 0, 1099511627776],
  ['maxQueuedMessages', 1000, 1, 1000000],
  ['maxQueuedBytes', 4194304, 1024, 1073741824],
  ['maxOutputBytes', 1048576, 16384, 268435456],
  ['slowConsumerTimeoutMs', 30000, 100, 600000],
  ['maxPendingConnects', 10000, 1, 1000000],
  ['sysIntervalSec', 10, 0, 86400],
  ['profiles', [], null, null],
]

test('the schema holds exactly DESIGN.md\'s settings, defaults and ranges, each documented with its scope', () => {
  assert.deepEqual(SETTING_KEYS, DESIGN.map(([k]) => k))
  for (const [key, def, min, max] of DESIGN) {
    const prop = SettingsValues.properties[key as keyof typeof SettingsValues.properties] as unknown as Record<string, unknown> & { anyOf?: Array<Record<string, unknown>> }
    const ranged = prop.anyOf ? prop.anyOf.find((b) => b.type !== 'null') ?? {} : prop
    assert.deepEqual(DEFAULT_SETTINGS[key as keyof typeof DEFAULT_SETTINGS], def, `${key} default`)
    assert.equal(ranged.minimum, min ?? undefined, `${key} minimum`)
    assert.equal(ranged.maximum, max ?? undefined, `${key} maximum`)
    assert.equal(typeof prop.description, 'string', `${key} description`)
    assert.equal(typeof prop['x-scope'], 'string', `${key} x-scope`)
  }
})

test('the defaults pass every field rule and every cross-field rule', () => {
  assert.deepEqual(checkValues(DEFAULT_SETTINGS, { partial: false }), [])
  assert.deepEqual(checkCrossFieldRules(DEFAULT_SETTINGS), [])
  for (const r of CROSS_FIELD_RULES) for (const f of r.fields) assert.ok(SETTING_KEYS.includes(f))
})
