// The /api/retained HTTP contract through the real app, with retained messages published by real MQTT.js clients:
// the list by prefix and its paging, one message read (v5 properties, a binary payload, topics that need URL
// encoding), the text preview rule, one deleted (a new subscriber then gets nothing), deleted by prefix (and the
// refusal of an empty prefix), expired messages hidden, a deletion that survives a restart, 400, 401, 404, OpenAPI.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { InjectOptions } from 'fastify'
import type { MqttClient } from 'mqtt'
import { brokerKit, connectMqtt, startServer, tempDir, TEST_TOKEN, until, type TestServer } from '../helpers.ts'
import { payloadPreview, PREVIEW_BYTES } from '../../src/routes/retained.ts'

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }
type Method = 'GET' | 'DELETE'

const call = (s: TestServer, method: Method, url: string, headers: Record<string, string> = AUTH) =>
  s.app.inject({ method, url, headers } as InjectOptions)
const one = (topic: string) => `/api/retained/${encodeURIComponent(topic)}`
const list = async (s: TestServer, q: Record<string, string | number> = {}) => {
  const res = await call(s, 'GET', `/api/retained?${new URLSearchParams(Object.entries(q).map(([k, v]) => [k, String(v)]))}`)
  assert.equal(res.statusCode, 200, res.body)
  return res.json() as { items: Array<Record<string, unknown> & { topic: string }>; next: string | null; stored: { messages: number; bytes: number } }
}

/** Publishes retained QoS 1 messages and returns once each is acknowledged (the store holds them by then). */
async function retain(pub: MqttClient, messages: Record<string, string | Buffer>) {
  for (const [topic, payload] of Object.entries(messages)) await pub.publishAsync(topic, payload, { qos: 1, retain: true })
}

test('list by prefix, by topic, paged across pages; read one with its v5 properties and a binary payload', async (t) => {
  const kit = await brokerKit(t)
  const s = kit.server
  const pub = await kit.mqtt({ protocolVersion: 5 })
  await pub.publishAsync('devices/7/config', '{"interval":30}', {
    qos: 1, retain: true,
    properties: {
      contentType: 'application/json', responseTopic: 'devices/7/ack', payloadFormatIndicator: true,
      correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]), userProperties: { source: 'fleet', tag: ['a', 'b'] },
      messageExpiryInterval: 3600,
    },
  })
  await pub.publishAsync('devices/7/firmware', Buffer.from([0x00, 0xff, 0x10, 0x80]), { qos: 0, retain: true })
  await retain(pub, { 'devices/10/config': 'ten', 'devices/70/config': 'seventy', 'devices/8/config': 'eight', 'other/x': 'x' })
  await until(() => s.app.broker.retained.size === 6, 'the QoS 0 retained message is stored')

  const all = await list(s, { prefix: 'devices/' })
  assert.deepEqual(all.items.map((i) => i.topic), ['devices/10/config', 'devices/7/config', 'devices/7/firmware', 'devices/70/config', 'devices/8/config'])
  assert.equal(all.next, null)
  assert.deepEqual(all.stored, { messages: 6, bytes: s.app.broker.retained.bytes })
  assert.deepEqual((await list(s, { prefix: 'devices/7/' })).items.map((i) => i.topic), ['devices/7/config', 'devices/7/firmware'])
  assert.deepEqual((await list(s, { prefix: 'devices/7' })).items.map((i) => i.topic), ['devices/7/config', 'devices/7/firmware', 'devices/70/config'])
  assert.deepEqual((await list(s, { prefix: 'nothing/' })).items, [])
  assert.equal((await list(s)).items.length, 6, 'no prefix: every topic')

  // paging: `next` is the last topic of a page and goes back as `after`
  const seen: string[] = []
  let after: string | null = null
  let pages = 0
  do {
    const page = await list(s, { prefix: 'devices/', limit: 2, ...(after === null ? {} : { after }) })
    seen.push(...page.items.map((i) => i.topic))
    after = page.next
    pages++
    if (after !== null) assert.equal(after, page.items.at(-1)!.topic)
  } while (after !== null)
  assert.equal(pages, 3)
  assert.deepEqual(seen, all.items.map((i) => i.topic))

  const config = all.items.find((i) => i.topic === 'devices/7/config')!
  const expiresAt = Date.parse(config.expiresAt as string)
  assert.ok(Math.abs(expiresAt - (Date.now() + 3600_000)) < 10_000, `expiresAt an hour ahead: ${config.expiresAt}`)
  assert.deepEqual({ ...config, expiresAt: 0 }, {
    topic: 'devices/7/config', qos: 1, payloadBytes: 15, payloadPreview: '{"interval":30}', expiresAt: 0,
    properties: {
      contentType: 'application/json', responseTopic: 'devices/7/ack', payloadFormatIndicator: true,
      correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString('base64'), userProperties: { source: 'fleet', tag: ['a', 'b'] },
    },
  })
  assert.equal('payloadBase64' in config, false, 'the list holds no whole payloads')

  const read = await call(s, 'GET', one('devices/7/config'))
  assert.equal(read.statusCode, 200, read.body)
  assert.equal(read.headers['cache-control'], 'no-store')
  assert.deepEqual(read.json(), { ...config, payloadBase64: Buffer.from('{"interval":30}').toString('base64') })

  const binary = (await call(s, 'GET', one('devices/7/firmware'))).json()
  assert.deepEqual(binary, {
    topic: 'devices/7/firmware', qos: 0, payloadBytes: 4, payloadPreview: null, expiresAt: null,
    payloadBase64: Buffer.from([0x00, 0xff, 0x10, 0x80]).toString('base64'),
    properties: { contentType: null, responseTopic: null, payloadFormatIndicator: null, correlationData: null, userProperties: null },
  })
  // the `/` of a topic may also travel as it is
  assert.equal((await call(s, 'GET', '/api/retained/devices/7/firmware')).json().topic, 'devices/7/firmware')
})

