// Boot configuration and app-wide behaviour: the environment contract and credential-free request logs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { buildApp } from '../src/app.ts'
import { DEFAULT_CONFIG, loadConfig } from '../src/config.ts'
import { TEST_TOKEN } from './helpers.ts'

test('loadConfig: no environment gives the documented defaults; each variable is read', () => {
  assert.deepEqual(loadConfig({}), {
    port: 8080, host: '0.0.0.0', dbPath: './data/broker.db', adminToken: null, mqttPath: '/mqtt', logLevel: 'info',
    mqttTcpPort: null, mqttsPort: null, tlsCert: null, tlsKey: null, mqttState: 'sqlite',
    logFormat: 'auto', shutdownDrainMs: 0, backupDir: null, rateLimitApiPerMin: 1200, rateLimitAuthFailuresPerMin: 20,
    stallCredit: 'on', natsUrl: null, databaseUrl: null, nodeId: null, clusterName: 'mqtt',
  })
  assert.deepEqual(loadConfig({}), { ...DEFAULT_CONFIG })
  assert.deepEqual(
    loadConfig({
      PORT: '0', HOST: '127.0.0.1', DB_PATH: ':memory:', ADMIN_TOKEN: 'secret-token', MQTT_PATH: '/ws', LOG_LEVEL: 'warn', MQTT_TCP_PORT: '11883', MQTT_STATE: 'memory',
      LOG_FORMAT: 'json', SHUTDOWN_DRAIN_MS: '5000', BACKUP_DIR: '/var/backups/broker', RATE_LIMIT_API_PER_MIN: '0', RATE_LIMIT_AUTH_FAILURES_PER_MIN: '5',
      STALL_CREDIT: 'off', NATS_URL: 'nats://127.0.0.1:4222', DATABASE_URL: 'postgres://127.0.0.1/test', NODE_ID: 'node-a',
      CLUSTER_NAME: 'east',
    }),
    {
      port: 0, host: '127.0.0.1', dbPath: ':memory:', adminToken: 'secret-token', mqttPath: '/ws', logLevel: 'warn', mqttTcpPort: 11883, mqttsPort: null, tlsCert: null, tlsKey: null, mqttState: 'memory',
      logFormat: 'json', shutdownDrainMs: 5000, backupDir: '/var/backups/broker', rateLimitApiPerMin: 0, rateLimitAuthFailuresPerMin: 5,
      stallCredit: 'off', natsUrl: 'nats://127.0.0.1:4222', databaseUrl: 'postgres://127.0.0.1/test', nodeId: 'node-a',
      clusterName: 'east',
    },
  )
})

const badEnv: [string, NodeJS.ProcessEnv, RegExp][] = [
  ['a port that is not a number', { PORT: 'http' }, /^invalid environment: PORT: /],
  ['a port out of range', { PORT: '70000' }, /^invalid environment: PORT: /],
  ['a short admin token', { ADMIN_TOKEN: 'short' }, /^invalid environment: ADMIN_TOKEN: must not have fewer than 8 characters$/],
  ['a path without a slash', { MQTT_PATH: 'mqtt' }, /^invalid environment: MQTT_PATH: /],
  ['an unknown state kind', { MQTT_STATE: 'redis' }, /^invalid environment: MQTT_STATE: /],
  ['an unknown log level', { LOG_LEVEL: 'loud' }, /^invalid environment: LOG_LEVEL: /],
  ['a TCP port that is not a number', { MQTT_TCP_PORT: 'mqtt' }, /^invalid environment: MQTT_TCP_PORT: /],
  ['an MQTTS port out of range', { MQTTS_PORT: '99999' }, /^invalid environment: MQTTS_PORT: /],
  ['an unknown log format', { LOG_FORMAT: 'xml' }, /^invalid environment: LOG_FORMAT: /],
  ['NATS_URL without DATABASE_URL', { NATS_URL: 'nats://127.0.0.1:4222' }, /^invalid environment: DATABASE_URL: must be set when NATS_URL is/],
  ['DATABASE_URL without NATS_URL', { DATABASE_URL: 'postgres://127.0.0.1/test' }, /^invalid environment: NATS_URL: must be set when DATABASE_URL is/],
  ['a NATS URL of another scheme', { NATS_URL: 'http://127.0.0.1:4222', DATABASE_URL: 'postgres://127.0.0.1/test' }, /^invalid environment: NATS_URL: /],
  ['a database URL that is no PostgreSQL one', { NATS_URL: 'nats://127.0.0.1:4222', DATABASE_URL: 'mysql://127.0.0.1/test' }, /^invalid environment: DATABASE_URL: /],
  ['a node id with a space', { NODE_ID: 'node a' }, /^invalid environment: NODE_ID: /],
  ['a drain delay that is not a number', { SHUTDOWN_DRAIN_MS: '5s' }, /^invalid environment: SHUTDOWN_DRAIN_MS: /],
  ['a negative API rate limit', { RATE_LIMIT_API_PER_MIN: '-1' }, /^invalid environment: RATE_LIMIT_API_PER_MIN: /],
  ['a stall credit that is neither on nor off', { STALL_CREDIT: 'yes' }, /^invalid environment: STALL_CREDIT: /],
  ['an auth-failure limit that is not a number', { RATE_LIMIT_AUTH_FAILURES_PER_MIN: 'many' }, /^invalid environment: RATE_LIMIT_AUTH_FAILURES_PER_MIN: /],
]
for (const [name, env, message] of badEnv) {
  test(`loadConfig refuses ${name} with one message naming the variable`, () => {
    assert.throws(() => loadConfig(env), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_BOOT_CONFIG')
      assert.match(err.message, message)
      return true
    })
  })
}

test('request log lines never carry the admin token given as ?token=', async (t) => {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk))
      done()
    },
  })
  const app = await buildApp({
    config: { dbPath: ':memory:', adminToken: TEST_TOKEN },
    logger: { level: 'info', stream },
  })
  t.after(() => app.close())
  const res = await app.inject({ url: `/healthz?x=1&token=${TEST_TOKEN}&y=2` })
  assert.equal(res.statusCode, 200)
  const requestLines = lines.filter((l) => l.includes('/healthz'))
  assert.ok(requestLines.length > 0, 'the request was logged')
  for (const l of requestLines) {
    assert.ok(!l.includes(TEST_TOKEN), `token in log line: ${l}`)
    assert.match(l, /\/healthz\?x=1&token=\[redacted\]&y=2/)
  }
})
