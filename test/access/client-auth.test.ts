// Client authentication over real connections: allowAnonymous, MQTT users created through the API, every refusal
// as an auth_failed record with the right CONNACK code, packet order kept while a password is checked, a flood of
// bad passwords that does not stall the broker, and no password byte anywhere: not in a log line, the failure log,
// the live stream, the byte dumps or /api/connections.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import type { IConnackPacket, IPublishPacket, Packet } from 'mqtt-packet'
import { hashPassword, SCRYPT_PARAMS } from '../../src/access/password.ts'
import { connectMqtt, delay, RawClient, startServer, waitForFailure, type TestServer, until } from '../helpers.ts'

const PASSWORD = 'Pa55-w0rd-that-must-never-leak'

async function api(server: TestServer, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...server.auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.status, text: await res.text() }
}

async function connack(server: TestServer, fields: Record<string, unknown>, v: 4 | 5): Promise<number> {
  const c = await RawClient.open(server.wsUrl, { protocolVersion: v })
  try {
    const p = await c.connect({ clean: true, keepalive: 0, ...fields }, v) as IConnackPacket
    return (v === 5 ? p.reasonCode : p.returnCode) ?? -1
  } finally {
    c.close()
  }
}

test('allowAnonymous, users from the API, and each refusal as auth_failed with its CONNACK code (3.1.1 and 5.0)', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  assert.equal(await connack(server, { clientId: 'anon' }, 4), 0, 'anonymous by default')
  assert.equal((await api(server, 'POST', '/api/mqtt-users', { username: 'alice', password: PASSWORD })).status, 201)
  assert.equal((await api(server, 'POST', '/api/mqtt-users', { username: 'bob', password: PASSWORD, enabled: false })).status, 201)
  assert.equal((await api(server, 'PATCH', '/api/settings', { values: { allowAnonymous: false } })).status, 200)

  const failures: Array<{ reason: string; username: string | null; detail: string; hint: string }> = []
  server.app.broker.on('failure', (e) => failures.push(e))
  const cases: Array<[string, Record<string, unknown>, number, number, RegExp]> = [
    // what, CONNECT fields, v3 return code, v5 reason code, detail
    ['no username', {}, 5, 0x87, /anonymous|no username/i],
    ['unknown user', { username: 'mallory', password: Buffer.from('x') }, 4, 0x86, /mallory/],
    ['wrong password', { username: 'alice', password: Buffer.from('not-it') }, 4, 0x86, /alice/],
    ['no password', { username: 'alice' }, 4, 0x86, /alice/],
    ['disabled user', { username: 'bob', password: Buffer.from(PASSWORD) }, 5, 0x87, /disabled/],
  ]
  for (const [what, fields, v3, v5, detail] of cases) {
    for (const [v, code] of [[4, v3], [5, v5]] as const) {
      const before = failures.length
      assert.equal(await connack(server, { clientId: `c-${v}`, ...fields }, v), code, `${what}, v${v}`)
      await until(() => failures.length > before, `${what}: a failure`)
      const e = failures[failures.length - 1]
      assert.equal(e.reason, 'auth_failed', what)
      assert.match(e.detail, detail, what)
      assert.ok(e.hint.length > 20, what)
      assert.equal(e.username, (fields.username as string | undefined) ?? null)
    }
  }
  assert.equal(await connack(server, { clientId: 'alice-1', username: 'alice', password: Buffer.from(PASSWORD) }, 4), 0)
  assert.equal(await connack(server, { clientId: 'alice-2', username: 'alice', password: Buffer.from(PASSWORD) }, 5), 0)

  // a changed password is in force for the next CONNECT, and so is a re-enabled user
  assert.equal((await api(server, 'PATCH', '/api/mqtt-users/bob', { enabled: true })).status, 200)
  assert.equal(await connack(server, { clientId: 'bob-1', username: 'bob', password: Buffer.from(PASSWORD) }, 5), 0)
})

