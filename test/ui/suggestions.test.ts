// The suggestions on the Settings page, in real headless Chromium against the real app: a card beside its field with
// the evidence; an operator's apply writes a settings version whose comment names the suggestion; a viewer sees the
// card but no apply button.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Page } from 'playwright-core'
import { startServer, hasChromium, TEST_TOKEN, type TestServer } from '../helpers.ts'
import { failureEvent } from '../failures/fixtures.ts'
import { openUi, openTab, signIn as signInAt, WAIT } from './browser.ts'

async function signIn(page: Page, server: TestServer, token: string) {
  await signInAt(page, server.url, token, '#failures')
  await openTab(page, 'settings')
}

const CARD = '#suggestions-connectTimeoutMs .suggestion[data-profile=""]'

test('suggestions in the admin UI', { skip: hasChromium() ? false : 'chromium not installed: apt-get install -y chromium', timeout: 120_000 }, async (t) => {
  const server = await startServer({ settings: {
    connectTimeoutMs: 2000, profiles: [{ name: 'slow', match: { cidr: ['10.9.0.0/16'] }, overrides: { maxQueuedMessages: 50 } }],
  } })
  t.after(() => server.close())
  // by hand: p99 200 ms x 1.5 = 300; globally the largest near miss 2400 ms x 1.2 = 2880 -> 3000; under profile
  // "slow" its one near miss 1000 ms x 1.2 = 1200 -> 1500
  for (let i = 0; i < 50; i++) server.app.failureLog.recordConnectLatency(200)
  server.app.failureLog.record(failureEvent({ occurredAt: Date.now() - 60_000, remoteAddress: '10.3.0.1', durationMs: 2400, bytesReceived: 12 }))
  server.app.failureLog.record(failureEvent({ occurredAt: Date.now() - 60_000, remoteAddress: '10.9.0.1', durationMs: 1000, bytesReceived: 7, profile: 'slow' }))
  const res = await server.app.inject({ method: 'POST', url: '/api/admin-tokens', headers: server.auth, payload: { name: 'wall', role: 'viewer' } })
  const viewerToken: string = res.json().token
  const { page, pageErrors, dialogs } = await openUi(t)

  await t.test('a viewer sees the suggestion and its evidence, and no apply button', async () => {
    await signIn(page, server, viewerToken)
    await page.waitForSelector(CARD, { state: 'visible', ...WAIT })
    const text = await page.textContent(CARD)
    assert.match(text ?? '', /suggested 3,?000 ms/)
    assert.match(text ?? '', /2 near misses, largest 2,?400 ms/)
    assert.equal(await page.locator('.apply-suggestion').count(), 0)
    await page.click('#signout')
    await page.waitForSelector('#signin', { state: 'visible', ...WAIT })
  })

  await t.test('an operator applies it: a new version with the value and the comment that names the suggestion', async () => {
    await signIn(page, server, TEST_TOKEN)
    const before = server.app.settingsStore.current().version
    const button = page.locator(`${CARD} .apply-suggestion`)
    await button.waitFor({ state: 'visible', ...WAIT })
    await button.click()
    await page.waitForFunction(() => /Applied: version \d+/.test(document.querySelector('#settings-message')?.textContent ?? ''), null, WAIT)
    const now = server.app.settingsStore.current()
    assert.equal(now.version, before + 1)
    assert.equal(now.values.connectTimeoutMs, 3000)
    assert.match(now.comment ?? '', /^suggestion: connectTimeoutMs 3000 \(/)
    assert.equal(server.app.broker.settings.values.connectTimeoutMs, 3000, 'in force in the broker')
    // the history shows it, and the card now says the value is in force (nothing left to apply)
    await page.waitForFunction(() => /suggestion: connectTimeoutMs 3000/.test(document.querySelector('#settings-history .history-item')?.textContent ?? ''), null, WAIT)
    await page.waitForFunction((sel) => document.querySelector(sel)?.querySelector('.apply-suggestion') === null &&
      /now 3,?000 ms/.test(document.querySelector(sel)?.textContent ?? ''), CARD, WAIT)
  })

  await t.test('a profile\'s suggestion is applied as that profile\'s override, its other overrides kept', async () => {
    const before = server.app.settingsStore.current().version
    const button = page.locator('#suggestions-connectTimeoutMs .suggestion[data-profile="slow"] .apply-suggestion')
    await button.waitFor({ state: 'visible', ...WAIT })
    await button.click()
    await page.waitForFunction((v) => new RegExp(`Applied: version ${v}`).test(document.querySelector('#settings-message')?.textContent ?? ''), before + 1, WAIT)
    const now = server.app.settingsStore.current()
    assert.equal(now.values.connectTimeoutMs, 3000, 'the global value stays')
    assert.deepEqual(now.values.profiles[0].overrides, { maxQueuedMessages: 50, connectTimeoutMs: 1500 })
    assert.match(now.comment ?? '', /^suggestion: profile "slow" connectTimeoutMs 1500 \(/)
    assert.deepEqual(pageErrors, [])
    assert.deepEqual(dialogs, [])
  })
})
