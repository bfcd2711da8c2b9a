// The alert evaluator with injected time: a threshold rule fires at N failures in its window and resolves once the
// condition has been false for a whole window; a spike rule fires on a burst over K x its baseline rate and not on a
// steady rate, nor on a burst below its minimum count; the partial-CONNECT condition and the profile match; the
// history store's bound and paging.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import Database from 'better-sqlite3'
import { createAlertHistory } from '../../src/alerts/history.ts'
import { AlertEvaluator, matches, type ObservedFailure, type RuleSpec } from '../../src/alerts/evaluator.ts'

const rule = (over: Partial<RuleSpec> = {}): RuleSpec => ({
  id: 1, name: 'r', enabled: true, reason: null, profile: null, minBytesReceived: 0, kind: 'threshold', count: 3,
  windowSec: 10, factor: 3, baselineSec: 600, ...over,
})
const failure = (at: number, over: Partial<ObservedFailure> = {}): ObservedFailure => ({
  occurredAt: at, reason: 'connect_timeout', bytesReceived: 10, ...over,
})
const T0 = 1_800_000_000_000

test('matching: reason, partial CONNECT (minBytesReceived), profile (a record without one is profile null)', () => {
  const cases: [Partial<RuleSpec>, Partial<ObservedFailure>, boolean][] = [
    [{}, {}, true],
    [{ reason: 'connect_timeout' }, {}, true],
    [{ reason: 'keepalive_timeout' }, {}, false],
    [{ minBytesReceived: 1 }, { bytesReceived: 0 }, false],
    [{ minBytesReceived: 1 }, { bytesReceived: 1 }, true],
    [{ profile: 'iot' }, {}, false],
    [{ profile: 'iot' }, { profile: 'iot' }, true],
    [{ profile: 'iot' }, { profile: null }, false],
    [{ profile: null }, { profile: 'iot' }, true],
  ]
  for (const [r, e, want] of cases) assert.equal(matches(rule(r), failure(T0, e)), want, JSON.stringify([r, e]))
})

test('threshold: fires at N in the window, stays firing while it holds, resolves after a whole window false', () => {
  const ev = new AlertEvaluator()
  ev.setRules([rule()], T0)
  ev.observe(failure(T0 + 1000))
  ev.observe(failure(T0 + 2000))
  assert.deepEqual(ev.evaluate(T0 + 2500), [])
  ev.observe(failure(T0 + 3000))
  const [fired] = ev.evaluate(T0 + 3500)
  assert.equal(fired.state, 'firing')
  assert.equal(fired.count, 3)
  assert.ok(fired.since <= T0 + 1000 && fired.until === T0 + 3500)
  assert.equal(ev.firing().length, 1)
  // the window slides past the failures at ~T0+11.5 s: false from then on, resolved one window (10 s) later
  assert.deepEqual(ev.evaluate(T0 + 12_000), [])
  assert.deepEqual(ev.evaluate(T0 + 21_000), [])
  const [resolved] = ev.evaluate(T0 + 22_100)
  assert.equal(resolved.state, 'resolved')
  assert.equal(resolved.count, 3)
  assert.equal(ev.firing().length, 0)
})

test('threshold: a condition true again before the window passes keeps it firing (no flapping)', () => {
  const ev = new AlertEvaluator()
  ev.setRules([rule({ count: 2, windowSec: 5 })], T0)
  ev.observe(failure(T0 + 100))
  ev.observe(failure(T0 + 200))
  assert.equal(ev.evaluate(T0 + 300)[0].state, 'firing')
  assert.deepEqual(ev.evaluate(T0 + 6000), []) // false since 6 s
  ev.observe(failure(T0 + 8000))
  ev.observe(failure(T0 + 8100))
  assert.deepEqual(ev.evaluate(T0 + 8200), []) // true again: still firing, not a second firing
  assert.deepEqual(ev.evaluate(T0 + 13_000), [])
  assert.equal(ev.evaluate(T0 + 19_000)[0].state, 'resolved')
})

