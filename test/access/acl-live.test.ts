// Topic ACLs over real connections: rules set through the API refuse filters in the SUBACK, keep forbidden
// PUBLISHes from being routed (v5 says so), refuse a forbidden Will at CONNECT, reach live subscriptions at their next
// message, follow aclDefault, substitute %u / %c, and are counted in /metrics and /api/connections.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IConnackPacket, IPubackPacket, IPublishPacket, IPubrecPacket, ISubackPacket } from 'mqtt-packet'
import { Writable } from 'node:stream'
import { connectMqtt, delay, RawClient, startServer, type TestServer, until, apiCall } from '../helpers.ts'

const api = apiCall

const rule = async (server: TestServer, r: Record<string, unknown>) => {
  const res = await api(server, 'POST', '/api/acl', r)
  assert.equal(res.status, 201, JSON.stringify(res.json))
  return res.json as { id: number }
}

const publishes = (c: RawClient) => c.packets.filter((p): p is IPublishPacket => p.cmd === 'publish')


test('a rule denying test/nosubscribe: that filter gets SUBACK 0x80 (3.1.1) / 0x87 (5.0), the others in the packet are granted', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  await rule(server, { topic: 'test/nosubscribe', action: 'subscribe', permission: 'deny', comment: 'as the Paho test_subscribe_failure expects' })
  for (const v of [4, 5] as const) {
    const c = await RawClient.open(server.wsUrl, { protocolVersion: v })
    t.after(() => c.close())
    await c.connect({ clientId: `nosub-${v}` }, v)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'test/nosubscribe', qos: 2 }, { topic: 'test/ok', qos: 1 }] }, v)
    const suback = await c.nextPacket('suback') as ISubackPacket
    assert.deepEqual(suback.granted, [v === 5 ? 0x87 : 0x80, 1])
  }
  // a filter that only overlaps the denied topic is granted, and the denied topic's messages are held back from it
  const wide = await RawClient.open(server.wsUrl)
  t.after(() => wide.close())
  await wide.connect({ clientId: 'wide' })
  wide.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'test/#', qos: 0 }] })
  assert.deepEqual((await wide.nextPacket('suback') as ISubackPacket).granted, [0])
  const pub = await RawClient.open(server.wsUrl)
  t.after(() => pub.close())
  await pub.connect({ clientId: 'nosub-pub' })
  pub.send({ cmd: 'publish', topic: 'test/nosubscribe', payload: Buffer.from('held back'), qos: 0, retain: false, dup: false })
  pub.send({ cmd: 'publish', topic: 'test/ok', payload: Buffer.from('through'), qos: 0, retain: false, dup: false })
  assert.equal((await wide.nextPacket('publish') as IPublishPacket).topic, 'test/ok')
  await delay(100)
  assert.equal(publishes(wide).length, 0)
})

test('a forbidden PUBLISH is not routed: v5 PUBACK/PUBREC 0x87, v3.1.1 acknowledged and dropped; counted', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  await rule(server, { topic: 'secret/#', action: 'publish', permission: 'deny' })
  const sub = await RawClient.open(server.wsUrl)
  t.after(() => sub.close())
  await sub.connect({ clientId: 'listener' })
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 1 }] })
  assert.deepEqual((await sub.nextPacket('suback') as ISubackPacket).granted, [1], 'subscribing is not what is denied')

  const v5 = await RawClient.open(server.wsUrl, { protocolVersion: 5 })
  t.after(() => v5.close())
  await v5.connect({ clientId: 'pub5' }, 5)
  v5.send({ cmd: 'publish', topic: 'secret/a', payload: Buffer.from('no'), qos: 1, messageId: 1, retain: false, dup: false }, 5)
  assert.equal((await v5.nextPacket('puback') as IPubackPacket).reasonCode, 0x87)
  v5.send({ cmd: 'publish', topic: 'secret/b', payload: Buffer.from('no'), qos: 2, messageId: 2, retain: false, dup: false }, 5)
  assert.equal((await v5.nextPacket('pubrec') as IPubrecPacket).reasonCode, 0x87)
  const v3 = await RawClient.open(server.wsUrl)
  t.after(() => v3.close())
  await v3.connect({ clientId: 'pub3' })
  v3.send({ cmd: 'publish', topic: 'secret/c', payload: Buffer.from('no'), qos: 1, messageId: 1, retain: false, dup: false })
  assert.equal((await v3.nextPacket('puback') as IPubackPacket).messageId, 1)
  v3.send({ cmd: 'publish', topic: 'open/d', payload: Buffer.from('yes'), qos: 1, messageId: 2, retain: false, dup: false })
  await until(() => publishes(sub).length === 1, 'the allowed one')
  await delay(100)
  assert.deepEqual(publishes(sub).map((p) => p.topic), ['open/d'])

  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  assert.match(metrics, /^mqtt_acl_denied_total\{action="publish"\} 3$/m)
  const conns = await api(server, 'GET', '/api/connections')
  assert.deepEqual(conns.json.items.find((c: { clientId: string }) => c.clientId === 'pub5').aclDenied, { publish: 2, subscribe: 0, deliver: 0 })
})

