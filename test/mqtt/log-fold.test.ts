// In a flood of failing connections the log writes the first few lines per reason and address, then one summary
// line per window, while every failure is still counted and reported to the failure log.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Broker } from '../../src/mqtt/broker.ts'
import { LogFold, LINES_PER_WINDOW, MAX_KEYS } from '../../src/mqtt/log-fold.ts'
import { DEFAULT_SETTINGS } from '../../src/settings/schema.ts'
import type { Logger } from '../../src/contracts/logger.ts'
import type { Transport } from '../../src/contracts/connection.ts'
import type { FailureEvent } from '../../src/contracts/failure.ts'

function capture(): { logger: Logger, lines: Array<{ level: string, msg: string, fields: Record<string, unknown> }> } {
  const lines: Array<{ level: string, msg: string, fields: Record<string, unknown> }> = []
  const at = (level: string) => (fields: object, msg?: string) => { lines.push({ level, msg: msg ?? '', fields: fields as Record<string, unknown> }) }
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines }
}

test('per reason and address: the first lines as they come, the rest as one summary when the window ends', () => {
  const { logger, lines } = capture()
  const fold = new LogFold(logger, 60_000)
  for (let i = 0; i < 12; i++) fold.log('warn', 'protocol_error', '10.0.0.1', { i }, `protocol_error: #${i}`)
  for (let i = 0; i < 2; i++) fold.log('warn', 'protocol_error', '10.0.0.2', { i }, `other address #${i}`)
  fold.log('info', 'connect_timeout', '10.0.0.1', {}, 'another reason')
  assert.equal(lines.length, LINES_PER_WINDOW + 2 + 1)
  assert.deepEqual(lines.slice(0, LINES_PER_WINDOW).map((l) => l.msg), [0, 1, 2, 3, 4].map((i) => `protocol_error: #${i}`))
  fold.flush()
  const summary = lines.slice(LINES_PER_WINDOW + 3)
  assert.equal(summary.length, 1, 'a summary only where lines were held back')
  assert.equal(summary[0].level, 'warn')
  assert.match(summary[0].msg, /^protocol_error: 7 more like this from 10\.0\.0\.1 in the last 60 s/)
  assert.equal(summary[0].fields.folded, 7)
  // a new window writes again
  fold.log('warn', 'protocol_error', '10.0.0.1', {}, 'next window')
  assert.equal(lines.at(-1)?.msg, 'next window')
})

test('an unknown address is named so, not as the fold of other addresses', () => {
  const { logger, lines } = capture()
  const fold = new LogFold(logger, 60_000)
  for (let i = 0; i < LINES_PER_WINDOW + 2; i++) fold.log('info', 'connection_lost', null, {}, 'gone')
  fold.flush()
  assert.match(lines.at(-1)!.msg, /^connection_lost: 2 more like this from an unknown address/)
})

test('past MAX_KEYS addresses in a window, new addresses share one fold per reason', () => {
  const { logger, lines } = capture()
  const fold = new LogFold(logger, 60_000)
  for (let i = 0; i < MAX_KEYS; i++) fold.log('warn', 'protocol_error', `10.1.${i >> 8}.${i & 255}`, {}, `address #${i}`)
  assert.equal(lines.length, MAX_KEYS, 'one line from each followed address')
  for (let i = 0; i < LINES_PER_WINDOW + 3; i++) fold.log('warn', 'protocol_error', `10.2.0.${i}`, {}, `new address #${i}`)
  assert.equal(lines.length, MAX_KEYS + LINES_PER_WINDOW, 'the new addresses folded together')
  fold.flush()
  assert.equal(lines.length, MAX_KEYS + LINES_PER_WINDOW + 1)
  assert.match(lines.at(-1)!.msg, /^protocol_error: 3 more like this from other addresses in the last 60 s/)
  assert.equal(lines.at(-1)!.fields.remoteAddress, null)
})

test('a flood through the broker: every failure counted and emitted, a handful of log lines', async () => {
  const { logger, lines } = capture()
  const broker = new Broker({ settings: { version: 1, values: { ...DEFAULT_SETTINGS } }, logger })
  const events: FailureEvent[] = []
  broker.on('failure', (e) => events.push(e))
  const noop = () => {}
  const transport = (): Transport => ({ write: () => true, end: noop, destroy: noop, pause: noop, resume: noop })
  const meta = { transport: 'ws' as const, remoteAddress: '192.0.2.7', remotePort: 1, userAgent: null, origin: null, subprotocol: null, openedAt: Date.now() }
  for (let i = 0; i < 200; i++) broker.handleConnection(transport(), meta).push(Buffer.from([0xc0, 0x00])) // PINGREQ first
  assert.equal(events.length, 200)
  assert.equal(broker.stats.failures.protocol_error, 200)
  const warned = () => lines.filter((l) => l.level === 'warn' && l.fields.reason === 'protocol_error')
  assert.equal(warned().length, LINES_PER_WINDOW)
  await broker.close() // the window's summary is written at the latest on close
  assert.equal(warned().length, LINES_PER_WINDOW + 1)
  assert.match(warned().at(-1)!.msg, /195 more like this from 192\.0\.2\.7/)
})
