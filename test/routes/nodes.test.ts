// GET /api/nodes through the real app: one node alone (its id, listening address, connection count and settings
// version), and three in-process nodes on the machine's NATS, each listing all three with their MQTT.js clients
// counted; a node whose heartbeat carries an older settings version flagged `behind`, a newer one making the others
// behind, and a heartbeat older than 3 s shown dead. Fake nodes are heartbeats written into the nodes bucket.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { hostname } from 'node:os'
import { Kvm, type KV } from '@nats-io/kv'
import type { MqttClient } from 'mqtt'
import { connectMqtt, delay, startServer, type TestServer } from '../helpers.ts'
import { startCluster } from '../cluster/cluster.ts'
import { nodeIdOf } from '../../src/config.ts'
import type { NodeHeartbeat } from '../../src/cluster/nodes.ts'
import { encodeToken } from '../../src/cluster/keys.ts'

interface Row {
  id: string; address: string; upSince: string; connections: number; settingsVersion: number; lastHeartbeat: string
  alive: boolean; self: boolean; behind: boolean
}
interface Answer { newestSettingsVersion: number; nodes: Row[] }

async function nodesOf(s: TestServer, headers = s.auth): Promise<Answer> {
  const res = await s.app.inject({ method: 'GET', url: '/api/nodes', headers })
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.headers['cache-control'], 'no-store')
  return res.json()
}

/** Polls an async check until it holds (the last failure thrown when it never does). */
async function eventually(check: () => Promise<void>, timeoutMs = 6000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (err) {
      if (Date.now() > end) throw err
      await delay(50)
    }
  }
}

/** Where src/cluster/nodes.ts keeps a node's heartbeat. */
const heartbeatKey = (id: string) => `n.${encodeToken(id)}`

/** A heartbeat of a node that does not exist; a reap marker of its boot written first, so no survivor removes it. */
async function fakeNode(kv: KV, hb: Partial<NodeHeartbeat> & Pick<NodeHeartbeat, 'id'>): Promise<void> {
  const full: NodeHeartbeat = {
    address: '10.0.0.9:8080', upSince: new Date(Date.now() - 60_000).toISOString(), connections: 0, settingsVersion: 1,
    lastHeartbeat: new Date().toISOString(), boot: `fake-${hb.id}`, ...hb,
  }
  await kv.put(`reap.${encodeToken(full.id)}.${encodeToken(full.boot)}`, 'test')
  await kv.put(heartbeatKey(full.id), JSON.stringify(full))
}

test('one node: the answer lists this node alone, with what it runs now', async (t) => {
  const s = await startServer()
  const clients: MqttClient[] = []
  t.after(async () => {
    for (const c of clients) c.end(true)
    await s.close()
  })
  s.app.settingsStore.update({ maxConnections: 900 }, { actor: 'test' })
  for (const id of ['meter-1', 'meter-2']) clients.push(await connectMqtt(s.wsUrl, { clientId: id }))

  const before = Date.now()
  const answer = await nodesOf(s)
  const version = s.app.settingsStore.current().version
  assert.deepEqual(Object.keys(answer).sort(), ['newestSettingsVersion', 'nodes'])
  assert.equal(answer.newestSettingsVersion, version)
  assert.equal(answer.nodes.length, 1)
  const [n] = answer.nodes
  assert.deepEqual(Object.keys(n).sort(), ['address', 'alive', 'behind', 'connections', 'id', 'lastHeartbeat', 'self', 'settingsVersion', 'upSince'])
  assert.equal(n.id, nodeIdOf(s.app.config, hostname(), s.port))
  assert.equal(n.address, `127.0.0.1:${s.port}`)
  assert.equal(n.connections, 2)
  assert.equal(n.settingsVersion, version)
  assert.deepEqual([n.alive, n.self, n.behind], [true, true, false])
  assert.ok(Math.abs(Date.parse(n.lastHeartbeat) - before) < 2000, n.lastHeartbeat)
  assert.ok(Date.parse(n.upSince) <= before)

  await t.test('a viewer reads it; no token gets 401', async () => {
    const made = await s.app.inject({ method: 'POST', url: '/api/admin-tokens', headers: s.auth, payload: { name: 'wall', role: 'viewer' } })
    assert.equal(made.statusCode, 201, made.body)
    assert.equal((await nodesOf(s, { authorization: `Bearer ${made.json().token}` })).nodes.length, 1)
    assert.equal((await s.app.inject({ method: 'GET', url: '/api/nodes' })).statusCode, 401)
  })

  await t.test('documented in OpenAPI', async () => {
    const doc = (await s.app.inject({ method: 'GET', url: '/docs/json' })).json()
    const get = doc.paths['/api/nodes']?.get
    assert.ok(get, 'GET /api/nodes in the OpenAPI document')
    const schema = get.responses['200'].content['application/json'].schema
    assert.ok(schema.properties.nodes.items.properties.behind)
  })
})

