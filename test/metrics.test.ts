// GET /metrics: Prometheus text with the broker's counters, failures by reason, connect latency, the settings
// version, the failure log's own counters and the MQTT state (sessions, queues, retained bytes, SQLite writes), read
// from real traffic. No token needed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connectMqtt, RawClient, startServer, until, waitForEvent, waitForFailure, type TestServer } from './helpers.ts'

async function scrape(server: TestServer): Promise<{ text: string; value(series: string): number }> {
  const res = await fetch(`${server.url}/metrics`)
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  const text = await res.text()
  return {
    text,
    value(series) {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `))
      assert.ok(line, `series ${series} is exposed`)
      return Number(line.slice(series.length + 1))
    },
  }
}

test('metrics expose broker counters, failures by reason, latency, settings version and the failure log', async (t) => {
  const server = await startServer()
  t.after(() => server.close())

  const before = await scrape(server)
  for (const name of ['mqtt_connections', 'mqtt_clients_connected', 'mqtt_connects_total', 'mqtt_packets_received_total',
    'mqtt_packets_sent_total', 'mqtt_bytes_received_total', 'mqtt_bytes_sent_total', 'mqtt_settings_version',
    'mqtt_connect_latency_seconds_count', 'mqtt_failure_log_pending', 'mqtt_failure_log_rows']) {
    assert.ok(before.value(name) >= 0, name)
  }
  assert.equal(before.value('mqtt_connection_failures_total{reason="taken_over"}'), 0, 'every reason present from the start')
  assert.match(before.text, /^# TYPE mqtt_connection_failures_total counter$/m)
  assert.match(before.text, /^# TYPE mqtt_connect_latency_seconds histogram$/m)
  assert.match(before.text, /^process_cpu_user_seconds_total /m, 'default process metrics')
  assert.match(before.text, /^nodejs_eventloop_lag_seconds /m)

  // real traffic: a client that subscribes and publishes to itself, and one that breaks the protocol
  const client = await connectMqtt(server.wsUrl, { clientId: 'metrics-1' })
  t.after(() => client.end(true))
  await client.subscribeAsync('m/#', { qos: 1 })
  const got = new Promise<void>((resolve) => client.once('message', () => resolve()))
  await client.publishAsync('m/1', 'hello', { qos: 1 })
  await got

  const failed = waitForFailure(server, (e) => e.reason === 'protocol_error')
  const bad = await RawClient.open(server.wsUrl)
  bad.send({ cmd: 'pingreq' })
  await bad.closed()
  await failed
  server.app.failureLog.flush()

  const v = server.app.settingsStore.update({ connectTimeoutMs: 7000 }, { actor: 'test', comment: 'metrics test' }).version

  const after = await scrape(server)
  assert.equal(after.value('mqtt_connections'), 1)
  assert.equal(after.value('mqtt_clients_connected'), 1)
  assert.equal(after.value('mqtt_connects_total'), 1)
  assert.equal(after.value('mqtt_connect_latency_seconds_count'), 1)
  assert.ok(after.value('mqtt_connect_latency_seconds_bucket{le="+Inf"}') === 1)
  assert.ok(after.value('mqtt_packets_received_total') >= 4, 'CONNECT, SUBSCRIBE, PUBLISH, PUBACK (+ the PINGREQ)')
  assert.ok(after.value('mqtt_packets_sent_total') >= 4, 'CONNACK, SUBACK, PUBACK, PUBLISH')
  assert.ok(after.value('mqtt_bytes_received_total') > 20)
  assert.ok(after.value('mqtt_bytes_sent_total') > 10)
  assert.equal(after.value('mqtt_messages_published_total'), 1)
  assert.equal(after.value('mqtt_messages_delivered_total'), 1)
  assert.equal(after.value('mqtt_subscriptions'), 1)
  assert.equal(after.value('mqtt_connection_failures_total{reason="protocol_error"}'), 1)
  assert.equal(after.value('mqtt_connection_failures_total{reason="connect_timeout"}'), 0)
  assert.equal(after.value('mqtt_settings_version'), v)
  assert.equal(after.value('mqtt_failure_log_events_total{outcome="written"}'), 1)
  assert.equal(after.value('mqtt_failure_log_rows'), 1)

  // each app has its own registry: a second server in this process starts from zero
  const other = await startServer()
  t.after(() => other.close())
  assert.equal((await scrape(other)).value('mqtt_connection_failures_total{reason="protocol_error"}'), 0)
})

test('metrics count the messages the broker dropped (here: over a subscriber\'s Maximum Packet Size)', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  assert.equal((await scrape(server)).value('mqtt_messages_dropped_total'), 0)

  const small = await connectMqtt(server.wsUrl, { clientId: 'metrics-small', protocolVersion: 5, properties: { maximumPacketSize: 100 } })
  t.after(() => small.end(true))
  await small.subscribeAsync('d/#', { qos: 0 })
  const publisher = await connectMqtt(server.wsUrl, { clientId: 'metrics-pub' })
  t.after(() => publisher.end(true))
  const got: string[] = []
  const fits = new Promise<void>((resolve) => small.on('message', (_topic, payload) => {
    got.push(payload.toString())
    if (payload.toString() === 'fits') resolve()
  }))
  await publisher.publishAsync('d/big', 'x'.repeat(500), { qos: 1 })
  await publisher.publishAsync('d/small', 'fits', { qos: 1 })
  await fits

  assert.deepEqual(got, ['fits'], 'the large message was not sent to the client')
  const m = await scrape(server)
  assert.equal(m.value('mqtt_messages_dropped_total'), 1)
  assert.equal(m.value('mqtt_messages_delivered_total'), 1)
})

test('metrics show the MQTT state: sessions online and offline, queued messages, retained bytes, SQLite writes', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const writeBehind = server.app.mqttState.writeBehind
  assert.ok(writeBehind, 'the default MQTT_STATE is sqlite')
  const before = await scrape(server)
  assert.equal(before.value('mqtt_sessions{state="online"}'), 0)
  assert.equal(before.value('mqtt_sessions{state="offline"}'), 0)
  assert.equal(before.value('mqtt_queued_messages'), 0)
  assert.equal(before.value('mqtt_retained_bytes'), 0)
  assert.equal(before.value('mqtt_state_write_errors_total'), 0)
  assert.match(before.text, /^# TYPE mqtt_state_write_seconds histogram$/m)

  // a persistent session: online while its client is connected, offline after, where a QoS 1 message waits for it
  const durable = await connectMqtt(server.wsUrl, { clientId: 'metrics-durable', clean: false })
  await durable.subscribeAsync('q/#', { qos: 1 })
  const online = await scrape(server)
  assert.equal(online.value('mqtt_sessions{state="online"}'), 1)
  assert.equal(online.value('mqtt_sessions{state="offline"}'), 0)
  await durable.endAsync()
  await until(() => server.app.broker.stats.clientsConnected === 0, 'the durable client is gone')

  const publisher = await connectMqtt(server.wsUrl, { clientId: 'metrics-state-pub' })
  t.after(() => publisher.end(true))
  const flushed = waitForEvent<number>(writeBehind, 'flush')
  await publisher.publishAsync('q/1', 'waits', { qos: 1 })
  await publisher.publishAsync('r/1', 'kept', { qos: 1, retain: true })
  await flushed

  const after = await scrape(server)
  assert.equal(after.value('mqtt_sessions{state="online"}'), 1, 'the publisher')
  assert.equal(after.value('mqtt_sessions{state="offline"}'), 1, 'the durable client\'s session')
  assert.equal(after.value('mqtt_queued_messages'), 1)
  assert.equal(after.value('mqtt_retained_bytes'), 'r/1'.length + 'kept'.length)
  assert.ok(after.value('mqtt_state_write_seconds_count') >= 1, 'a write-behind transaction was observed')
  assert.ok(after.value('mqtt_state_write_rows_total') >= 1)
  assert.equal(after.value('mqtt_state_write_errors_total'), 0)
})

test('with MQTT_STATE=memory the SQLite write metrics are there and stay at 0', async (t) => {
  const server = await startServer({ config: { mqttState: 'memory' } })
  t.after(() => server.close())
  const client = await connectMqtt(server.wsUrl, { clientId: 'metrics-memory' })
  t.after(() => client.end(true))
  await client.publishAsync('r/m', 'kept', { qos: 1, retain: true })
  const m = await scrape(server)
  assert.equal(m.value('mqtt_state_write_seconds_count'), 0)
  assert.equal(m.value('mqtt_state_write_rows_total'), 0)
  assert.equal(m.value('mqtt_retained_bytes'), 'r/m'.length + 'kept'.length)
})