test('while the password is checked, packets sent behind the CONNECT wait and keep their order', async (t) => {
  const server = await startServer({ settings: { allowAnonymous: false } })
  t.after(() => server.close())
  await api(server, 'POST', '/api/mqtt-users', { username: 'carol', password: PASSWORD })
  const c = await RawClient.open(server.wsUrl)
  t.after(() => c.close())
  const enc = (p: Record<string, unknown> & { cmd: Packet['cmd'] }) => RawClient.encode(p as Packet)
  // CONNECT, SUBSCRIBE and PUBLISH in one WebSocket message
  c.sendBytes(Buffer.concat([
    enc({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'carol-1', username: 'carol', password: Buffer.from(PASSWORD) }),
    enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'order/t', qos: 0 }] }),
    enc({ cmd: 'publish', topic: 'order/t', payload: Buffer.from('after'), qos: 0, retain: false, dup: false }),
  ]))
  const msg = await c.nextPacket('publish') as IPublishPacket
  assert.equal(msg.payload.toString(), 'after')
  assert.deepEqual(c.packets.map((p) => p.cmd), ['connack', 'suback'], 'CONNACK, SUBACK, then its own message')
  assert.equal(server.app.broker.stats.messagesDelivered, 1)
})

test('a large PUBLISH cut across frames right behind a CONNECT whose password is being checked is taken as it comes', async (t) => {
  const server = await startServer({ settings: { allowAnonymous: false } })
  t.after(() => server.close())
  await api(server, 'POST', '/api/mqtt-users', { username: 'frank', password: PASSWORD })
  const c = await RawClient.open(server.wsUrl)
  t.after(() => c.close())
  const enc = (p: Record<string, unknown> & { cmd: Packet['cmd'] }) => RawClient.encode(p as Packet)
  const big = enc({ cmd: 'publish', topic: 'big/t', payload: Buffer.alloc(300_000, 0x62), qos: 0, retain: false, dup: false })
  c.sendBytes(Buffer.concat([
    enc({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'frank-1', username: 'frank', password: Buffer.from(PASSWORD) }),
    enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'big/t', qos: 0 }] }),
    big.subarray(0, 100), // not a first packet to judge, nor one held to the size of a CONNECT
  ]))
  await delay(20)
  c.sendBytes(big.subarray(100))
  const msg = await c.nextPacket('publish') as IPublishPacket
  assert.equal(msg.payload.length, 300_000)
})

test('a flood of wrong passwords is bounded and does not stall the broker for others', async (t) => {
  const server = await startServer({ settings: { allowAnonymous: false } })
  t.after(() => server.close())
  await api(server, 'POST', '/api/mqtt-users', { username: 'dave', password: PASSWORD })
  // the bounds are tested, not the key derivation: dave's record gets a cheap scrypt cost (the record says its own
  // parameters), so 200 checks do not hold both cores for seconds while other test files run beside this one
  server.app.db.prepare('UPDATE mqtt_users SET password_hash = ? WHERE username = ?')
    .run(await hashPassword(Buffer.from(PASSWORD), { ...SCRYPT_PARAMS, N: 1024 }), 'dave')
  await api(server, 'PATCH', '/api/settings', { values: { allowAnonymous: true } })
  const bystander = await connectMqtt(server.wsUrl, { clientId: 'bystander' })
  t.after(() => bystander.end(true))
  await api(server, 'PATCH', '/api/settings', { values: { allowAnonymous: false } })

  const codes: number[] = []
  const flood = Array.from({ length: 200 }, async (_, i) => {
    codes.push(await connack(server, { clientId: `f${i}`, username: 'dave', password: Buffer.from(`guess-${i}`) }, 5))
  })
  // meanwhile the bystander's round trips stay quick
  const rtts: number[] = []
  for (let i = 0; i < 10; i++) {
    const t0 = Date.now()
    await bystander.publishAsync('by/t', 'x', { qos: 1 })
    rtts.push(Date.now() - t0)
  }
  await Promise.all(flood)
  assert.ok(codes.every((c) => c === 0x86 || c === 0x89), `only refusals: ${[...new Set(codes)]}`)
  assert.ok(Math.max(...rtts) < 1000, `bystander round trips ${rtts.join(', ')} ms`)
  // the address is throttled now: even the right password is refused at once, with no check run
  const e = waitForFailure(server, (f) => f.reason === 'auth_failed' && /failed attempts/.test(f.detail))
  assert.equal(await connack(server, { clientId: 'dave-1', username: 'dave', password: Buffer.from(PASSWORD) }, 5), 0x86)
  assert.match((await e).hint, /too many failed logins/)
})