test('topics that need URL encoding: spaces, %, unicode, and + or # in the URL are decoded, not matched', async (t) => {
  const kit = await brokerKit(t)
  const s = kit.server
  const pub = await kit.mqtt({ protocolVersion: 4 })
  const topics = ['site a/room 1', '100%/done', '%25/literal', 'ünïcødé/名前/😀', 'a?b&c=d', '<img src=x onerror=alert(1)>', '/leading/slash', 'trailing/']
  for (const topic of topics) await retain(pub, { [topic]: `payload of ${topic}` })
  for (const topic of topics) {
    const res = await call(s, 'GET', one(topic))
    assert.equal(res.statusCode, 200, `${topic}: ${res.body}`)
    assert.equal(res.json().topic, topic)
    assert.equal(res.json().payloadPreview, `payload of ${topic}`)
  }
  // a prefix in the query string is decoded the same way (`+` there would be a space: encode it)
  assert.deepEqual((await list(s, { prefix: '100%' })).items.map((i) => i.topic), ['100%/done'])
  assert.deepEqual((await list(s, { prefix: 'site a/' })).items.map((i) => i.topic), ['site a/room 1'])
  assert.deepEqual((await list(s, { prefix: '%25' })).items.map((i) => i.topic), ['%25/literal'])
  // no topic name holds + or #: as a path they are names to look up (decoded), never wildcards
  for (const name of ['site a/+', '#', 'site a/#', '+/room 1']) {
    const res = await call(s, 'GET', one(name))
    assert.equal(res.statusCode, 404, name)
    assert.deepEqual(res.json(), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: `there is no retained message on topic ${JSON.stringify(name)}` })
  }
  assert.equal((await call(s, 'GET', '/api/retained/100%25%2Fdone')).json().topic, '100%/done')
  assert.equal((await call(s, 'GET', '/api/retained/%2525%2Fliteral')).json().topic, '%25/literal')
  assert.equal((await call(s, 'GET', '/api/retained/100%/done')).statusCode, 400, 'a bare % is a malformed URL')
})