test('three nodes: each lists all three with its clients; behind and dead nodes flagged', { timeout: 60_000 }, async (t) => {
  const cluster = await startCluster(3)
  const clients: MqttClient[] = []
  t.after(async () => {
    for (const c of clients) c.end(true)
    await cluster.close()
  })
  const [a, b, c] = cluster.nodes
  const ids = ['node-a', 'node-b', 'node-c']
  const kv = await new Kvm(a.app.cluster!.links.main).open(`${cluster.name}_nodes`)

  await t.test('every node lists the three, itself marked self, with their clients counted', async () => {
    for (let i = 0; i < 3; i++) clients.push(await connectMqtt(a.wsUrl, { clientId: `on-a-${i}` }))
    clients.push(await connectMqtt(b.wsUrl, { clientId: 'on-b-0' }))
    const want = { 'node-a': 3, 'node-b': 1, 'node-c': 0 }
    for (const [i, node] of [a, b, c].entries()) {
      await eventually(async () => {
        const answer = await nodesOf(node)
        assert.deepEqual(answer.nodes.map((n) => n.id), ids)
        assert.deepEqual(Object.fromEntries(answer.nodes.map((n) => [n.id, n.connections])), want)
        assert.deepEqual(answer.nodes.map((n) => n.self), ids.map((_, j) => j === i))
        assert.ok(answer.nodes.every((n) => n.alive && !n.behind))
        assert.deepEqual(answer.nodes.map((n) => n.address), [a, b, c].map((x) => `127.0.0.1:${x.port}`))
      })
    }
  })

  await t.test('a client that leaves is no longer counted within a few heartbeats', async () => {
    clients.pop()!.end(true)
    await eventually(async () => {
      const row = (await nodesOf(c)).nodes.find((n) => n.id === 'node-b')
      assert.equal(row?.connections, 0)
    })
  })

  await t.test('a node running an older settings version is flagged behind', async () => {
    for (const node of cluster.nodes) node.app.settingsStore.update({ maxConnections: 900 }, { actor: 'test' })
    const newest = a.app.settingsStore.current().version
    await fakeNode(kv, { id: 'node-old', settingsVersion: newest - 1 })
    for (const node of cluster.nodes) {
      await eventually(async () => {
        const answer = await nodesOf(node)
        assert.equal(answer.newestSettingsVersion, newest)
        const old = answer.nodes.find((n) => n.id === 'node-old')
        assert.deepEqual([old?.settingsVersion, old?.behind, old?.alive, old?.self], [newest - 1, true, true, false])
        assert.ok(answer.nodes.filter((n) => n.id !== 'node-old').every((n) => !n.behind && n.settingsVersion === newest))
      })
    }
    await kv.delete(heartbeatKey('node-old'))
  })

  await t.test('a node running a newer version makes the others behind', async () => {
    const mine = a.app.settingsStore.current().version
    await fakeNode(kv, { id: 'node-new', settingsVersion: mine + 3 })
    const answer = await nodesOf(b)
    assert.equal(answer.newestSettingsVersion, mine + 3)
    assert.deepEqual(answer.nodes.filter((n) => n.behind).map((n) => n.id), ids)
    await kv.delete(heartbeatKey('node-new'))
  })

  await t.test('a node is judged by its heartbeats changing, not by their clocks; a leaving node is dead at once; a record of another build is left out', async () => {
    // a node whose clock is an hour behind: alive while its heartbeat changes (this node's own clock decides)
    await fakeNode(kv, { id: 'node-skewed', lastHeartbeat: new Date(Date.now() - 3_600_000).toISOString() })
    await fakeNode(kv, { id: 'node-leaving', leaving: true })
    await kv.put(heartbeatKey('node-odd'), JSON.stringify({ id: 'node-odd', connections: 'many' }))
    const answer = await nodesOf(a)
    assert.equal(answer.nodes.find((n) => n.id === 'node-skewed')?.alive, true)
    assert.equal(answer.nodes.find((n) => n.id === 'node-leaving')?.alive, false)
    assert.ok(answer.nodes.filter((n) => n.id !== 'node-leaving').every((n) => n.alive))
    assert.equal(answer.nodes.some((n) => n.id === 'node-odd'), false)
    await kv.delete(heartbeatKey('node-skewed'))
    await kv.delete(heartbeatKey('node-leaving'))
  })

  await t.test('a live fake node goes dead after 3 s without a heartbeat', async () => {
    await fakeNode(kv, { id: 'node-quiet' })
    assert.equal((await nodesOf(c)).nodes.find((n) => n.id === 'node-quiet')?.alive, true)
    await eventually(async () => {
      assert.equal((await nodesOf(c)).nodes.find((n) => n.id === 'node-quiet')?.alive, false)
    }, 5000)
  })
})
