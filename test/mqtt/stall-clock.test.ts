// The stall clock counts each stall once, and a deadline that moves to another object (a TLS socket taking over from
// the TCP socket it wraps) keeps what was given back.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { StallClock, StallAwareTimeout } from '../../src/mqtt/stall.ts'
import { delay } from '../helpers.ts'

function block(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) { /* the event loop cannot run */ }
}

test('a stall read by a deadline and then seen by the next tick is counted once', (t) => {
  const clock = new StallClock()
  clock.start()
  t.after(() => clock.stop())
  const t0 = performance.now()
  const before = clock.totalMs
  block(150)
  const read = clock.totalMs // a deadline asks: the lateness is counted here
  block(5)
  clock.tick() // the next tick: a busy loop since the last tick, but that time was counted already
  const counted = clock.totalMs - before
  const wall = performance.now() - t0
  assert.ok(read - before > 50, `the stall was counted (${read - before} ms)`)
  assert.ok(counted <= wall, `${counted.toFixed(0)} ms counted for ${wall.toFixed(0)} ms of wall time`)
})

test('a deadline carried over to a new object keeps the stall already given back', async (t) => {
  const clock = new StallClock()
  clock.start()
  t.after(() => clock.stop())
  const start = Date.now()
  const expired: string[] = []
  const first = new StallAwareTimeout(clock, start, 300, () => expired.push('first'))
  block(900) // past the deadline, the broker's own doing
  await delay(30) // the first deadline is due: the stall is given back, it waits on
  assert.equal(expired.length, 0)
  assert.ok(first.givenMs >= 500, `given back ${first.givenMs} ms`)
  // the wait moves on (TLS socket): the same start, the same length, what was given stays given
  const second = new StallAwareTimeout(clock, start, 300, () => expired.push('second'), first)
  first.cancel()
  await delay(60)
  assert.equal(expired.length, 0, 'not cut at once after the move')
  assert.equal(second.givenMs, first.givenMs)
  second.cancel()
})
