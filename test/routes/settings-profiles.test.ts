// Timeout profiles as part of the settings version: stored, diffed and rolled back with the rest; every bad profile
// refused with a 400 naming its field path, the settings (and the broker) left as they were; the convenience routes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import { startServer, TEST_TOKEN, type TestServer } from '../helpers.ts'

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` }

type Inject = { method: 'GET' | 'PATCH' | 'PUT' | 'POST'; url: string; payload?: unknown; headers?: Record<string, string> }
const call = (s: TestServer, r: Inject): Promise<LightMyRequestResponse> =>
  s.app.inject({ ...r, headers: { ...AUTH, ...r.headers } } as InjectOptions)

const browsers = { name: 'browsers', match: { origin: ['https://*.example.com'] }, overrides: { connectTimeoutMs: 15000 } }
const lan = { name: 'lan', match: { cidr: ['10.0.0.0/8', 'fd00::/8', '127.0.0.1'] }, overrides: { keepaliveMultiplier: 2 } }

async function server(t: { after(fn: () => Promise<void>): void }) {
  const s = await startServer()
  t.after(() => s.close())
  return s
}

test('profiles are a settings key: PATCHed, in force, in the history diff, rolled back', async (t) => {
  const s = await server(t)
  assert.deepEqual((await call(s, { method: 'GET', url: '/api/settings' })).json().values.profiles, [])
  const v2 = await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { profiles: [browsers, lan] }, comment: 'two kinds' } })
  assert.equal(v2.statusCode, 200, v2.body)
  assert.deepEqual(v2.json().values.profiles, [browsers, lan])
  assert.deepEqual(s.app.broker.settings.values.profiles, [browsers, lan])

  const v3 = await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { connectTimeoutMs: 4000 } } })
  assert.deepEqual(v3.json().values.profiles, [browsers, lan], 'a PATCH of another key keeps the profiles')
  const history = (await call(s, { method: 'GET', url: '/api/settings/history' })).json().items
  assert.deepEqual(history[0].diff.map((c: { key: string }) => c.key), ['connectTimeoutMs'], 'unchanged profiles are not in the diff')
  assert.deepEqual(history[1].diff, [{ key: 'profiles', from: [], to: [browsers, lan] }])

  const back = await call(s, { method: 'POST', url: '/api/settings/rollback', payload: { version: 1 } })
  assert.equal(back.statusCode, 200)
  assert.deepEqual(back.json().values.profiles, [])
  assert.deepEqual(s.app.broker.settings.values.profiles, [])
  const again = await call(s, { method: 'POST', url: '/api/settings/rollback', payload: { version: 2 } })
  assert.deepEqual(again.json().values.profiles, [browsers, lan], 'rollback restores old profiles')
})

const BAD: Array<[string, unknown[], string]> = [
  ['a CIDR that is no address block', [browsers, lan, { name: 'x', match: { cidr: ['10.0.0.0/33'] }, overrides: {} }], 'profiles.2.match.cidr.0'],
  ['a CIDR that is a name', [{ name: 'x', match: { cidr: ['localhost'] }, overrides: {} }], 'profiles.0.match.cidr.0'],
  ['a name used twice', [browsers, { ...lan, name: 'browsers' }], 'profiles.1.name'],
  ['an override out of its range', [{ name: 'x', match: {}, overrides: { connectTimeoutMs: 50 } }], 'profiles.0.overrides.connectTimeoutMs'],
  ['a key a profile cannot override', [{ name: 'x', match: {}, overrides: { maxConnections: 5 } }], 'profiles.0.overrides.maxConnections'],
  ['an unknown match key', [{ name: 'x', match: { port: [1] }, overrides: {} }], 'profiles.0.match.port'],
  ['an unknown transport', [{ name: 'x', match: { transport: ['udp'] }, overrides: {} }], 'profiles.0.match.transport.0'],
  ['a cross-field rule broken in the profile', [{ name: 'x', match: {}, overrides: { serverKeepaliveSec: 100, maxKeepaliveSec: 60 } }], 'profiles.0.overrides.serverKeepaliveSec'],
  ['a bad name', [{ name: 'no spaces', match: {}, overrides: {} }], 'profiles.0.name'],
  ['more than 50', Array.from({ length: 51 }, (_, i) => ({ name: `p${i}`, match: {}, overrides: {} })), 'profiles'],
]

for (const [what, profiles, field] of BAD) {
  test(`a bad profile is refused with 400 naming ${field}: ${what}; nothing changes`, async (t) => {
    const s = await server(t)
    await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { profiles: [browsers] } } })
    const before = (await call(s, { method: 'GET', url: '/api/settings' })).json()
    for (const [method, url, payload] of [
      ['PATCH', '/api/settings', { values: { profiles } }],
      ['PUT', '/api/settings/profiles', { profiles }],
    ] as const) {
      const res = await call(s, { method, url, payload })
      assert.equal(res.statusCode, 400, `${method} ${url}: ${res.body}`)
      const fields = res.json().fields.map((f: { field: string }) => f.field)
      assert.ok(fields.includes(field), `${method} ${url}: ${JSON.stringify(fields)} names ${field}`)
    }
    assert.deepEqual((await call(s, { method: 'GET', url: '/api/settings' })).json(), before)
    assert.equal(s.app.broker.settings.version, before.version)
    assert.deepEqual(s.app.broker.settings.values.profiles, [browsers])
  })
}

test('a global change that breaks a rule inside a profile is refused at the profile', async (t) => {
  const s = await server(t)
  await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { profiles: [{ name: 'short', match: {}, overrides: { maxKeepaliveSec: 60 } }] } } })
  const res = await call(s, { method: 'PATCH', url: '/api/settings', payload: { values: { serverKeepaliveSec: 120 } } })
  assert.equal(res.statusCode, 400)
  assert.deepEqual(res.json().fields.map((f: { field: string }) => f.field), ['profiles.0.overrides.maxKeepaliveSec'])
})

test('GET and PUT /api/settings/profiles: the profiles alone, a new version with a comment and If-Match', async (t) => {
  const s = await server(t)
  const put = await call(s, { method: 'PUT', url: '/api/settings/profiles', payload: { profiles: [lan], comment: 'LAN' }, headers: { 'if-match': '"1"' } })
  assert.equal(put.statusCode, 200, put.body)
  assert.equal(put.json().version, 2)
  assert.equal(put.json().comment, 'LAN')
  const get = await call(s, { method: 'GET', url: '/api/settings/profiles' })
  assert.equal(get.headers.etag, '"2"')
  assert.deepEqual(get.json(), { version: 2, profiles: [lan] })
  const stale = await call(s, { method: 'PUT', url: '/api/settings/profiles', payload: { profiles: [] }, headers: { 'if-match': '"1"' } })
  assert.equal(stale.statusCode, 412)
  const doc = (await call(s, { method: 'GET', url: '/docs/json' })).json()
  assert.match(doc.paths['/api/settings'].patch.description, /profiles\.2\.match\.cidr/)
  assert.ok(doc.paths['/api/settings/profiles'].put)
})