test('spike: fires on a burst over factor x the baseline rate, not on a steady rate, not below its minimum count', () => {
  const spike = rule({ kind: 'spike', count: 5, windowSec: 10, factor: 3, baselineSec: 600 })
  const steady = new AlertEvaluator()
  steady.setRules([spike], T0)
  // one failure a second for 15 minutes: 10 per window, always; never a spike
  for (let s = 0; s < 900; s++) {
    steady.observe(failure(T0 + s * 1000 + 500))
    assert.deepEqual(steady.evaluate(T0 + s * 1000 + 900), [], `steady rate at ${s} s`)
  }
  // then 60 in 10 s (6x the rate): a spike
  for (let i = 0; i < 60; i++) steady.observe(failure(T0 + 900_000 + i * 150))
  const [fired] = steady.evaluate(T0 + 909_500)
  assert.equal(fired?.state, 'firing')
  assert.ok(fired.baselineCount! > 500, `baseline ${fired.baselineCount}`)

  // 0 -> 2 is not a spike (minimum count 5); 0 -> 6 is, once a baseline has been seen
  const quiet = new AlertEvaluator()
  quiet.setRules([spike], T0)
  quiet.observe(failure(T0 + 60_000))
  quiet.observe(failure(T0 + 60_100))
  assert.deepEqual(quiet.evaluate(T0 + 61_000), [])
  for (let i = 0; i < 6; i++) quiet.observe(failure(T0 + 120_000 + i * 100))
  assert.equal(quiet.evaluate(T0 + 121_000)[0]?.state, 'firing')

  // no spike before a whole window of baseline has been counted (just after start, every rate looks new)
  const fresh = new AlertEvaluator()
  fresh.setRules([spike], T0)
  for (let i = 0; i < 50; i++) fresh.observe(failure(T0 + 1000 + i * 10))
  assert.deepEqual(fresh.evaluate(T0 + 2000), [])
})

test('a firing rule resolves when deleted, disabled or changed; a renamed one keeps firing', () => {
  const ev = new AlertEvaluator()
  ev.setRules([rule({ count: 1 })], T0)
  ev.observe(failure(T0 + 10))
  assert.equal(ev.evaluate(T0 + 20)[0].state, 'firing')
  assert.deepEqual(ev.setRules([rule({ count: 1, name: 'renamed' })], T0 + 30), [])
  assert.equal(ev.firing()[0].rule.name, 'renamed')
  const [r] = ev.setRules([rule({ count: 1, enabled: false })], T0 + 40)
  assert.equal(r.state, 'resolved')
  assert.match(r.detail, /disabled/)
  assert.equal(ev.firing().length, 0)
})

test('the alert history keeps its newest events only, and pages newest first', () => {
  const db = new Database(':memory:')
  db.exec(readFileSync(new URL('../../migrations/010-alerts.sql', import.meta.url), 'utf8'))
  const history = createAlertHistory(db, { maxRows: 150 })
  for (let i = 1; i <= 400; i++) {
    history.record({
      ruleId: 1, ruleName: 'r', state: i % 2 ? 'firing' : 'resolved', at: T0 + i, count: i, baselineCount: null, windowSec: 1,
      reason: 'connect_timeout', profile: null, since: T0, until: T0 + i, detail: `event ${i}`,
    })
  }
  const rows = (db.prepare('SELECT count(*) AS n FROM alert_history').get() as { n: number }).n
  assert.ok(rows <= 250 && rows >= 150, `${rows} rows kept`)
  const first = history.list({ limit: 10 })
  assert.equal(first.items[0].count, 400)
  assert.equal(first.nextCursor, first.items[9].id)
  assert.equal(history.list({ limit: 10, before: first.nextCursor! }).items[0].count, 390)
  assert.deepEqual(history.list({ ruleId: 2 }).items, [])
  db.close()
})