test('no password byte reaches a log line, the failure log, the live stream, a byte dump or /api/connections', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const server = await startServer({ config: { logLevel: 'trace' }, logger: { level: 'trace', stream }, settings: { connectTimeoutMs: 400 } })
  t.after(() => server.close())
  const sse: string[] = []
  const abort = new AbortController()
  t.after(() => abort.abort())
  const res = await fetch(`${server.url}/api/failures/stream`, { headers: server.auth, signal: abort.signal })
  void (async () => {
    try {
      for await (const chunk of res.body!) sse.push(Buffer.from(chunk).toString())
    } catch { /* aborted */ }
  })()

  await api(server, 'POST', '/api/mqtt-users', { username: 'erin', password: PASSWORD })
  await api(server, 'PATCH', '/api/mqtt-users/erin', { password: PASSWORD })
  const wrong = `${PASSWORD}-wrong`
  // a wrong password (auth_failed), in both versions
  await connack(server, { clientId: 'e1', username: 'erin', password: Buffer.from(wrong) }, 4)
  await connack(server, { clientId: 'e2', username: 'erin', password: Buffer.from(wrong) }, 5)
  // a CONNECT with a short client id whose last bytes never come: its first bytes are kept (connect_timeout)
  const partial = await RawClient.open(server.wsUrl)
  const full = RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'e', username: 'erin', password: Buffer.from(PASSWORD), will: { topic: 'w', payload: Buffer.from('x'), qos: 0, retain: false } } as Packet)
  partial.sendBytes(full.subarray(0, full.length - 1))
  await waitForFailure(server, (f) => f.reason === 'connect_timeout' && f.bytesReceived === full.length - 1)
  // a connected client that sends a second CONNECT carrying the password (protocol_error with the chunk's bytes)
  const ok = await RawClient.open(server.wsUrl)
  await ok.connect({ clientId: 'e3', username: 'erin', password: Buffer.from(PASSWORD) })
  const connections = await api(server, 'GET', '/api/connections')
  assert.match(connections.text, /"clientId":"e3"/)
  const second = waitForFailure(server, (f) => f.reason === 'protocol_error' && f.clientId === 'e3')
  ok.sendBytes(RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'e3', username: 'erin', password: Buffer.from(PASSWORD) } as Packet))
  await second
  server.app.failureLog.flush()
  await delay(300)

  const failuresPage = await api(server, 'GET', '/api/failures?limit=100')
  const records = JSON.parse(failuresPage.text) as { items: Array<{ reason: string; firstBytesHex: string }> }
  assert.ok(records.items.some((r) => r.reason === 'connect_timeout' && r.firstBytesHex.length > 0), 'a byte dump was kept')
  const hex = (s: string) => Buffer.from(s).toString('hex')
  const everywhere = [
    ['log lines', lines.join('\n')], ['the stream', sse.join('')], ['/api/failures', failuresPage.text],
    ['/api/connections', connections.text], ['the users API', (await api(server, 'GET', '/api/mqtt-users')).text],
  ] as const
  for (const [where, text] of everywhere) {
    for (const secret of [PASSWORD, wrong]) {
      assert.ok(!text.includes(secret), `the password is in ${where}`)
      assert.ok(!text.includes(hex(secret)), `the password's hex is in ${where}`)
      // a hex dump cut at 64 bytes may hold a prefix of it
      assert.ok(!text.includes(hex(secret.slice(0, 6))), `the start of the password's hex is in ${where}`)
    }
  }
  assert.ok(lines.length > 10 && sse.join('').includes('auth_failed'), 'the logs and the stream did see the failures')
})

