// Rules and history survive a restart (a real SQLite file); a rule that fired when the broker stopped is resolved at
// the next start, its webhook told so, since its counters start afresh.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { RawClient, startServer, tempDir, until } from '../helpers.ts'
import { receiver } from './receiver.ts'

test('a rule firing at shutdown is resolved at the next start', { timeout: 30_000 }, async (t) => {
  const { dir, cleanup } = tempDir()
  t.after(cleanup)
  const dbPath = join(dir, 'broker.db')
  const hook = await receiver(t)

  const first = await startServer({ config: { dbPath } })
  first.app.alerts.tune({ evaluateEveryMs: 100 })
  const created = await first.app.inject({
    method: 'POST', url: '/api/alerts/rules', headers: first.auth,
    payload: { name: 'restart-me', reason: 'protocol_error', count: 1, windowSec: 600, webhookUrl: hook.url },
  })
  assert.equal(created.statusCode, 201, created.body)
  const raw = await RawClient.open(first.wsUrl)
  raw.sendBytes(Buffer.from([0xc0, 0x00]))
  await raw.closed()
  await until(() => first.app.alerts.active().length === 1, 'the rule firing')
  await hook.waitFor(1, (r) => r.json.state === 'firing')
  await first.close()

  const second = await startServer({ config: { dbPath } })
  t.after(() => second.close())
  const rule = second.app.alerts.list().find((r) => r.name === 'restart-me')
  assert.ok(rule, 'the rule is still there')
  assert.equal(rule.firing, false)
  const history = (await second.app.inject({ method: 'GET', url: '/api/alerts/history', headers: second.auth })).json().items
  assert.deepEqual(history.map((e: { state: string }) => e.state), ['resolved', 'firing'])
  assert.match(history[0].detail, /restarted/)
  const [resolved] = await hook.waitFor(1, (r) => r.json.state === 'resolved')
  assert.equal(resolved.json.rule.name, 'restart-me')
})
