// Three broker nodes as real processes on one NATS and one PostgreSQL database: what a client and an operator see of
// the cluster. Cross-node delivery at QoS 0/1/2, retained messages, take-over across nodes, a session resumed on
// another node, kill -9 of a node (its Wills published by a survivor, its queued QoS 1 messages delivered), a settings
// PATCH in force on live connections of every node within 1 s, and the failure log of every node seen from one.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { apiCall, connectMqtt, MessageLog, RawClient, tempDir, TEST_TOKEN, until, type TestServer } from '../helpers.ts'
import { BrokerProcess } from '../state/processes.ts'
import { createTestDatabase } from '../control/pg.ts'
import { clusterName, dropCluster, NATS_URL } from './cluster.ts'

/** Each step's bound: a step that hangs fails by its name, and the steps after it still run. */
const STEP = { timeout: 60_000 }

/** What apiCall needs of a server, for a node in another process. */
const api = (node: BrokerProcess) => ({ url: `http://127.0.0.1:${node.port}`, auth: { authorization: `Bearer ${TEST_TOKEN}` } }) as unknown as TestServer

test('a cluster of three broker processes', async (t) => {
  const db = await createTestDatabase()
  const name = clusterName()
  const tmp = tempDir('cluster-')
  const nodes = [1, 2, 3].map((i) => new BrokerProcess(join(tmp.dir, `node-${i}.db`)))
  const clients: MqttClient[] = []
  t.after(async () => {
    for (const c of clients) c.end(true)
    for (const n of nodes) n.kill()
    await dropCluster(name)
    await db.drop()
    tmp.cleanup()
  })
  const env = (i: number) => ({ NATS_URL, DATABASE_URL: db.url, CLUSTER_NAME: name, NODE_ID: `node-${i}`, LOG_LEVEL: 'info' })
  // the first node founds the control plane, the others join it
  await nodes[0].start(env(1))
  await Promise.all([nodes[1].start(env(2)), nodes[2].start(env(3))])
  const [n1, n2, n3] = nodes
  const client = async (node: BrokerProcess, clientId: string, opts: object = {}) => {
    const c = await connectMqtt(node.wsUrl, { clientId, protocolVersion: 5, ...opts }, 8000)
    clients.push(c)
    return c
  }
  /** a subscription is in force on the other nodes once a probe published on one of them arrives */
  const probed = async (sub: MqttClient, log: MessageLog, topic: string, from: BrokerProcess) => {
    const pub = await client(from, `probe-${Math.random().toString(36).slice(2, 8)}`)
    for (let i = 0; log.on(topic).length === 0 && i < 50; i++) {
      await pub.publishAsync(topic, 'probe', { qos: 0 })
      await new Promise((r) => setTimeout(r, 50))
    }
    assert.ok(log.on(topic).length > 0, `the subscription of ${topic} reached the other nodes`)
    pub.end(true)
  }

  /** the node ids node 1 lists, once `gone` has left the list (or as they are after 5 s) */
  const nodesWithout = async (gone: string) => {
    let ids: string[] = []
    for (let i = 0; i < 50; i++) {
      ids = (await apiCall(api(n1), 'GET', '/api/nodes')).json.nodes.map((x: { id: string }) => x.id)
      if (!ids.includes(gone)) break
      await new Promise((r) => setTimeout(r, 100))
    }
    return ids
  }
  const persistent = { clean: false, properties: { sessionExpiryInterval: 600 } }
  /**
   * A persistent session on `node` subscribed to `filter` at QoS 1 (in force on the other nodes: a probe on
   * `probeTopic` from node 1 came), its client gone.
   */
  const offlineSession = async (node: BrokerProcess, clientId: string, filter: string, probeTopic = filter) => {
    const s = await client(node, clientId, persistent)
    await s.subscribeAsync(filter, { qos: 1 })
    await probed(s, new MessageLog(s), probeTopic, n1)
    await new Promise<void>((r) => s.end(false, {}, () => r()))
  }
  /**
   * A watcher on node 1 of `alerts/<clientId>`, and client `clientId` on `node` with a QoS 1 Will there (its record,
   * with the Will, written behind): the watcher's log.
   */
  const willed = async (node: BrokerProcess, clientId: string, payload: string) => {
    const watcher = await client(n1, `${clientId}-watch`)
    const wlog = new MessageLog(watcher)
    await watcher.subscribeAsync(`alerts/${clientId}`, { qos: 1 })
    await client(node, clientId, { will: { topic: `alerts/${clientId}`, payload: Buffer.from(payload), qos: 1, retain: false } })
    await new Promise((r) => setTimeout(r, 200))
    return wlog
  }
  /** A persistent session's client back on `node`: what it gets on `topic` (probes left out), and Session Present. */
  const comeBack = async (node: BrokerProcess, clientId: string, topic: string) => {
    const seen: { got: string[]; present?: boolean } = { got: [] }
    const back = await connectMqtt(node.wsUrl, { clientId, protocolVersion: 5, ...persistent }, 8000, (c) => {
      c.on('connect', (p) => { seen.present = p.sessionPresent })
      c.on('message', (tp, payload) => { if (tp === topic && payload.toString() !== 'probe') seen.got.push(payload.toString()) })
    })
    clients.push(back)
    return seen
  }

  await t.test('every node lists the three nodes', STEP, async () => {
    for (const n of nodes) {
      let ids: string[] = []
      for (let i = 0; i < 50 && ids.length < 3; i++) {
        ids = (await apiCall(api(n), 'GET', '/api/nodes')).json.nodes.map((x: { id: string }) => x.id)
        if (ids.length < 3) await new Promise((r) => setTimeout(r, 100))
      }
      assert.deepEqual(ids, ['node-1', 'node-2', 'node-3'])
    }
  })

  await t.test('QoS 0, 1 and 2 published on one node reach subscribers on the two others', STEP, async () => {
    const s2 = await client(n2, 'x-sub-2')
    const s3 = await client(n3, 'x-sub-3', { protocolVersion: 4 })
    const l2 = new MessageLog(s2)
    const l3 = new MessageLog(s3)
    await s2.subscribeAsync('plant/#', { qos: 2 })
    await s3.subscribeAsync('plant/+/level', { qos: 2 })
    await probed(s2, l2, 'plant/probe/level', n1)
    await probed(s3, l3, 'plant/probe/level', n1)
    const pub = await client(n1, 'x-pub-1')
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(`plant/q${qos}/level`, `qos${qos}`, { qos })
    for (const l of [l2, l3]) {
      for (const qos of [0, 1, 2]) {
        const m = await l.waitFor((x) => x.topic === `plant/q${qos}/level`, 5000)
        assert.equal(m.payload.toString(), `qos${qos}`)
        assert.equal(m.packet.qos, qos)
      }
    }
  })

  await t.test('a retained message set on one node is sent to a new subscriber on another', STEP, async () => {
    const pub = await client(n1, 'r-pub-1')
    await pub.publishAsync('site/config', 'v1', { qos: 1, retain: true })
    // the retained bucket reaches every node's copy in a moment: a subscriber that comes then gets it
    let got: string | null = null
    for (let i = 0; i < 50 && got === null; i++) {
      const sub = await client(n3, `r-sub-3-${i}`)
      const log = new MessageLog(sub)
      await sub.subscribeAsync('site/#', { qos: 1 })
      got = await log.waitFor((m) => m.topic === 'site/config', 200).then((m) => m.payload.toString(), () => null)
      sub.end(true)
    }
    assert.equal(got, 'v1')
  })

  await t.test('the same client id on another node takes the connection over (v5: DISCONNECT 0x8E); one connection in the end', STEP, async () => {
    const first = await client(n1, 'dev-42')
    const disconnected = new Promise<number | undefined>((r) => first.once('disconnect', (p) => r(p.reasonCode)))
    await client(n2, 'dev-42')
    assert.equal(await disconnected, 0x8e)
    // and two connecting at the same moment on two nodes end with exactly one
    const a = connectMqtt(n1.wsUrl, { clientId: 'dev-43', protocolVersion: 5 }, 8000).then((c) => { clients.push(c); return c }, () => null)
    const b = connectMqtt(n3.wsUrl, { clientId: 'dev-43', protocolVersion: 5 }, 8000).then((c) => { clients.push(c); return c }, () => null)
    await Promise.all([a, b])
    let holders: string[] = []
    for (let i = 0; i < 50; i++) {
      holders = []
      for (const [k, n] of nodes.entries()) {
        const list = (await apiCall(api(n), 'GET', '/api/connections')).json.items as { clientId: string }[]
        if (list.some((c) => c.clientId === 'dev-43')) holders.push(`node-${k + 1}`)
      }
      if (holders.length === 1) break
      await new Promise((r) => setTimeout(r, 100))
    }
    assert.equal(holders.length, 1, `dev-43 connected on ${holders.join(', ')}`)
  })

  await t.test('a session made on one node resumes on another with the messages queued meanwhile', STEP, async () => {
    await offlineSession(n2, 'roamer', 'fleet/roamer/#', 'fleet/roamer/probe')
    const pub = await client(n1, 'roamer-pub')
    for (let i = 0; i < 3; i++) await pub.publishAsync('fleet/roamer/cmd', `c${i}`, { qos: 1 })
    // back on node 3: the session (held offline by node 2) moves, with its queue
    const { got, present } = await comeBack(n3, 'roamer', 'fleet/roamer/cmd')
    assert.equal(present, true)
    await until(() => got.length >= 3, 'the three queued messages', 5000)
    assert.deepEqual(got, ['c0', 'c1', 'c2'])
  })

  await t.test('a settings PATCH on one node is in force on live connections of every node within 1 s', STEP, async () => {
    // a socket on each node that never sends CONNECT, under a long connect timeout
    const raws = await Promise.all(nodes.map((n) => RawClient.open(n.wsUrl)))
    const before = (await apiCall(api(n1), 'GET', '/api/settings')).json.version as number
    const r = await apiCall(api(n1), 'PATCH', '/api/settings', { values: { connectTimeoutMs: 400 }, comment: 'cluster test' })
    assert.equal(r.status, 200)
    // from the PATCH's answer (the version is committed then), each node asked at once and again until it runs it
    const patched = Date.now()
    await Promise.all(nodes.map(async (n, k) => {
      for (;;) {
        const v = (await apiCall(api(n), 'GET', '/api/settings')).json
        if (v.version === before + 1) {
          assert.equal(v.values.connectTimeoutMs, 400)
          return
        }
        assert.ok(Date.now() - patched < 1000, `node-${k + 1} runs version ${before + 1} within 1 s of the PATCH's answer`)
        await new Promise((r) => setTimeout(r, 20))
      }
    }))
    // each waiting socket is closed by the new timeout, counted from its open: all within about 400 ms more
    const closedIn = await Promise.all(raws.map((raw) => raw.closed(3000).then(() => Date.now() - patched)))
    for (const ms of closedIn) assert.ok(ms < 2000, `closed ${ms} ms after the PATCH`)
  })

  await t.test('the failure log of every node is seen from one', STEP, async () => {
    // the three connect timeouts just above, one per node, all listed on node 1
    let seen = new Set<string>()
    for (let i = 0; i < 100 && seen.size < 3; i++) {
      const items = (await apiCall(api(n1), 'GET', '/api/failures?reason=connect_timeout&limit=50')).json.items as { node: string }[]
      seen = new Set(items.map((x) => x.node))
      if (seen.size < 3) await new Promise((r) => setTimeout(r, 100))
    }
    assert.deepEqual([...seen].sort(), ['node-1', 'node-2', 'node-3'])
  })

  await t.test('a session moving between living nodes while QoS 1 messages keep coming loses none of them', STEP, async () => {
    const got = new Set<string>()
    const onMsg = (c: MqttClient) => c.on('message', (topic, payload) => { if (topic === 'stream/mover') got.add(payload.toString()) })
    const first = await connectMqtt(n1.wsUrl, { clientId: 'mover', protocolVersion: 5, ...persistent }, 8000, onMsg)
    clients.push(first)
    await first.subscribeAsync('stream/mover', { qos: 1 })
    const flog = new MessageLog(first)
    await probed(first, flog, 'stream/mover', n3)
    got.clear()
    const pub = await client(n3, 'mover-pub')
    let sent = 0
    let publishing = true
    const publisher = (async () => {
      while (publishing) {
        await pub.publishAsync('stream/mover', `m${sent}`, { qos: 1 })
        sent++
        await new Promise((r) => setTimeout(r, 2))
      }
    })()
    await new Promise((r) => setTimeout(r, 200))
    // the same client id on node 2 while messages flow: node 1 lets the session go, node 2 routes it
    const second = await connectMqtt(n2.wsUrl, { clientId: 'mover', protocolVersion: 5, ...persistent }, 8000, onMsg)
    clients.push(second)
    await new Promise((r) => setTimeout(r, 300))
    publishing = false
    await publisher
    await until(() => got.size >= sent, `all ${sent} messages (QoS 1 acknowledged to the publisher) delivered across the move`, 8000)
      .catch(() => assert.fail(`${sent - got.size} of ${sent} messages never came: ${Array.from({ length: sent }, (_, i) => `m${i}`).filter((m) => !got.has(m)).slice(0, 10).join(', ')}`))
  })

  await t.test('kill -9 of a node: its Wills are published by a survivor; its queued QoS 1 messages, and those published before the survivor took its sessions up, are delivered on another node', STEP, async () => {
    const watcher = await client(n1, 'will-watch')
    const wlog = new MessageLog(watcher)
    await watcher.subscribeAsync('alerts/#', { qos: 1 })
    // a client on node 3 with a Will, and a persistent session on node 3 that is offline with messages queued
    await client(n3, 'doomed', { will: { topic: 'alerts/doomed', payload: Buffer.from('gone'), qos: 1, retain: false } })
    await offlineSession(n3, 'parked', 'jobs/parked')
    const pub = await client(n2, 'jobs-pub')
    for (let i = 0; i < 3; i++) await pub.publishAsync('jobs/parked', `job${i}`, { qos: 1 })
    // (the queue is written behind to JetStream within ~20 ms)
    await new Promise((r) => setTimeout(r, 300))

    const killedAt = await n3.crash()
    // published after the kill, before a survivor holds the session: kept by JetStream, given to it when taken up
    for (let i = 3; i < 5; i++) await pub.publishAsync('jobs/parked', `job${i}`, { qos: 1 })
    const will = await wlog.waitFor((m) => m.topic === 'alerts/doomed', 10_000)
    const willMs = Date.now() - killedAt
    assert.equal(will.payload.toString(), 'gone')
    assert.ok(willMs < 8000, `the Will came ${willMs} ms after the kill`)
    t.diagnostic(`Will of a client of the killed node published by a survivor ${willMs} ms after kill -9`)

    const { got } = await comeBack(n2, 'parked', 'jobs/parked')
    await until(() => got.length >= 5, 'the five messages: three queued on the killed node, two published after it died', 10_000)
      .catch((err: Error) => { throw new Error(`${err.message}; got ${JSON.stringify(got)}`) })
    assert.deepEqual(got, ['job0', 'job1', 'job2', 'job3', 'job4'])
    // the dead node leaves the list
    assert.deepEqual(await nodesWithout('node-3'), ['node-1', 'node-2'])
  })

  await t.test('a client that reconnects at once after its node died gets no second Will, and its Will is not lost', STEP, async () => {
    await n3.start(env(3))
    const wlog = await willed(n3, 'phoenix', 'fell')
    await n3.crash()
    // back at once on node 1, before any survivor found node 3 dead: node 1 reads the Will its crashed connection left
    await client(n1, 'phoenix')
    await wlog.waitFor((m) => m.topic === 'alerts/phoenix', 6000)
    // and once only, also after node 3's sessions were taken up (a survivor finds it dead within ~4 s)
    await new Promise((r) => setTimeout(r, 4500))
    assert.equal(wlog.on('alerts/phoenix').length, 1)
  })

  await t.test('a node restarted at once under the same NODE_ID: the sessions its previous boot held are taken up', STEP, async () => {
    await n3.start(env(3))
    await offlineSession(n3, 'sleeper', 'wake/sleeper')
    await new Promise((r) => setTimeout(r, 200))
    await n3.crash()
    await n3.start(env(3))
    const pub = await client(n1, 'sleeper-pub')
    for (let i = 0; i < 3; i++) await pub.publishAsync('wake/sleeper', `w${i}`, { qos: 1 })
    const { got } = await comeBack(n3, 'sleeper', 'wake/sleeper')
    await until(() => got.length >= 3, 'the three messages published while node 3 restarted', 8000)
    assert.deepEqual([...new Set(got)], ['w0', 'w1', 'w2'])
  })

  await t.test('a node stopped gracefully (SIGTERM): a survivor takes its offline sessions up at once', STEP, async () => {
    await offlineSession(n3, 'napper', 'nap/napper')
    const pub = await client(n1, 'napper-pub')
    await pub.publishAsync('nap/napper', 'before-stop', { qos: 1 })
    const stoppedAt = Date.now()
    await n3.stop()
    // published right after the stop, before or while a survivor takes the session up: kept, then given to it
    await pub.publishAsync('nap/napper', 'after-stop', { qos: 1 })
    assert.deepEqual(await nodesWithout('node-3'), ['node-1', 'node-2'])
    t.diagnostic(`a gracefully stopped node's sessions taken up ${Date.now() - stoppedAt} ms after its SIGTERM`)
    const { got } = await comeBack(n2, 'napper', 'nap/napper')
    await until(() => got.length >= 2, 'the message queued before the stop and the one published after it', 8000)
    assert.deepEqual([...new Set(got)], ['before-stop', 'after-stop'])
  })

  await t.test('a node stalled for longer than a survivor waits is taken for dead, and stops when it wakes (it writes nothing over the survivor)', STEP, async () => {
    await n3.start(env(3))
    const wlog = await willed(n3, 'frozen', 'stalled')
    const child = n3.child!
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    // the whole process stops: no heartbeat, no answer to a ping
    child.kill('SIGSTOP')
    await wlog.waitFor((m) => m.topic === 'alerts/frozen', 10_000)
    assert.deepEqual(await nodesWithout('node-3'), ['node-1', 'node-2'])
    child.kill('SIGCONT')
    // awake, it finds the marker of its own boot: it exits at once instead of serving what a survivor holds now
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 5000))])
    assert.equal(code, 1)
    n3.child = null
  })
})
