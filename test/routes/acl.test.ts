// The /api/acl HTTP contract on the real app: CRUD and the rule shape, inserting at a position and moving (the
// others shift), every bad input named in a 400 and leaving the rules as they were, 404, 401, OpenAPI, the "try it"
// check naming the rule that decided, and app.acl as the broker's Authorizer (version, allowsEverything, aclDefault).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import { startServer, TEST_TOKEN, type TestServer } from '../helpers.ts'

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }

async function server(t: { after(fn: () => Promise<void> | void): void }, opts: Parameters<typeof startServer>[0] = {}) {
  const s = await startServer(opts)
  t.after(() => s.close())
  return s
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'
const call = (s: TestServer, method: Method, url: string, payload?: unknown, headers: Record<string, string> = AUTH): Promise<LightMyRequestResponse> =>
  s.app.inject({ method, url, payload, headers } as InjectOptions)

async function create(s: TestServer, body: Record<string, unknown>) {
  const res = await call(s, 'POST', '/api/acl', body)
  assert.equal(res.statusCode, 201, res.body)
  return res.json()
}

/** "topic@position" of every rule, in list order */
async function order(s: TestServer): Promise<string[]> {
  const body = (await call(s, 'GET', '/api/acl')).json()
  return body.items.map((r: { topic: string; position: number }) => `${r.topic}@${r.position}`)
}

const RULE_KEYS = ['action', 'anonymous', 'clientId', 'comment', 'createdAt', 'id', 'permission', 'position', 'topic', 'updatedAt', 'username']

test('CRUD: create (201, defaults filled), read, list with the default policy, update, delete (204), then 404', async (t) => {
  const s = await server(t)
  const empty = (await call(s, 'GET', '/api/acl')).json()
  assert.deepEqual(empty, { items: [], aclDefault: 'allow', version: 1 })

  const rule = await create(s, { topic: 'sensors/#', action: 'publish', permission: 'allow', comment: '  sensors publish  ' })
  assert.deepEqual(Object.keys(rule).sort(), RULE_KEYS)
  assert.equal(rule.position, 1)
  assert.equal(rule.username, null)
  assert.equal(rule.clientId, null)
  assert.equal(rule.anonymous, false)
  assert.equal(rule.comment, 'sensors publish')
  assert.equal(rule.createdAt, rule.updatedAt)

  const got = await call(s, 'GET', `/api/acl/${rule.id}`)
  assert.equal(got.statusCode, 200)
  assert.equal(got.headers['cache-control'], 'no-store')
  assert.deepEqual(got.json(), rule)

  const list = (await call(s, 'GET', '/api/acl')).json()
  assert.deepEqual(list.items, [rule])
  assert.equal(list.aclDefault, 'allow')
  assert.equal(list.version, 2)

  await new Promise((r) => setTimeout(r, 2))
  const patched = await call(s, 'PATCH', `/api/acl/${rule.id}`, { username: 'bob', clientId: 'dev-*', permission: 'deny', comment: '' })
  assert.equal(patched.statusCode, 200, patched.body)
  const p = patched.json()
  assert.equal(p.username, 'bob')
  assert.equal(p.clientId, 'dev-*')
  assert.equal(p.permission, 'deny')
  assert.equal(p.comment, null)
  assert.equal(p.topic, 'sensors/#')
  assert.equal(p.createdAt, rule.createdAt)
  assert.ok(p.updatedAt > rule.updatedAt)
  assert.deepEqual((await call(s, 'GET', `/api/acl/${rule.id}`)).json(), p)

  const del = await call(s, 'DELETE', `/api/acl/${rule.id}`)
  assert.equal(del.statusCode, 204)
  assert.equal(del.body, '')
  for (const [method, body] of [['GET'], ['PATCH', { topic: 'x' }], ['DELETE']] as [Method, unknown?][]) {
    const res = await call(s, method, `/api/acl/${rule.id}`, body)
    assert.equal(res.statusCode, 404, `${method} ${res.body}`)
    assert.equal(res.json().code, 'NOT_FOUND')
  }
  // a new rule never takes a deleted rule's id
  const next = await create(s, { topic: 'a', action: 'all', permission: 'allow' })
  assert.ok(next.id > rule.id)
})

test('positions: append, insert at a position (the others move down), move up and down, delete closes the gap', async (t) => {
  const s = await server(t)
  const a = await create(s, { topic: 'a', action: 'all', permission: 'allow' })
  const b = await create(s, { topic: 'b', action: 'all', permission: 'allow' })
  const c = await create(s, { topic: 'c', action: 'all', permission: 'allow' })
  assert.deepEqual(await order(s), ['a@1', 'b@2', 'c@3'])

  const x = await create(s, { topic: 'x', action: 'all', permission: 'deny', position: 2 })
  assert.equal(x.position, 2)
  assert.deepEqual(await order(s), ['a@1', 'x@2', 'b@3', 'c@4'])
  await create(s, { topic: 'first', action: 'all', permission: 'deny', position: 1 })
  await create(s, { topic: 'last', action: 'all', permission: 'deny', position: 6 })
  assert.deepEqual(await order(s), ['first@1', 'a@2', 'x@3', 'b@4', 'c@5', 'last@6'])

  // move up: the ones between move down
  assert.equal((await call(s, 'PATCH', `/api/acl/${c.id}`, { position: 2 })).json().position, 2)
  assert.deepEqual(await order(s), ['first@1', 'c@2', 'a@3', 'x@4', 'b@5', 'last@6'])
  // move down, with another change at once
  const moved = (await call(s, 'PATCH', `/api/acl/${a.id}`, { position: 6, topic: 'a2' })).json()
  assert.equal(moved.position, 6)
  assert.deepEqual(await order(s), ['first@1', 'c@2', 'x@3', 'b@4', 'last@5', 'a2@6'])
  // to the same place: nothing moves
  await call(s, 'PATCH', `/api/acl/${b.id}`, { position: 4 })
  assert.deepEqual(await order(s), ['first@1', 'c@2', 'x@3', 'b@4', 'last@5', 'a2@6'])

  assert.equal((await call(s, 'DELETE', `/api/acl/${x.id}`)).statusCode, 204)
  assert.deepEqual(await order(s), ['first@1', 'c@2', 'b@3', 'last@4', 'a2@5'])
  // what the API lists is what decides: position 1 first
  assert.deepEqual(s.app.acl.list().map((r) => r.position), [1, 2, 3, 4, 5])
})

test('bad input: 400 naming every broken field; nothing changes', async (t) => {
  const s = await server(t)
  const { id } = await create(s, { topic: 'keep/#', action: 'all', permission: 'allow' })
  const anonymous = await create(s, { topic: 'guests/#', action: 'all', permission: 'allow', anonymous: true })
  const before = (await call(s, 'GET', '/api/acl')).json()
  const cases: [string, Method, string, unknown, string[]][] = [
    ['filter with # inside', 'POST', '/api/acl', { topic: 'a/#/b', action: 'all', permission: 'allow' }, ['topic']],
    ['+ sharing a level', 'POST', '/api/acl', { topic: 'a/b+', action: 'all', permission: 'allow' }, ['topic']],
    ['a shared-subscription rule', 'POST', '/api/acl', { topic: '$share/g/a', action: 'all', permission: 'allow' }, ['topic']],
    ['bad enums', 'POST', '/api/acl', { topic: 'a', action: 'read', permission: 'maybe' }, ['action', 'permission']],
    ['bad enum and bad filter together', 'POST', '/api/acl', { topic: 'a/#/b', action: 'read', permission: 'allow' }, ['action', 'topic']],
    ['missing required', 'POST', '/api/acl', { username: 'bob' }, ['action', 'permission', 'topic']],
    ['unknown key', 'POST', '/api/acl', { topic: 'a', action: 'all', permission: 'allow', qos: 1 }, ['qos']],
    ['no coercion', 'POST', '/api/acl', { topic: 'a', action: 'all', permission: 'allow', username: 5, anonymous: 'true' }, ['username', 'anonymous']],
    ['empty username', 'POST', '/api/acl', { topic: 'a', action: 'all', permission: 'allow', username: '' }, ['username']],
    ['too long', 'POST', '/api/acl', { topic: 'a', action: 'all', permission: 'allow', username: 'u'.repeat(257), clientId: 'c'.repeat(257), comment: 'x'.repeat(1001) }, ['username', 'clientId', 'comment']],
    ['anonymous with a username', 'POST', '/api/acl', { topic: 'a', action: 'all', permission: 'allow', username: 'bob', anonymous: true }, ['anonymous']],
    ['position past the end', 'POST', '/api/acl', { topic: 'a', action: 'all', permission: 'allow', position: 4 }, ['position']],
    ['position 0', 'POST', '/api/acl', { topic: 'a', action: 'all', permission: 'allow', position: 0 }, ['position']],
    ['patch: nothing', 'PATCH', `/api/acl/${id}`, {}, ['(body)']],
    ['patch: bad filter', 'PATCH', `/api/acl/${id}`, { topic: '#/a' }, ['topic']],
    ['patch: move past the end', 'PATCH', `/api/acl/${id}`, { position: 3 }, ['position']],
    ['patch: anonymous rule naming a user', 'PATCH', `/api/acl/${id}`, { anonymous: true, username: 'bob' }, ['anonymous']],
    ['patch: a user on an anonymous rule', 'PATCH', `/api/acl/${anonymous.id}`, { username: 'bob' }, ['username']],
    ['id not a number', 'GET', '/api/acl/abc', undefined, ['id']],
    ['check: bad action', 'POST', '/api/acl/check', { clientId: 'c', action: 'all', topic: 'a' }, ['action']],
    ['check: publish to a filter', 'POST', '/api/acl/check', { clientId: 'c', action: 'publish', topic: 'a/+' }, ['topic']],
    ['check: bad subscription', 'POST', '/api/acl/check', { clientId: 'c', action: 'subscribe', topic: 'a/#/b' }, ['topic']],
  ]
  for (const [label, method, url, body, fields] of cases) {
    const res = await call(s, method, url, body)
    assert.equal(res.statusCode, 400, `${label}: ${res.body}`)
    const err = res.json()
    assert.equal(err.code, 'INVALID_INPUT', label)
    assert.deepEqual([...new Set(err.fields.map((f: { field: string }) => f.field))].sort(), fields.sort(), `${label}: ${res.body}`)
  }
  assert.deepEqual((await call(s, 'GET', '/api/acl')).json(), before)
})

test('401 without the admin token; OpenAPI documents every route under acl with bearer security', async (t) => {
  const s = await server(t)
  for (const [method, url] of [['GET', '/api/acl'], ['POST', '/api/acl'], ['GET', '/api/acl/1'], ['PATCH', '/api/acl/1'],
    ['DELETE', '/api/acl/1'], ['POST', '/api/acl/check']] as [Method, string][]) {
    assert.equal((await call(s, method, url, {}, {})).statusCode, 401, `${method} ${url}`)
    assert.equal((await call(s, method, url, {}, { authorization: 'Bearer wrong-token-xxxxxxxx' })).statusCode, 401, `${method} ${url}`)
  }
  const doc = (await s.app.inject({ method: 'GET', url: '/docs/json' })).json()
  for (const [path, method] of [['/api/acl', 'get'], ['/api/acl', 'post'], ['/api/acl/{id}', 'get'], ['/api/acl/{id}', 'patch'],
    ['/api/acl/{id}', 'delete'], ['/api/acl/check', 'post']]) {
    const op = doc.paths[path]?.[method]
    assert.ok(op, `${method} ${path} documented`)
    assert.deepEqual(op.tags, ['acl'])
    assert.deepEqual(op.security, [{ bearerAuth: [] }])
  }
})

test('POST /api/acl/check answers as the broker would, with the deciding rule and why', async (t) => {
  const s = await server(t)
  const deny = await create(s, { topic: 'secret/#', action: 'all', permission: 'deny', comment: 'nobody reads secrets' })
  const own = await create(s, { topic: 'devices/%c/#', action: 'all', permission: 'allow' })
  const check = async (body: Record<string, unknown>) => {
    const res = await call(s, 'POST', '/api/acl/check', body)
    assert.equal(res.statusCode, 200, res.body)
    return res.json()
  }

  const refused = await check({ clientId: 'c1', action: 'subscribe', topic: 'secret/+' })
  assert.equal(refused.allowed, false)
  assert.deepEqual(refused.decidedBy, { id: deny.id, position: 1 })
  assert.deepEqual(refused.rule, deny)
  assert.match(refused.explanation, /rule \d+ \(position 1\) denies subscribe: .*covers every topic the subscription 'secret\/\+' can match/)

  const mine = await check({ username: 'bob', clientId: 'd1', action: 'publish', topic: 'devices/d1/state' })
  assert.equal(mine.allowed, true)
  assert.deepEqual(mine.decidedBy, { id: own.id, position: 2 })
  assert.match(mine.explanation, /\(here 'devices\/d1\/#'\)/)

  const fallback = await check({ clientId: 'd1', action: 'publish', topic: 'elsewhere' })
  assert.deepEqual(Object.keys(fallback).sort(), ['allowed', 'decidedBy', 'explanation'])
  assert.equal(fallback.allowed, true)
  assert.equal(fallback.decidedBy, 'default')
  assert.match(fallback.explanation, /default policy \(aclDefault\) is allow/)

  // the injection case: a client id that would widen devices/%c/# is not matched by it
  const widened = await check({ clientId: 'a/#', action: 'subscribe', topic: 'devices/a/#' })
  assert.equal(widened.decidedBy, 'default')
  assert.match(widened.explanation, /was skipped: it uses %c and the client id contains/)

  // a shared subscription is judged on its filter
  assert.deepEqual((await check({ clientId: 'c1', action: 'subscribe', topic: '$share/g/secret/x' })).decidedBy, { id: deny.id, position: 1 })

  // the default policy follows the setting
  assert.equal((await call(s, 'PATCH', '/api/settings', { values: { aclDefault: 'deny' } })).statusCode, 200)
  const strict = await check({ clientId: 'd1', action: 'publish', topic: 'elsewhere' })
  assert.equal(strict.allowed, false)
  assert.equal((await call(s, 'GET', '/api/acl')).json().aclDefault, 'deny')
})

test('app.acl is the Authorizer: version, allowsEverything and allowed follow the rules and aclDefault', async (t) => {
  const s = await server(t)
  const acl = s.app.acl
  const changes: unknown[] = []
  acl.on('change', (c) => changes.push(c))
  const subject = { username: null, clientId: 'c1' }
  assert.equal(acl.version, 1)
  assert.equal(acl.allowsEverything, true)
  assert.equal(acl.allowed(subject, 'publish', 'secret/x'), true)

  const allow = await create(s, { topic: 'public/#', action: 'all', permission: 'allow' })
  assert.equal(acl.version, 2)
  assert.equal(acl.allowsEverything, true, 'an allow rule under default allow denies nothing')
  const deny = await create(s, { topic: 'secret/#', action: 'publish', permission: 'deny' })
  assert.equal(acl.version, 3)
  assert.equal(acl.allowsEverything, false)
  assert.equal(acl.allowed(subject, 'publish', 'secret/x'), false)
  assert.equal(acl.allowed(subject, 'subscribe', 'secret/x'), true, 'a publish rule says nothing of deliveries')

  await call(s, 'PATCH', `/api/acl/${deny.id}`, { action: 'all' })
  assert.equal(acl.version, 4)
  assert.equal(acl.allowed(subject, 'subscribe', 'secret/#'), false)
  assert.equal(acl.allowed(subject, 'subscribe', 'secret/x'), false, 'nor is a secret/x message delivered')

  // a new default is a new version, announced at once
  await call(s, 'PATCH', '/api/settings', { values: { aclDefault: 'deny' } })
  assert.equal(acl.version, 5)
  assert.equal(acl.allowed(subject, 'publish', 'other'), false)
  assert.equal(acl.allowed(subject, 'publish', 'public/x'), true)
  // another setting changes nothing here
  await call(s, 'PATCH', '/api/settings', { values: { connectTimeoutMs: 3000 } })
  assert.equal(acl.version, 5)

  await call(s, 'DELETE', `/api/acl/${deny.id}`)
  await call(s, 'DELETE', `/api/acl/${allow.id}`)
  assert.equal(acl.version, 7)
  assert.equal(acl.allowsEverything, false, 'default deny')
  await call(s, 'PATCH', '/api/settings', { values: { aclDefault: 'allow' } })
  assert.equal(acl.allowsEverything, true)
  assert.deepEqual(changes, [
    { version: 2, what: 'created', ruleId: allow.id },
    { version: 3, what: 'created', ruleId: deny.id },
    { version: 4, what: 'updated', ruleId: deny.id },
    { version: 5, what: 'default', ruleId: null },
    { version: 6, what: 'deleted', ruleId: deny.id },
    { version: 7, what: 'deleted', ruleId: allow.id },
    { version: 8, what: 'default', ruleId: null },
  ])
})
