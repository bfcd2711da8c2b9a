// The admin UI in real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core) against the real
// app on a free port: sign-in, a failure appearing live, filters, the detail with its hex dump, the settings form
// with a 400 from the API, a save, a rollback, live connections, and a script-injection client id shown as text.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Page } from 'playwright-core'
import mqttPacket from 'mqtt-packet'
import { startServer, RawClient, connectMqtt, waitForFailure, hasChromium, type TestServer } from '../helpers.ts'
import { failureEvent } from '../failures/fixtures.ts'
import { openUi, screenshot, WAIT } from './browser.ts'

const XSS_ID = '<img src=x onerror=alert(1)>'

/** The first `n` bytes of a real CONNECT: what a client on a lossy link has managed to send. */
function partialConnect(n: number): Buffer {
  const full = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: 'slow-sensor-7' })
  return full.subarray(0, n)
}

async function setFilters(page: Page, f: { reason?: string; clientId?: string }) {
  await page.selectOption('#filter-reason', f.reason ?? '')
  await page.fill('#filter-client', f.clientId ?? '')
  await page.click('#failure-filters button[type=submit]')
}

/** Text of every row's reason badge, in table order. */
const rowReasons = (page: Page) => page.$$eval('#failures-body tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.reason))

test('admin UI in headless Chromium', { skip: hasChromium() ? false : 'chromium not installed: apt-get install -y chromium', timeout: 60_000 }, async (t) => {
  const server: TestServer = await startServer({ settings: { connectTimeoutMs: 300 } })
  t.after(() => server.close())
  const { page, dialogs, pageErrors, clients } = await openUi(t)

  await t.test('/admin redirects to the UI, which asks for the token and refuses a wrong one', async () => {
    const res = await page.goto(`${server.url}/admin`)
    assert.equal(new URL(page.url()).pathname, '/admin/')
    assert.match(res?.headers()['content-security-policy'] ?? '', /script-src 'self'/)
    await page.waitForSelector('#signin-token', { state: 'visible', ...WAIT })
    await page.fill('#signin-token', 'not-the-token')
    await page.click('#signin-form button[type=submit]')
    await page.waitForFunction(() => document.querySelector('#signin-message')?.textContent?.includes('401'), null, WAIT)
    assert.equal(await page.isVisible('#app'), false)
  })

  await t.test('signs in; the token lives in sessionStorage only; the live feed opens', async () => {
    await page.fill('#signin-token', server.token)
    await page.click('#signin-form button[type=submit]')
    await page.waitForSelector('#app', { state: 'visible', ...WAIT })
    await page.waitForSelector('#status-stream[data-state="ok"]', WAIT)
    await page.waitForFunction(() => document.querySelector('#status-timeout')?.textContent === '300 ms', null, WAIT)
    const stored = await page.evaluate(() => ({ session: Object.values(sessionStorage), local: Object.values(localStorage) }))
    assert.deepEqual(stored, { session: [server.token], local: [] })
    assert.equal(await page.isVisible('#failures-empty'), true)
  })

  await t.test('a client that sends nothing times out and its failure appears without a reload', async () => {
    const silent = await RawClient.open(server.wsUrl)
    t.after(() => silent.close())
    await page.waitForSelector('#failures-body tr[data-reason="connect_timeout"].fresh', WAIT)
    const text = await page.textContent('#failures-body tr[data-reason="connect_timeout"]')
    assert.match(text ?? '', /connect timeout/)
    // the node it happened on, as text (one node: hostname:port)
    assert.equal(await page.textContent('#failures-body tr[data-reason="connect_timeout"] .node-cell'), server.app.failureLog.node)
    assert.match(await page.textContent('#status-stream') ?? '', /live feed on/)
  })

  await t.test('filters by reason and client id prefix', async () => {
    // a second reason: a PUBLISH before CONNECT is a protocol error
    const rude = await RawClient.open(server.wsUrl)
    t.after(() => rude.close())
    const failed = waitForFailure(server, (e) => e.reason === 'protocol_error')
    rude.send({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 0, dup: false, retain: false })
    await failed
    await page.waitForSelector('#failures-body tr[data-reason="protocol_error"]', WAIT)
    assert.deepEqual(new Set(await rowReasons(page)), new Set(['connect_timeout', 'protocol_error']))

    await setFilters(page, { reason: 'protocol_error' })
    await page.waitForFunction(() => [...document.querySelectorAll('#failures-body tr')].every((r) => (r as HTMLElement).dataset.reason === 'protocol_error'), null, WAIT)
    assert.deepEqual(await rowReasons(page), ['protocol_error'])

    await page.fill('#filter-address', '10.9.9.9')
    await page.click('#failure-filters button[type=submit]')
    await page.waitForSelector('#failures-empty', { state: 'visible', ...WAIT })
    await page.fill('#filter-address', '127.0.0.1')
    await setFilters(page, { reason: 'connect_timeout' })
    await page.waitForFunction(() => document.querySelectorAll('#failures-body tr[data-reason="connect_timeout"]').length === 1, null, WAIT)
    await page.fill('#filter-address', '')

    await setFilters(page, { clientId: 'no-such-prefix' })
    await page.waitForSelector('#failures-empty', { state: 'visible', ...WAIT })
    assert.equal(await page.locator('#failures-body tr').count(), 0)

    // by transport: these failures came over WebSocket, none over TCP
    await setFilters(page, {})
    await page.selectOption('#filter-transport', 'tcp')
    await page.click('#failure-filters button[type=submit]')
    await page.waitForSelector('#failures-empty', { state: 'visible', ...WAIT })
    await page.selectOption('#filter-transport', 'ws')
    await page.click('#failure-filters button[type=submit]')
    await page.waitForFunction(() => document.querySelectorAll('#failures-body tr').length === 2, null, WAIT)

    await page.click('#failure-filters button[type=reset]')
    await page.waitForFunction(() => document.querySelectorAll('#failures-body tr').length === 2, null, WAIT)
  })

  await t.test('the detail shows every field, the hint and a hex + ASCII dump of the first bytes', async () => {
    const slow = await RawClient.open(server.wsUrl)
    t.after(() => slow.close())
    slow.sendBytes(partialConnect(12)) // 10 xx 00 04 'MQTT' 04 02 00 1e: 12 bytes, never the rest
    const failure = await waitForFailure(server, (e) => e.reason === 'connect_timeout' && e.bytesReceived === 12)
    assert.equal(failure.phase, 'awaiting_connect')
    // the row whose Bytes column says 12
    const id = await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll<HTMLTableRowElement>('#failures-body tr[data-reason="connect_timeout"]')]
      return rows.find((r) => r.cells[6]?.textContent === '12')?.dataset.id
    }, null, WAIT)
    await page.click(`#failures-body tr[data-id="${await id.jsonValue()}"]`)
    await page.waitForSelector('#failure-detail[open] #detail-hexdump', WAIT)
    const dump = await page.textContent('#detail-hexdump')
    assert.match(dump ?? '', /^0000 {2}10 [0-9a-f]{2} 00 04 4d 51 54 54 {2}04 02 00 1e/)
    assert.match(dump ?? '', /\|\..\.\.MQTT\.\.\.\.\s*\|/)
    const fields = await page.$$eval('#detail-body dt', (dts) => dts.map((d) => d.textContent))
    for (const key of ['id', 'occurredAt', 'reason', 'phase', 'clientId', 'remoteAddress', 'durationMs', 'bytesReceived',
      'firstBytesHex', 'detail', 'hint', 'settingsVersion', 'foldedCount']) {
      assert.ok(fields.includes(key), `detail lists ${key}`)
    }
    assert.equal(await page.textContent('#detail-body dd[data-field="bytesReceived"]'), '12')
    assert.equal(await page.textContent('#detail-body dd[data-field="hint"]'), failure.hint)
    assert.match(await page.textContent('#detail-body .hint') ?? '', new RegExp(failure.hint.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    await page.keyboard.press('Escape')
    await page.waitForSelector('#failure-detail', { state: 'hidden', ...WAIT })
  })

  await t.test('settings: a bad value gets the API\'s 400 next to its field, a good one is saved and in force', async () => {
    await page.click('a[data-tab="settings"]')
    await page.waitForSelector('#setting-connectTimeoutMs', { state: 'visible', ...WAIT })
    // range, description and scope come from the schema
    const field = page.locator('.field[data-field="connectTimeoutMs"]')
    assert.match(await field.locator('.range').textContent() ?? '', /100 – 600,000 ms/)
    assert.match(await field.locator('.scope').textContent() ?? '', /still waiting for CONNECT/)

    // one successful connection in the latency histogram: the what-if line counts it (asked from the server)
    clients.push(await connectMqtt(server.wsUrl, { clientId: 'dashboard-test-client', keepalive: 20 }))
    await page.fill('#setting-connectTimeoutMs', '50')
    await page.waitForFunction(() => /What if: [01] of the last 1 successful connections .*took longer than 50 ms/.test(document.querySelector('#what-if')?.textContent ?? ''), null, WAIT)
    await page.click('#settings-save')
    await page.waitForFunction(() => (document.querySelector('#setting-connectTimeoutMs-error')?.textContent ?? '') !== '', null, WAIT)
    assert.match(await page.textContent('#setting-connectTimeoutMs-error') ?? '', /100/)
    assert.equal(await field.evaluate((el) => el.classList.contains('invalid')), true)
    assert.equal(server.app.settingsStore.current().values.connectTimeoutMs, 300, 'nothing stored')

    await page.fill('#setting-connectTimeoutMs', '400')
    await page.fill('#settings-comment', 'from the UI test')
    await page.click('#settings-save')
    await page.waitForFunction(() => /Saved as version \d+/.test(document.querySelector('#settings-message')?.textContent ?? ''), null, WAIT)
    assert.equal(await page.textContent('#setting-connectTimeoutMs-error'), '')
    assert.equal(server.app.settingsStore.current().values.connectTimeoutMs, 400)
    assert.equal(server.app.broker.settings.values.connectTimeoutMs, 400, 'in force in the broker')
    await page.waitForFunction(() => document.querySelector('#status-timeout')?.textContent === '400 ms', null, WAIT)
    // the history shows the change as a diff with the comment
    const newest = page.locator('#settings-history .history-item').first()
    await newest.locator('.diff').waitFor(WAIT)
    assert.match(await newest.textContent() ?? '', /connectTimeoutMs\s*300\s*→\s*400/)
    assert.match(await newest.textContent() ?? '', /from the UI test/)
  })

  await t.test('rollback from the history puts the earlier values back in force', async () => {
    const before = server.app.settingsStore.current().version
    const target = before - 1 // the version with connectTimeoutMs 300
    const button = page.locator(`#settings-history button.rollback[data-version="${target}"]`)
    await button.click()
    assert.match(await button.textContent() ?? '', /Confirm/)
    await button.click()
    await page.waitForFunction(() => /Rolled back/.test(document.querySelector('#settings-message')?.textContent ?? ''), null, WAIT)
    const now = server.app.settingsStore.current()
    assert.equal(now.version, before + 1)
    assert.equal(now.values.connectTimeoutMs, 300)
    assert.equal(server.app.broker.settings.values.connectTimeoutMs, 300)
    assert.equal(await page.inputValue('#setting-connectTimeoutMs'), '300')
  })

  await t.test('live connections are listed with their keepalive in force; a script-like client id is text', async () => {
    clients.push(await connectMqtt(server.wsUrl, { clientId: XSS_ID, keepalive: 30 }))
    await page.click('a[data-tab="connections"]')
    await page.click('#connections-refresh')
    await page.waitForFunction(() => document.querySelectorAll('#connections-body tr').length === 2, null, WAIT)
    const ids = await page.$$eval('#connections-body .client-id', (cells) => cells.map((c) => c.textContent))
    assert.deepEqual(new Set(ids), new Set(['dashboard-test-client', XSS_ID]))
    const row = page.locator('#connections-body tr').filter({ hasText: 'dashboard-test-client' })
    assert.match(await row.textContent() ?? '', /20 s/)
    assert.match(await row.textContent() ?? '', /30 s/, 'dropped after 20 s x 1.5')
    assert.equal(await page.locator('#connections-body img').count(), 0)
  })

  await t.test('the script-like client id of a failure shows literally and runs nothing', async () => {
    // a second client with the same id takes the session over: the first one's failure is `taken_over`
    const takenOver = waitForFailure(server, (e) => e.reason === 'taken_over' && e.clientId === XSS_ID)
    clients.push(await connectMqtt(server.wsUrl, { clientId: XSS_ID, keepalive: 30 }))
    await takenOver
    await page.click('a[data-tab="failures"]')
    const row = page.locator('#failures-body tr[data-reason="taken_over"]')
    await row.first().waitFor(WAIT)
    assert.equal(await row.first().locator('.client-id').textContent(), XSS_ID)
    assert.equal(await page.locator('#failures-body img, #app img').count(), 0)
    await row.first().click()
    await page.waitForSelector('#failure-detail[open]', WAIT)
    assert.equal(await page.textContent('#detail-body dd[data-field="clientId"]'), XSS_ID)
    assert.equal(await page.locator('#failure-detail img').count(), 0)
    await page.keyboard.press('Escape')
    assert.deepEqual(dialogs, [], 'no alert() ran')
  })

  await t.test('charts: failures by reason over time, and the latency histogram with connectTimeoutMs on it', async () => {
    await page.selectOption('#stats-window', String(3_600_000))
    // three MQTT.js clients connected: their connect latencies are in the histogram
    await page.waitForFunction(() => /^3 connections/.test(document.querySelector('#latency-summary')?.textContent ?? ''), null, WAIT)
    assert.match(await page.textContent('#chart-latency svg .marker') ?? '', /connectTimeoutMs 300 ms/)
    const legend = await page.$$eval('#chart-legend .legend-item', (items) => items.map((i) => i.textContent))
    assert.deepEqual(new Set(legend), new Set(['connect timeout', 'protocol error', 'taken over']))
    const bars = await page.$$eval('#chart-failures rect.bar', (rects) => rects.map((r) => r.getAttribute('data-reason')))
    assert.ok(bars.includes('connect_timeout') && bars.includes('taken_over'))
  })

  await t.test('screenshot of the dashboard', async () => {
    await page.evaluate(() => {
      window.scrollTo(0, 0)
      ;(document.activeElement as HTMLElement | null)?.blur()
    })
    await page.waitForSelector('#chart-failures svg', WAIT)
    await page.waitForSelector('#chart-latency svg .marker', WAIT)
    // (the README's picture comes from test/ui/alerts.test.ts: the same page with an alert firing)
    assert.ok(await screenshot(page, 'failures') > 10_000)
  })

  await t.test('cursor paging: "Load more" brings the next page under the filters', async () => {
    // 60 failures from 60 addresses (so that none is folded into another), written through the real log
    for (let i = 0; i < 60; i++) {
      server.app.failureLog.record(failureEvent({ reason: 'connection_lost', phase: 'connected', clientId: `pager-${i}`, remoteAddress: `10.0.0.${i}` }))
    }
    server.app.failureLog.flush()
    await page.click('a[data-tab="failures"]')
    await setFilters(page, { clientId: 'pager-' })
    await page.waitForFunction(() => document.querySelectorAll('#failures-body tr').length === 50, null, WAIT)
    assert.equal(await page.isVisible('#failures-more'), true)
    assert.equal(await page.textContent('#failures-body tr:first-child .client-id'), 'pager-59', 'newest first')
    await page.click('#failures-more')
    await page.waitForFunction(() => document.querySelectorAll('#failures-body tr').length === 60, null, WAIT)
    assert.equal(await page.textContent('#failures-body tr:last-child .client-id'), 'pager-0')
    await page.waitForSelector('#failures-more', { state: 'hidden', ...WAIT })
  })

  await t.test('a 401 later on shows the sign-in again with a message', async () => {
    await page.evaluate(() => {
      for (const key of Object.keys(sessionStorage)) sessionStorage.setItem(key, 'revoked-token')
      // the next request (this one, or any timer's) gets the 401
      document.querySelector<HTMLButtonElement>('#connections-refresh')?.click()
    })
    await page.waitForSelector('#signin', { state: 'visible', ...WAIT })
    assert.match(await page.textContent('#signin-message') ?? '', /401/)
    assert.equal(await page.isVisible('#app'), false)
    assert.deepEqual(pageErrors, [])
    assert.deepEqual(dialogs, [])
  })
})
