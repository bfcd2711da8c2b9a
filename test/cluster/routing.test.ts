// Cross-node routing: a PUBLISH on one node reaches the subscribers of every node, with its QoS, retain flag, v5
// properties and order, once; local subscribers without a network hop; shared subscriptions shared across nodes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connectMqtt, MessageLog, barrier, until, type TestServer } from '../helpers.ts'
import { startCluster, type TestCluster } from './cluster.ts'
import type { MqttClient } from 'mqtt'

test('cluster routing across three nodes', async (t) => {
  // ($SYS/ rounds every second: the test below sees them stay on their node)
  const cluster: TestCluster = await startCluster(3, { settings: { sysIntervalSec: 1 } })
  const clients: MqttClient[] = []
  t.after(async () => {
    for (const c of clients) c.end(true)
    await cluster.close()
  })
  const [a, b, c] = cluster.nodes
  const client = async (node: TestServer, clientId: string, opts: object = {}) => {
    const m = await connectMqtt(node.wsUrl, { clientId, protocolVersion: 5, ...opts })
    clients.push(m)
    return m
  }
  /** wait until the other nodes have the interest of `node`'s subscriptions (NATS passes it on at once) */
  const flushed = () => Promise.all(cluster.nodes.map((n) => n.app.cluster!.bus.flush()))

  await t.test('QoS 0, 1 and 2 cross nodes with their QoS, properties and per-publisher order, once', async () => {
    const subB = await client(b, 'sub-b')
    const subC = await client(c, 'sub-c')
    const logB = new MessageLog(subB)
    const logC = new MessageLog(subC)
    await subB.subscribeAsync('room/+/temp', { qos: 2 })
    await subC.subscribeAsync('room/#', { qos: 1 })
    await flushed()
    const pub = await client(a, 'pub-a')
    for (let i = 0; i < 20; i++) await pub.publishAsync(`room/${i % 2}/temp`, `m${i}`, { qos: (i % 3) as 0 | 1 | 2, properties: { userProperties: { n: String(i) }, contentType: 'text/plain' } })
    const gotB = await logB.waitFor(() => logB.messages.length >= 20, 5000).then(() => logB.messages)
    const gotC = await logC.waitFor(() => logC.messages.length >= 20, 5000).then(() => logC.messages)
    // in publish order per QoS (MQTT.js hands a QoS 2 message over only at its PUBREL, so levels interleave),
    // each with the lower of the publish's and the subscription's QoS
    const byQos = (got: typeof gotB, qos: number) => got.filter((m) => m.packet.qos === qos).map((m) => m.payload.toString())
    const sent = (pred: (i: number) => boolean) => Array.from({ length: 20 }, (_, i) => i).filter(pred).map((i) => `m${i}`)
    for (const q of [0, 1, 2]) assert.deepEqual(byQos(gotB, q), sent((i) => i % 3 === q), `QoS ${q} on b`)
    assert.deepEqual(byQos(gotC, 0), sent((i) => i % 3 === 0))
    assert.deepEqual(byQos(gotC, 1), sent((i) => i % 3 !== 0))
    const m4 = gotB.find((m) => m.payload.toString() === 'm4')!
    assert.equal(m4.packet.properties?.contentType, 'text/plain')
    assert.deepEqual({ ...m4.packet.properties?.userProperties }, { n: '4' })
    // once: a barrier after the burst, and nothing more came
    await barrier(pub, logC, 'room/end')
    assert.equal(logB.messages.length, 20)
    assert.equal(logC.on('room/1/temp').length + logC.on('room/0/temp').length, 20)
  })

  await t.test('a subscriber on the publishing node is served without NATS, and only once', async () => {
    const local = await client(a, 'local-a')
    const log = new MessageLog(local)
    await local.subscribeAsync('here/#', { qos: 1 })
    const received = b.app.cluster!.bus.stats.received
    const pub = await client(a, 'pub-a2')
    await pub.publishAsync('here/x', 'local', { qos: 1 })
    await log.waitFor((m) => m.topic === 'here/x')
    await barrier(pub, log, 'here/end')
    assert.equal(log.on('here/x').length, 1)
    // node b has no subscriber of here/#: NATS did not carry the message to it
    assert.equal(b.app.cluster!.bus.stats.received, received)
  })

  await t.test('a retained flag crosses nodes; $SYS stays per node', async () => {
    const sub = await client(c, 'ret-c')
    const log = new MessageLog(sub)
    await sub.subscribeAsync('cfg/#', { qos: 1 })
    const natsSubs = c.app.cluster!.bus.stats.subscriptions
    await sub.subscribeAsync('$SYS/#', { qos: 0 })
    // no NATS subscription for $SYS/: no node sends its own there
    assert.equal(c.app.cluster!.bus.stats.subscriptions, natsSubs)
    await flushed()
    const pub = await client(a, 'ret-a')
    const sent = a.app.cluster!.bus.stats.sent
    const received = c.app.cluster!.bus.stats.received
    await pub.publishAsync('cfg/mode', 'eco', { qos: 1, retain: true })
    const m = await log.waitFor((x) => x.topic === 'cfg/mode')
    assert.equal(m.payload.toString(), 'eco')
    assert.equal(m.packet.retain, false) // a live message to a subscriber that was there: retain 0 [MQTT-3.3.1-9]
    // two $SYS rounds on every node (one a second): c's subscriber gets c's, and none crossed: a sent only cfg/mode
    await until(() => log.on('$SYS/broker/uptime').length >= 3, 'three $SYS uptime values on node c', 5000)
    assert.equal(a.app.cluster!.bus.stats.sent - sent, 1)
    assert.equal(c.app.cluster!.bus.stats.received - received, 1)
  })

  await t.test('a shared subscription with members on two nodes gets each message once in the cluster', async () => {
    const m1 = await client(b, 'share-b')
    const m2 = await client(c, 'share-c')
    const l1 = new MessageLog(m1)
    const l2 = new MessageLog(m2)
    await m1.subscribeAsync('$share/g1/jobs/+', { qos: 1 })
    await m2.subscribeAsync('$share/g1/jobs/+', { qos: 1 })
    await flushed()
    const pub = await client(a, 'share-pub')
    const n = 40
    for (let i = 0; i < n; i++) await pub.publishAsync(`jobs/${i}`, `j${i}`, { qos: 1 })
    await until(() => l1.messages.length + l2.messages.length >= n, 'every job delivered', 5000)
    const all = [...l1.messages, ...l2.messages].map((m) => m.payload.toString()).sort()
    assert.deepEqual(all, Array.from({ length: n }, (_, i) => `j${i}`).sort())
    assert.ok(l1.messages.length > 0 && l2.messages.length > 0, `both members get some (${l1.messages.length}/${l2.messages.length})`)
  })
})