test('a rule added while a client is subscribed stops what it forbids at the next message; deleting it lets it through again', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const sub = await connectMqtt(server.wsUrl, { clientId: 'live-sub' })
  t.after(() => sub.end(true))
  const got: string[] = []
  sub.on('message', (topic) => got.push(topic))
  await sub.subscribeAsync('live/#', { qos: 1 })
  const pub = await connectMqtt(server.wsUrl, { clientId: 'live-pub' })
  t.after(() => pub.end(true))
  await pub.publishAsync('live/secret', 'a', { qos: 1 })
  await until(() => got.length === 1, 'before the rule')
  const r = await rule(server, { topic: 'live/secret', action: 'subscribe', permission: 'deny' })
  await pub.publishAsync('live/secret', 'b', { qos: 1 })
  await pub.publishAsync('live/open', 'c', { qos: 1 })
  await until(() => got.length === 2, 'the open one')
  await delay(100)
  assert.deepEqual(got, ['live/secret', 'live/open'])
  assert.equal((await api(server, 'DELETE', `/api/acl/${r.id}`)).status, 204)
  await pub.publishAsync('live/secret', 'd', { qos: 1 })
  await until(() => got.length === 3, 'after the delete')
  assert.deepEqual(got, ['live/secret', 'live/open', 'live/secret'])
})

test('aclDefault deny with %u and %c rules: each user its own tree; a Will outside it refuses the CONNECT', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  for (const u of ['alice', 'bob']) assert.equal((await api(server, 'POST', '/api/mqtt-users', { username: u, password: `${u}-pw-123` })).status, 201)
  await rule(server, { topic: 'users/%u/#', action: 'all', permission: 'allow' })
  await rule(server, { topic: 'devices/%c/#', action: 'publish', permission: 'allow' })
  assert.equal((await api(server, 'PATCH', '/api/settings', { values: { aclDefault: 'deny' } })).status, 200)

  const alice = await RawClient.open(server.wsUrl, { protocolVersion: 5 })
  t.after(() => alice.close())
  await alice.connect({ clientId: 'a1', username: 'alice', password: Buffer.from('alice-pw-123') }, 5)
  const pub = async (c: RawClient, topic: string, id: number) => {
    c.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: id, retain: false, dup: false }, 5)
    return ((await c.nextPacket('puback')) as IPubackPacket).reasonCode ?? 0
  }
  assert.equal(await pub(alice, 'users/alice/t', 1), 0)
  assert.equal(await pub(alice, 'users/bob/t', 2), 0x87)
  assert.equal(await pub(alice, 'devices/a1/t', 3), 0)
  assert.equal(await pub(alice, 'devices/other/t', 4), 0x87)
  alice.send({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'users/alice/#', qos: 0 }, { topic: 'users/#', qos: 0 }] }, 5)
  assert.deepEqual((await alice.nextPacket('suback') as ISubackPacket).granted, [0, 0x87])

  // an anonymous client has no %u tree; a client id with a wildcard cannot widen devices/%c/#
  const anon = await RawClient.open(server.wsUrl, { protocolVersion: 5 })
  t.after(() => anon.close())
  await anon.connect({ clientId: '+' }, 5)
  assert.equal(await pub(anon, 'devices/x/t', 1), 0x87)
  assert.equal(await pub(anon, 'users//t', 2), 0x87)

  const willed = await RawClient.open(server.wsUrl, { protocolVersion: 5 })
  t.after(() => willed.close())
  const refused = await willed.connect({ clientId: 'w1', username: 'bob', password: Buffer.from('bob-pw-123'),
    will: { topic: 'users/alice/will', payload: Buffer.from('x'), qos: 0, retain: false } }, 5) as IConnackPacket
  assert.equal(refused.reasonCode, 0x87)
  const ok = await RawClient.open(server.wsUrl)
  t.after(() => ok.close())
  assert.equal((await ok.connect({ clientId: 'w2', username: 'bob', password: Buffer.from('bob-pw-123'),
    will: { topic: 'users/bob/will', payload: Buffer.from('x'), qos: 0, retain: false } }) as IConnackPacket).returnCode, 0)
})

test('aclRevealDenials false: MQTT 5 refusals say Unspecified error (0x80) instead of Not authorized', async (t) => {
  const server = await startServer({ settings: { aclRevealDenials: false } })
  t.after(() => server.close())
  await rule(server, { topic: 'hidden/#', action: 'all', permission: 'deny' })
  const c = await RawClient.open(server.wsUrl, { protocolVersion: 5 })
  t.after(() => c.close())
  await c.connect({ clientId: 'quiet' }, 5)
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'hidden/x', qos: 1 }, { topic: 'open/x', qos: 1 }] }, 5)
  assert.deepEqual((await c.nextPacket('suback') as ISubackPacket).granted, [0x80, 1])
  c.send({ cmd: 'publish', topic: 'hidden/y', payload: Buffer.from('n'), qos: 1, messageId: 2, retain: false, dup: false }, 5)
  assert.equal((await c.nextPacket('puback') as IPubackPacket).reasonCode, 0x80)
})

test('repeated denials are summarised: one log line for a burst, with the counts', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const server = await startServer({ config: { logLevel: 'info' }, logger: { level: 'info', stream } })
  t.after(() => server.close())
  await rule(server, { topic: 'deny/#', action: 'publish', permission: 'deny' })
  const c = await RawClient.open(server.wsUrl)
  t.after(() => c.close())
  await c.connect({ clientId: 'noisy' })
  for (let i = 0; i < 50; i++) c.send({ cmd: 'publish', topic: `deny/${i}`, payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
  await until(() => server.app.broker.stats.aclDeniedPublish === 50, '50 denials')
  const denialLines = lines.filter((l) => l.includes('ACL denied'))
  assert.equal(denialLines.length, 1, 'one line, not fifty')
  assert.match(denialLines[0], /"clientId":"noisy"/)
  const conns = await api(server, 'GET', '/api/connections')
  assert.deepEqual(conns.json.items.find((x: { clientId: string }) => x.clientId === 'noisy').aclDenied, { publish: 50, subscribe: 0, deliver: 0 })
})
