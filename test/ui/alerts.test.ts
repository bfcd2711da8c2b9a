// The Alerts page in headless Chromium against the real app: the built-in rule listed and marked (no Delete), a rule
// added through the form (a bad webhook URL refused at its field first), real raw clients making it fire, the banner
// on every page while it fires, and the history's link opening the failure list filtered to the failures behind it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connectMqtt, hasChromium, RawClient, startServer, TEST_TOKEN, until, type TestServer } from '../helpers.ts'
import { openUi, openTab, screenshot, signIn, WAIT } from './browser.ts'

/** `n` raw WebSocket clients that send PINGREQ before CONNECT: n protocol_error failures. */
async function protocolErrors(s: TestServer, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, async () => {
    const raw = await RawClient.open(s.wsUrl)
    raw.sendBytes(Buffer.from([0xc0, 0x00]))
    await raw.closed().catch(() => raw.close())
  }))
}

test('alerts page, banner and history link in headless Chromium', { skip: hasChromium() ? false : 'chromium not installed: apt-get install -y chromium', timeout: 90_000 }, async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  server.app.alerts.tune({ evaluateEveryMs: 100 })
  const { page, dialogs, pageErrors, clients } = await openUi(t)
  // a few connected clients: the connect-latency chart of the README's picture has something to show
  for (let i = 0; i < 6; i++) clients.push(await connectMqtt(server.wsUrl, { clientId: `dashboard-${i}` }))

  await t.test('signs in; the Alerts tab lists the built-in rule, which cannot be deleted', async () => {
    await signIn(page, server.url, TEST_TOKEN)
    assert.equal(await page.isVisible('#alert-banner'), false, 'no banner while nothing fires')
    await openTab(page, 'alerts')
    const row = page.locator('#alerts-body tr[data-name="partial-connect-timeouts"]')
    await row.waitFor(WAIT)
    const text = await row.textContent() ?? ''
    assert.match(text, /built-in/)
    assert.match(text, /connect timeout, after part of a CONNECT/)
    assert.match(text, /≥ 20 in 60 s/)
    assert.equal(await row.locator('button[data-act="delete"]').count(), 0)
    assert.equal(await row.locator('button[data-act="edit"]').count(), 1)
  })

  await t.test('adds a rule: a bad webhook URL is refused at its field, then the rule is listed', async () => {
    await page.fill('#alert-name', 'ui-protocol-errors')
    await page.selectOption('#alert-reason', 'protocol_error')
    await page.fill('#alert-count', '2')
    await page.fill('#alert-windowSec', '4')
    await page.fill('#alert-webhookUrl', 'ftp://example.com/hook')
    await page.click('#alert-save')
    await page.waitForSelector('.form-field[data-field="webhookUrl"].invalid', WAIT)
    assert.match(await page.textContent('#alert-webhookUrl-error') ?? '', /http/)
    await page.fill('#alert-webhookUrl', '')
    await page.click('#alert-save')
    await page.locator('#alerts-body tr[data-name="ui-protocol-errors"]').waitFor(WAIT)
    assert.equal(server.app.alerts.list().find((r) => r.name === 'ui-protocol-errors')?.reason, 'protocol_error')
  })

  await t.test('the banner shows while the rule fires, on every page', async () => {
    await protocolErrors(server, 3)
    await page.waitForSelector('#alert-banner li[data-rule="ui-protocol-errors"]', WAIT)
    assert.equal(await page.isVisible('#alert-banner'), true)
    await page.waitForSelector('#alerts-body tr[data-name="ui-protocol-errors"] .alert-state[data-state="firing"]', WAIT)
    await openTab(page, 'settings')
    assert.equal(await page.isVisible('#alert-banner'), true, 'still shown on another page')
    // (more of them: the rule goes on firing however slowly a loaded machine draws the pages below)
    await protocolErrors(server, 3)
    // the README's picture: the failure list and its charts under the banner
    await openTab(page, 'failures')
    await page.waitForSelector('#chart-failures svg', WAIT)
    assert.equal(await page.isVisible('#alert-banner'), true)
    assert.ok(await screenshot(page, 'dashboard', { docs: true }) > 10_000)
    await openTab(page, 'alerts')
  })

  await t.test('the history links to the failure list filtered to the failures behind the event', async () => {
    await until(() => server.app.failureLog.stats().written >= 6, 'the failures written')
    await page.click('#alert-history-refresh')
    const link = page.locator('#alert-history-body tr[data-state="firing"] a[data-failures-query]').first()
    await link.waitFor(WAIT)
    await link.click()
    await page.waitForSelector('#view-failures', { state: 'visible', ...WAIT })
    assert.equal(await page.inputValue('#filter-reason'), 'protocol_error')
    assert.notEqual(await page.inputValue('#filter-since'), '')
    assert.notEqual(await page.inputValue('#filter-until'), '')
    await page.waitForFunction(() => document.querySelectorAll('#failures-body tr').length >= 3, undefined, WAIT)
    const reasons = await page.$$eval('#failures-body tr', (rows) => rows.map((r) => r.textContent ?? ''))
    assert.ok(reasons.every((r) => /protocol error/.test(r)), reasons.join('\n'))
  })

  await t.test('the banner goes when the rule resolves', async () => {
    await page.waitForSelector('#alert-banner', { state: 'hidden', timeout: 15_000 })
    assert.deepEqual(dialogs, [])
    assert.deepEqual(pageErrors, [])
  })
})
