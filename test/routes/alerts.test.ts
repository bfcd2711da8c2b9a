// /api/alerts* through the real server: the built-in rule listed and protected (not deletable, its name fixed), rules
// created, read, changed and deleted, every bad field named in the 400 (a webhook URL that is not http(s), a negative
// window, an unknown key), a taken name 409, the secret write-only (never in an answer or an audit row), viewers
// read and operators change, the history and the active list, all in the OpenAPI document.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, type TestServer } from '../helpers.ts'

const SECRET = 'alert-secret-7f3a9c21d4'

async function server(t: { after(fn: () => unknown): void }): Promise<TestServer> {
  const s = await startServer()
  t.after(() => s.close())
  return s
}

const fields = (body: string) => (JSON.parse(body).fields as { field: string }[]).map((f) => f.field).sort()

test('alert rules over the API', async (t) => {
  const s = await server(t)
  const call = (method: string, url: string, payload?: unknown, headers: Record<string, string> = s.auth) =>
    s.app.inject({ method: method as 'GET', url, headers, payload: payload as object })

  await t.test('the built-in rule is there, on, and about partial CONNECTs', async () => {
    const res = await call('GET', '/api/alerts/rules')
    assert.equal(res.statusCode, 200)
    const [builtIn] = res.json().items
    assert.deepEqual(
      { name: builtIn.name, builtIn: builtIn.builtIn, enabled: builtIn.enabled, reason: builtIn.reason, minBytesReceived: builtIn.minBytesReceived,
        kind: builtIn.kind, count: builtIn.count, windowSec: builtIn.windowSec, notifyUi: builtIn.notifyUi, firing: builtIn.firing },
      { name: 'partial-connect-timeouts', builtIn: true, enabled: true, reason: 'connect_timeout', minBytesReceived: 1, kind: 'threshold',
        count: 20, windowSec: 60, notifyUi: true, firing: false },
    )
    assert.equal(res.headers['cache-control'], 'no-store')
  })

  let id = 0
  await t.test('create: 201 with the rule, the secret never answered', async () => {
    const res = await call('POST', '/api/alerts/rules', {
      name: 'auth-storm', reason: 'auth_failed', count: 50, windowSec: 60, webhookUrl: 'https://hooks.example.com/a', secret: SECRET,
      comment: '  brute force?  ',
    })
    assert.equal(res.statusCode, 201, res.body)
    assert.ok(!res.body.includes(SECRET))
    const rule = res.json()
    id = rule.id
    assert.equal(rule.hasSecret, true)
    assert.equal(rule.secret, undefined)
    assert.equal(rule.kind, 'threshold')
    assert.equal(rule.factor, 3)
    assert.equal(rule.baselineSec, 3600)
    assert.equal(rule.comment, 'brute force?')
    const one = await call('GET', `/api/alerts/rules/${id}`)
    assert.equal(one.statusCode, 200)
    assert.ok(!one.body.includes(SECRET))
    assert.ok(!(await call('GET', '/api/alerts/rules')).body.includes(SECRET))
  })

  await t.test('bad input: 400 naming each field', async () => {
    const cases: [string, unknown, string[]][] = [
      ['not http(s)', { name: 'x1', count: 1, windowSec: 10, webhookUrl: 'ftp://example.com/x' }, ['webhookUrl']],
      ['not a URL', { name: 'x2', count: 1, windowSec: 10, webhookUrl: 'hooks' }, ['webhookUrl']],
      ['negative window', { name: 'x3', count: 1, windowSec: -5 }, ['windowSec']],
      ['zero count and a bad kind', { name: 'x4', count: 0, windowSec: 10, kind: 'sometimes' }, ['count', 'kind']],
      ['unknown reason', { name: 'x5', count: 1, windowSec: 10, reason: 'bad_luck' }, ['reason']],
      ['a name with spaces', { name: 'my rule', count: 1, windowSec: 10 }, ['name']],
      ['missing fields', { name: 'x6' }, ['count', 'windowSec']],
      ['unknown key', { name: 'x7', count: 1, windowSec: 10, severity: 'high' }, ['severity']],
      ['short secret', { name: 'x8', count: 1, windowSec: 10, secret: 'abc' }, ['secret']],
      ['spike factor below 1', { name: 'x9', count: 1, windowSec: 10, kind: 'spike', factor: 0.5 }, ['factor']],
    ]
    for (const [what, body, want] of cases) {
      const res = await call('POST', '/api/alerts/rules', body)
      assert.equal(res.statusCode, 400, `${what}: ${res.body}`)
      assert.deepEqual(fields(res.body), want, what)
    }
    const patch = await call('PATCH', `/api/alerts/rules/${id}`, { windowSec: 0, webhookUrl: 'javascript:alert(1)' })
    assert.equal(patch.statusCode, 400)
    assert.deepEqual(fields(patch.body), ['webhookUrl', 'windowSec'])
    assert.equal((await call('PATCH', `/api/alerts/rules/${id}`, {})).statusCode, 400)
  })

  await t.test('a taken name is 409; the built-in rule keeps its name and cannot be deleted, but can be disabled', async () => {
    const dup = await call('POST', '/api/alerts/rules', { name: 'auth-storm', count: 1, windowSec: 10 })
    assert.equal(dup.statusCode, 409, dup.body)
    const rename = await call('PATCH', '/api/alerts/rules/1', { name: 'other' })
    assert.equal(rename.statusCode, 400)
    assert.deepEqual(fields(rename.body), ['name'])
    const del = await call('DELETE', '/api/alerts/rules/1')
    assert.equal(del.statusCode, 409, del.body)
    const off = await call('PATCH', '/api/alerts/rules/1', { enabled: false, count: 30 })
    assert.equal(off.statusCode, 200, off.body)
    assert.equal(off.json().enabled, false)
    assert.equal(off.json().count, 30)
    assert.equal((await call('PATCH', '/api/alerts/rules/1', { enabled: true, count: 20 })).statusCode, 200)
  })

  await t.test('update keeps the secret unless given; null removes it', async () => {
    const res = await call('PATCH', `/api/alerts/rules/${id}`, { count: 40, kind: 'spike', factor: 4, baselineSec: 1800 })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.json().hasSecret, true)
    assert.equal(s.app.alerts.rules.secretOf(id), SECRET)
    const newer = `${SECRET}-2`
    assert.equal((await call('PATCH', `/api/alerts/rules/${id}`, { secret: newer })).json().hasSecret, true)
    assert.equal(s.app.alerts.rules.secretOf(id), newer)
    assert.equal((await call('PATCH', `/api/alerts/rules/${id}`, { secret: null })).json().hasSecret, false)
    assert.equal((await call('PATCH', `/api/alerts/rules/${id}`, { secret: SECRET })).json().hasSecret, true)
  })

  await t.test('roles: a viewer reads, only an operator changes', async () => {
    const viewer = await call('POST', '/api/admin-tokens', { name: 'alerts-viewer', role: 'viewer' })
    const v = { authorization: `Bearer ${viewer.json().token}` }
    assert.equal((await call('GET', '/api/alerts/rules', undefined, v)).statusCode, 200)
    assert.equal((await call('GET', '/api/alerts/history', undefined, v)).statusCode, 200)
    assert.equal((await call('GET', '/api/alerts/active', undefined, v)).statusCode, 200)
    assert.equal((await call('POST', '/api/alerts/rules', { name: 'v', count: 1, windowSec: 1 }, v)).statusCode, 403)
    assert.equal((await call('PATCH', `/api/alerts/rules/${id}`, { count: 2 }, v)).statusCode, 403)
    assert.equal((await call('DELETE', `/api/alerts/rules/${id}`, undefined, v)).statusCode, 403)
  })

  await t.test('delete: 204, then 404', async () => {
    assert.equal((await call('DELETE', `/api/alerts/rules/${id}`)).statusCode, 204)
    assert.equal((await call('GET', `/api/alerts/rules/${id}`)).statusCode, 404)
    assert.equal((await call('DELETE', `/api/alerts/rules/${id}`)).statusCode, 404)
  })

  await t.test('every change is an audit row, none with the secret', async () => {
    const res = await call('GET', '/api/audit?action=alert-rule.')
    assert.equal(res.statusCode, 200)
    const actions = res.json().items.map((e: { action: string }) => e.action)
    assert.ok(actions.includes('alert-rule.create') && actions.includes('alert-rule.update') && actions.includes('alert-rule.delete'), String(actions))
    assert.ok(!res.body.includes(SECRET), 'no secret in the audit trail')
    assert.ok(!res.body.includes('-2"'), 'not the second secret either')
  })

  await t.test('history and active: empty, paged answers', async () => {
    const h = await call('GET', '/api/alerts/history?limit=10')
    assert.equal(h.statusCode, 200)
    assert.deepEqual(h.json(), { items: [], nextCursor: null })
    assert.equal((await call('GET', '/api/alerts/history?limit=0')).statusCode, 400)
    assert.deepEqual((await call('GET', '/api/alerts/active')).json(), { items: [] })
  })

  await t.test('OpenAPI documents the routes with their roles', async () => {
    const doc = (await call('GET', '/docs/json')).json()
    assert.equal(doc.paths['/api/alerts/rules'].get['x-role'], 'viewer')
    assert.equal(doc.paths['/api/alerts/rules'].post['x-role'], 'operator')
    assert.equal(doc.paths['/api/alerts/rules/{id}'].delete['x-role'], 'operator')
    assert.equal(doc.paths['/api/alerts/history'].get['x-role'], 'viewer')
    assert.equal(doc.paths['/api/alerts/active'].get['x-role'], 'viewer')
    assert.ok(doc.paths['/api/alerts/rules'].post.requestBody.content['application/json'].schema.properties.secret)
  })
})