test('a cluster node reports NATS in /readyz and the bus in /metrics', async (t) => {
  const cluster = await startCluster(2)
  t.after(() => cluster.close())
  const [a, b] = cluster.nodes
  const sub = await connectMqtt(b.wsUrl, { clientId: 'm-sub', protocolVersion: 5 })
  const pub = await connectMqtt(a.wsUrl, { clientId: 'm-pub', protocolVersion: 5 })
  t.after(() => { sub.end(true); pub.end(true) })
  const log = new MessageLog(sub)
  await sub.subscribeAsync('m/#', { qos: 1 })
  await b.app.cluster!.bus.flush()
  await pub.publishAsync('m/1', 'x', { qos: 1 })
  await log.waitFor((m) => m.topic === 'm/1')
  const ready = await fetch(`${a.url}/readyz`).then((r) => r.json()) as { checks: Record<string, { ok: boolean; detail: string }> }
  assert.equal(ready.checks.nats.ok, true)
  assert.match(ready.checks.nats.detail, /^NATS at 127\.0\.0\.1:4222 answers$/)
  const text = async (n: TestServer) => fetch(`${n.url}/metrics`).then((r) => r.text())
  const value = (body: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1])
  assert.ok(value(await text(a), 'mqtt_cluster_messages_sent_total') >= 1)
  assert.ok(value(await text(b), 'mqtt_cluster_messages_received_total') >= 1)
  assert.equal(value(await text(b), 'mqtt_cluster_subscriptions'), 2) // m/# is `m.>` and `m`
  assert.equal(value(await text(a), 'mqtt_cluster_client_ids_owned'), 1)
  assert.equal(value(await text(a), 'mqtt_cluster_nats_connected'), 1)
})
