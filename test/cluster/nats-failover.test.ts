// A NATS server of a 3-server NATS cluster going away does not stop the broker cluster: the nodes' NATS clients move
// to the other servers, messages still cross nodes, and the buckets (3 replicas) still take client-id claims.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import type { MqttClient } from 'mqtt'
import { connectMqtt, delay, MessageLog, until } from '../helpers.ts'
import { startCluster } from './cluster.ts'
import { NATS_SERVER, startNatsCluster } from './nats-servers.ts'

test('a broker cluster on a 3-server NATS cluster survives the loss of one NATS server', { skip: existsSync(NATS_SERVER) ? false : `${NATS_SERVER} is missing (apt-get install nats-server)` }, async (t) => {
  const nats = await startNatsCluster(3)
  // (its streams go with the NATS cluster's store folder: after a server's loss JetStream's API may be busy electing)
  const cluster = await startCluster(2, { config: { natsUrl: nats.url }, keepStreams: true }).catch(async (err: unknown) => {
    await nats.close()
    throw err
  })
  const clients: MqttClient[] = []
  t.after(async () => {
    for (const c of clients) c.end(true)
    // the nodes first, while their NATS servers are still there to leave the cluster gracefully
    await cluster.close()
    await nats.close()
  })
  const [a, b] = cluster.nodes
  const sub = await connectMqtt(b.wsUrl, { clientId: 'fo-sub', protocolVersion: 5 })
  clients.push(sub)
  const log = new MessageLog(sub)
  await sub.subscribeAsync('fo/#', { qos: 1 })
  await Promise.all(cluster.nodes.map((n) => n.app.cluster!.bus.flush()))
  const pub = await connectMqtt(a.wsUrl, { clientId: 'fo-pub', protocolVersion: 5 })
  clients.push(pub)
  await pub.publishAsync('fo/1', 'before', { qos: 1 })
  await log.waitFor((m) => m.payload.toString() === 'before')

  // the servers each node's connections are on: kill one of them (the one node a's main connection uses)
  const server = a.app.cluster!.links.main.info!.port
  await nats.kill(nats.ports.indexOf(server))

  // messages cross again once the NATS clients have moved (they retry every 250 ms)
  const end = Date.now() + 15000
  let i = 0
  while (!log.messages.some((m) => m.payload.toString().startsWith('after'))) {
    assert.ok(Date.now() < end, 'no message crossed nodes within 15 s of the NATS server dying')
    await pub.publishAsync('fo/1', `after-${i++}`, { qos: 1 })
    await delay(100)
  }
  // and from then on every one, in order
  const marks = Array.from({ length: 10 }, (_, k) => `steady-${k}`)
  for (const m of marks) await pub.publishAsync('fo/2', m, { qos: 1 })
  await log.waitForCount('fo/2', 10, 5000)
  assert.deepEqual(log.on('fo/2').map((m) => m.payload.toString()), marks)

  // the ownership bucket (3 replicas) still takes claims: the subscriber's client id connecting on the other node
  // takes its session over from node b
  let subClosed = false
  sub.once('close', () => { subClosed = true })
  // (a client whose CONNECT met JetStream still electing the bucket's new leader is answered Server busy, and
  // connects again, as a real client would)
  for (let attempt = 1; ; attempt++) {
    try {
      clients.push(await connectMqtt(a.wsUrl, { clientId: 'fo-sub', protocolVersion: 5, clean: false }, 10_000))
      break
    } catch (err) {
      if (attempt === 3) throw err
      await delay(500)
    }
  }
  await until(() => subClosed, 'the connection of fo-sub on node b closed once node a took its client id', 10_000)
  assert.equal(await a.app.cluster!.ownership.ownerOf('fo-sub'), 'node-a')
})