test('the text preview: printable UTF-8 only, at most PREVIEW_BYTES, never cutting a character', () => {
  const cases: Array<[string, Buffer, string | null]> = [
    ['plain text', Buffer.from('hello'), 'hello'],
    ['JSON with newlines and tabs', Buffer.from('{\n\t"a": 1\r\n}'), '{\n\t"a": 1\r\n}'],
    ['unicode', Buffer.from('ünïcødé 名前 😀'), 'ünïcødé 名前 😀'],
    ['a NUL byte', Buffer.from('a\u0000b'), null],
    ['an escape (terminal control)', Buffer.from('\u001b[31mred'), null],
    ['DEL', Buffer.from('a\u007f'), null],
    ['a C1 control', Buffer.from('a\u0085b'), null],
    ['invalid UTF-8', Buffer.from([0x61, 0xff, 0x62]), null],
    ['a truncated sequence', Buffer.from([0x61, 0xe2, 0x82]), null],
    ['invalid UTF-8 beyond the preview', Buffer.concat([Buffer.alloc(PREVIEW_BYTES + 10, 'a'), Buffer.from([0xff])]), null],
    ['long text: cut at PREVIEW_BYTES', Buffer.alloc(1000, 'x'), 'x'.repeat(PREVIEW_BYTES)],
    ['long text: a 2-byte character across the cut is left out', Buffer.from(`x${'é'.repeat(200)}`), `x${'é'.repeat((PREVIEW_BYTES - 2) / 2)}`],
    ['long text: a 4-byte character across the cut is left out', Buffer.from(`xx${'😀'.repeat(100)}`), `xx${'😀'.repeat((PREVIEW_BYTES - 4) / 4)}`],
  ]
  for (const [name, payload, expected] of cases) assert.equal(payloadPreview(payload), expected, name)
})

test('delete one topic: 204, then 404; a new subscriber gets nothing, the rest stay', async (t) => {
  const kit = await brokerKit(t)
  const s = kit.server
  const pub = await kit.mqtt()
  await retain(pub, { 'cfg/a b': 'old config', 'cfg/keep': 'kept' })
  const del = await call(s, 'DELETE', one('cfg/a b'))
  assert.equal(del.statusCode, 204, del.body)
  assert.equal(del.body, '')
  assert.equal((await call(s, 'GET', one('cfg/a b'))).statusCode, 404)
  const again = await call(s, 'DELETE', one('cfg/a b'))
  assert.equal(again.statusCode, 404)
  assert.equal(again.json().code, 'NOT_FOUND')

  const { log, sync } = await kit.watch({ 'cfg/#': { qos: 1 } })
  await log.waitFor((m) => m.topic === 'cfg/keep')
  await sync()
  assert.deepEqual(log.messages.filter((m) => m.topic.startsWith('cfg/')).map((m) => m.topic), ['cfg/keep'])
  assert.deepEqual((await list(s, { prefix: 'cfg/' })).items.map((i) => i.topic), ['cfg/keep'])
})

test('delete by prefix answers how many; an empty or missing prefix is refused unless all=true', async (t) => {
  const kit = await brokerKit(t)
  const s = kit.server
  const pub = await kit.mqtt()
  await retain(pub, { 'fleet/1/cfg': '1', 'fleet/1/fw': '1', 'fleet/10/cfg': '10', 'fleet/2/cfg': '2', 'lab/x': 'x', 'lab y/z': 'z' })
  const del = (q: string) => call(s, 'DELETE', `/api/retained?${q}`)

  for (const [q, rule] of [['prefix=', 'minLength 1 (or all=true)'], ['prefix=&all=false', 'minLength 1 (or all=true)'], ['', 'required'], ['all=true', 'required']]) {
    const res = await del(q)
    assert.equal(res.statusCode, 400, `${q}: ${res.body}`)
    assert.deepEqual(res.json().fields.map((f: { field: string; rule: string }) => [f.field, f.rule]), [['prefix', rule]], q)
  }
  const bad = await del('prefix=a&everything=1')
  assert.equal(bad.statusCode, 400)
  assert.deepEqual(bad.json().fields.map((f: { field: string }) => f.field), ['everything'])
  assert.equal(s.app.broker.retained.size, 6, 'nothing deleted by a refused call')

  const fleet1 = await del(`prefix=${encodeURIComponent('fleet/1/')}`)
  assert.equal(fleet1.statusCode, 200, fleet1.body)
  assert.deepEqual(fleet1.json(), { deleted: 2 })
  assert.deepEqual((await list(s, { prefix: 'fleet/' })).items.map((i) => i.topic), ['fleet/10/cfg', 'fleet/2/cfg'])
  assert.deepEqual((await del('prefix=fleet%2F')).json(), { deleted: 2 })
  assert.deepEqual((await del('prefix=nothing')).json(), { deleted: 0 })
  assert.deepEqual((await del('prefix=lab%20')).json(), { deleted: 1 })
  assert.deepEqual((await del('prefix=&all=true')).json(), { deleted: 1 })
  assert.equal(s.app.broker.retained.size, 0)
})

test('an expired message (v5 Message Expiry) is neither listed nor read', async (t) => {
  const kit = await brokerKit(t)
  const s = kit.server
  const pub = await kit.mqtt({ protocolVersion: 5 })
  await pub.publishAsync('exp/short', 'soon gone', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } })
  await retain(pub, { 'exp/long': 'stays' })
  assert.deepEqual((await list(s, { prefix: 'exp/' })).items.map((i) => i.topic), ['exp/long', 'exp/short'])
  const expiresAt = Date.parse((await call(s, 'GET', one('exp/short'))).json().expiresAt)
  await until(() => Date.now() > expiresAt, 'the message expired', 3000)
  assert.deepEqual((await list(s, { prefix: 'exp/' })).items.map((i) => i.topic), ['exp/long'])
  assert.equal((await call(s, 'GET', one('exp/short'))).statusCode, 404)
})

test('a deletion goes through the durable store: gone after a restart on the same file', async (t) => {
  const { dir, cleanup } = tempDir()
  t.after(cleanup)
  const config = { dbPath: join(dir, 'broker.db'), mqttState: 'sqlite' as const }
  const first = await startServer({ config })
  try {
    const pub = await connectMqtt(first.wsUrl)
    await retain(pub, { 'keep/me': 'k', 'drop/one': 'd', 'drop/two': 'd' })
    pub.end(true)
    assert.equal((await call(first, 'DELETE', one('drop/one'))).statusCode, 204)
    assert.deepEqual((await call(first, 'DELETE', '/api/retained?prefix=drop%2F')).json(), { deleted: 1 })
  } finally {
    await first.close()
  }
  const second = await startServer({ config })
  t.after(() => second.close())
  assert.deepEqual((await list(second)).items.map((i) => i.topic), ['keep/me'])
})

test('400 for bad list queries; 401 without the token on every route; OpenAPI documents them', async (t) => {
  const s = await startServer()
  t.after(() => s.close())
  for (const [q, field] of [['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=x', 'limit'], ['topic=a', 'topic']]) {
    const res = await call(s, 'GET', `/api/retained?${q}`)
    assert.equal(res.statusCode, 400, `${q}: ${res.body}`)
    assert.deepEqual(res.json().fields.map((f: { field: string }) => f.field), [field], q)
  }
  const empty = await call(s, 'GET', '/api/retained/')
  assert.equal(empty.statusCode, 400)
  assert.deepEqual(empty.json().fields.map((f: { field: string }) => f.field), ['topic'])
  assert.equal((await list(s, { limit: 1000 })).next, null)

  for (const [method, url] of [['GET', '/api/retained'], ['GET', one('a/b')], ['DELETE', one('a/b')], ['DELETE', '/api/retained?prefix=a']] as [Method, string][]) {
    assert.equal((await call(s, method, url, {})).statusCode, 401, `${method} ${url}`)
    assert.equal((await call(s, method, url, { authorization: 'Bearer wrong-token-xxxxxxxx' })).statusCode, 401, `${method} ${url}`)
  }
  const doc = (await s.app.inject({ method: 'GET', url: '/docs/json' })).json()
  for (const [path, method] of [['/api/retained', 'get'], ['/api/retained', 'delete'], ['/api/retained/{*}', 'get'], ['/api/retained/{*}', 'delete']]) {
    const op = doc.paths[path]?.[method]
    assert.ok(op, `${method} ${path} documented`)
    assert.deepEqual(op.tags, ['retained'])
    assert.deepEqual(op.security, [{ bearerAuth: [] }])
  }
})
