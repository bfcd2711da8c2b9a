// Roles in the admin UI, in real headless Chromium against the real app: a viewer sees everything read-only (no save,
// rollback, edit or delete, no Audit or Tokens page) and no click of anything it is shown meets a 403; an operator
// edits settings and reads the audit trail but has no Tokens page; an admin makes a token (its secret shown once,
// then gone from the page) and revokes one, and reads the audit trail, where a settings change links to its version in
// the history and a script-like username is shown as text.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Page } from 'playwright-core'
import { startServer, connectMqtt, hasChromium, until, TEST_TOKEN, type TestServer } from '../helpers.ts'
import { openUi, openTab, signIn, WAIT } from './browser.ts'

const XSS = '<img src=x onerror=alert(1)>'

async function makeToken(server: TestServer, name: string, role: string): Promise<string> {
  const res = await server.app.inject({ method: 'POST', url: '/api/admin-tokens', headers: server.auth, payload: { name, role } })
  assert.equal(res.statusCode, 201, res.body)
  return res.json().token
}

async function signOut(page: Page) {
  await page.click('#signout')
  await page.waitForSelector('#signin', { state: 'visible', ...WAIT })
}

const visibleTabs = (page: Page) =>
  page.$$eval('.tabs [data-tab]', (links) => links.filter((a) => (a as HTMLElement).offsetParent !== null).map((a) => (a as HTMLElement).dataset.tab))

/** The texts of the visible buttons in a view. */
const visibleButtons = (page: Page, tab: string) =>
  page.$$eval(`#view-${tab} button`, (buttons) => buttons
    .filter((b) => (b as HTMLElement).offsetParent !== null)
    .map((b) => (b.textContent ?? '').trim()))

const CHANGING = /^(Save|Discard|Roll back|Edit|Disable|Enable|Delete|Disconnect|Add rule|Create|Revoke|↑|↓|Confirm)/

test('roles in the admin UI', { skip: hasChromium() ? false : 'chromium not installed: apt-get install -y chromium', timeout: 120_000 }, async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const viewerToken = await makeToken(server, 'wall-screen', 'viewer')
  const operatorToken = await makeToken(server, 'on-call', 'operator')
  // something on every page: a second settings version (a rollback to offer), a user, a rule, a retained message, a session
  server.app.settingsStore.update({ maxConnections: 900 }, { actor: 'setup' })
  await server.app.inject({ method: 'POST', url: '/api/mqtt-users', headers: server.auth, payload: { username: 'sensor-1', password: 'Sensor-Pass-1' } })
  await server.app.inject({ method: 'POST', url: '/api/acl', headers: server.auth, payload: { topic: 'a/#', action: 'all', permission: 'allow' } })
  const { page, dialogs, pageErrors, clients } = await openUi(t)
  const publisher = await connectMqtt(server.wsUrl, { clientId: 'ui-publisher', clean: false })
  clients.push(publisher)
  await publisher.publishAsync('devices/7/config', '{"rate":5}', { qos: 1, retain: true })
  await until(() => server.app.broker.retained.size === 1, 'the retained message')

  /** Every /api/ answer the page got, as "STATUS METHOD path". */
  const answers: string[] = []
  page.on('response', (res) => {
    const url = new URL(res.url())
    if (url.pathname.startsWith('/api/')) answers.push(`${res.status()} ${res.request().method()} ${url.pathname}`)
  })
  const forbidden = () => answers.filter((a) => a.startsWith('403 '))

  await t.test('viewer: signed in as a viewer; no Audit or Tokens tab, and #tokens opens nothing', async () => {
    await signIn(page, server.url, viewerToken, '#failures')
    assert.match(await page.textContent('#signed-in') ?? '', /signed in as wall-screen · viewer/)
    assert.deepEqual(await visibleTabs(page), ['failures', 'settings', 'connections', 'nodes', 'users', 'acl', 'retained', 'sessions', 'alerts'])
    await page.evaluate(() => {
      location.hash = '#tokens'
    })
    await page.waitForSelector('#view-failures', { state: 'visible', ...WAIT })
    assert.equal(await page.isVisible('#view-tokens'), false)
    await page.evaluate(() => {
      location.hash = '#audit'
    })
    await page.waitForSelector('#view-failures', { state: 'visible', ...WAIT })
    assert.equal(await page.isVisible('#view-audit'), false)
  })

  await t.test('viewer: the settings are read only (inputs disabled, no save, no rollback)', async () => {
    await openTab(page, 'settings')
    await page.waitForSelector('#setting-connectTimeoutMs', { state: 'attached', ...WAIT })
    await page.waitForSelector('#settings-history .history-item', WAIT)
    assert.equal(await page.isVisible('#settings-readonly'), true)
    assert.equal(await page.isDisabled('#setting-connectTimeoutMs'), true)
    assert.equal(await page.isVisible('#settings-save'), false)
    assert.equal(await page.isVisible('#settings-comment'), false)
    assert.equal(await page.locator('#settings-history button.rollback').count(), 0)
    assert.deepEqual((await visibleButtons(page, 'settings')).filter((b) => CHANGING.test(b)), [])
  })

  await t.test('viewer: users, ACL, retained and sessions are listed without edit or delete; "try it" still answers', async () => {
    await openTab(page, 'users')
    await page.waitForSelector('#users-body tr[data-username="sensor-1"]', WAIT)
    assert.equal(await page.isVisible('#user-card'), false)
    assert.deepEqual((await visibleButtons(page, 'users')).filter((b) => CHANGING.test(b)), [])

    await openTab(page, 'acl')
    await page.waitForSelector('#acl-body tr', WAIT)
    assert.equal(await page.isVisible('#acl-card'), false)
    assert.deepEqual((await visibleButtons(page, 'acl')).filter((b) => CHANGING.test(b)), [])
    await page.fill('#try-clientId', 'c1')
    await page.fill('#try-username', 'sensor-1')
    await page.fill('#try-topic', 'a/b')
    await page.click('#try-check')
    await page.waitForSelector('#try-result[data-allowed="true"]', WAIT)

    await openTab(page, 'retained')
    // (a row's View button shown, not only its row: the view may still be coming into sight)
    await page.locator('#retained-body button[data-act="view"]').first().waitFor({ state: 'visible', ...WAIT })
    assert.equal(await page.isVisible('#retained-delete-prefix'), false)
    assert.deepEqual(await visibleButtons(page, 'retained').then((b) => b.filter((x) => CHANGING.test(x))), [])
    assert.ok((await visibleButtons(page, 'retained')).includes('View'))

    await openTab(page, 'sessions')
    await page.waitForSelector('#sessions-body tr', WAIT)
    assert.deepEqual((await visibleButtons(page, 'sessions')).filter((b) => CHANGING.test(b)), [])
  })

  await t.test('viewer: clicking everything it is shown never meets a 403', async () => {
    for (const tab of await visibleTabs(page)) {
      await openTab(page, tab as string)
      const buttons = page.locator(`#view-${tab} button:visible:enabled`)
      const n = await buttons.count()
      for (let i = 0; i < n; i++) {
        const button = buttons.nth(i)
        if (!(await button.isVisible()) || !(await button.isEnabled())) continue
        await button.click({ timeout: 2000 }).catch(() => {})
        await page.keyboard.press('Escape') // a detail dialog it opened
      }
      await page.waitForTimeout(150)
    }
    assert.deepEqual(forbidden(), [])
    assert.ok(answers.some((a) => a.startsWith('200 GET /api/settings')), 'the page did talk to the API')
    assert.equal(server.app.mqttUsers.get('sensor-1')?.enabled, true, 'nothing changed')
    assert.equal(server.app.broker.retained.size, 1)
    await signOut(page)
  })

  await t.test('operator: edits settings and has the Audit tab, not Tokens', async () => {
    await signIn(page, server.url, operatorToken, '#failures')
    assert.match(await page.textContent('#signed-in') ?? '', /on-call · operator/)
    assert.deepEqual(await visibleTabs(page), ['failures', 'settings', 'connections', 'nodes', 'users', 'acl', 'retained', 'sessions', 'alerts', 'audit'])
    await openTab(page, 'settings')
    await page.waitForSelector('#setting-connectTimeoutMs:enabled', WAIT)
    assert.equal(await page.isVisible('#settings-readonly'), false)
    await page.waitForSelector('#settings-history button.rollback', WAIT)
    await page.fill('#setting-connectTimeoutMs', '12000')
    await page.fill('#settings-comment', 'operator test')
    await page.click('#settings-save')
    await page.waitForFunction(() => /Saved as version \d+/.test(document.querySelector('#settings-message')?.textContent ?? ''), null, WAIT)
    assert.equal(server.app.settingsStore.current().values.connectTimeoutMs, 12000)
    assert.equal(server.app.settingsStore.current().updatedBy, 'on-call')

    await openTab(page, 'users')
    assert.equal(await page.isVisible('#user-card'), true)
    await page.evaluate(() => {
      location.hash = '#tokens'
    })
    await page.waitForSelector('#view-failures', { state: 'visible', ...WAIT })
    assert.equal(await page.isVisible('#view-tokens'), false)
    await openTab(page, 'audit')
    await page.waitForSelector('#audit-body tr[data-action="settings.update"]', WAIT)
    assert.match(await page.textContent('#audit-body tr[data-action="settings.update"]') ?? '', /on-call.*connectTimeoutMs/s)
    assert.deepEqual(forbidden(), [])
    await signOut(page)
  })

  let botSecret = ''
  await t.test('admin: the Tokens page lists the tokens; a new one\'s secret is shown once and then gone', async () => {
    await signIn(page, server.url, TEST_TOKEN, '#failures')
    assert.deepEqual((await visibleTabs(page)).slice(-2), ['audit', 'tokens'])
    await openTab(page, 'tokens')
    await page.waitForSelector('#tokens-body tr[data-name="on-call"]', WAIT)
    const names = await page.$$eval('#tokens-body tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.name))
    assert.deepEqual(names, ['admin', 'wall-screen', 'on-call'])
    const boot = page.locator('#tokens-body tr[data-name="admin"]')
    assert.match(await boot.textContent() ?? '', /boot token.*not revocable/s)
    assert.equal(await boot.locator('button').count(), 0)
    assert.match(await page.textContent('#tokens-body tr[data-name="wall-screen"]') ?? '', /viewer/)

    await page.fill('#token-name', 'ci-bot')
    await page.selectOption('#token-role', 'operator')
    await page.click('#token-create')
    await page.waitForSelector('#token-secret', { state: 'visible', ...WAIT })
    botSecret = (await page.textContent('#token-secret-value'))?.trim() ?? ''
    assert.match(botSecret, /^[A-Za-z0-9_-]{43}$/)
    assert.match(await page.textContent('#token-secret') ?? '', /shown only this once/)
    await page.waitForSelector('#tokens-body tr[data-name="ci-bot"]', WAIT)
    const who = await server.app.inject({ method: 'GET', url: '/api/whoami', headers: { authorization: `Bearer ${botSecret}` } })
    assert.deepEqual(who.json(), { name: 'ci-bot', role: 'operator' })

    await page.click('#token-secret-done')
    assert.equal(await page.isVisible('#token-secret'), false)
    assert.ok(!(await page.content()).includes(botSecret), 'the secret is gone from the page')
    await page.click('#tokens-refresh')
    await page.waitForTimeout(200)
    assert.ok(!(await page.content()).includes(botSecret), 'and the list never had it')

    // a taken name is refused at the field
    await page.fill('#token-name', 'ci-bot')
    await page.click('#token-create')
    await page.waitForFunction(() => (document.querySelector('#token-name-error')?.textContent ?? '') !== '', null, WAIT)
    assert.equal(await page.isVisible('#token-secret'), false)
  })

  await t.test('admin: revoking takes effect at once', async () => {
    const row = page.locator('#tokens-body tr[data-name="ci-bot"]')
    await row.locator('button[data-act="revoke"]').click()
    assert.match(await row.locator('button[data-act="revoke"]').textContent() ?? '', /Confirm/)
    await row.locator('button[data-act="revoke"]').click()
    await page.waitForSelector('#tokens-body tr[data-name="ci-bot"]', { state: 'detached', ...WAIT })
    assert.match(await page.textContent('#tokens-message') ?? '', /Revoked “ci-bot”/)
    const refused = await server.app.inject({ method: 'GET', url: '/api/whoami', headers: { authorization: `Bearer ${botSecret}` } })
    assert.equal(refused.statusCode, 401)
  })

  await t.test('admin: the audit trail shows each change; a script-like username is text; a settings change links to the history', async () => {
    const made = await server.app.inject({
      method: 'POST', url: '/api/mqtt-users', headers: { authorization: `Bearer ${operatorToken}` }, payload: { username: XSS, password: 'Xss-Pass-1', note: XSS },
    })
    assert.equal(made.statusCode, 201, made.body)
    await openTab(page, 'audit')
    await page.click('#audit-refresh')
    const row = page.locator('#audit-body tr[data-action="mqtt-user.create"]').first()
    await row.waitFor(WAIT)
    assert.equal(await row.locator('.audit-target code').textContent(), XSS)
    assert.equal(await row.locator('.audit-actor').textContent(), 'on-call')
    assert.equal(await page.locator('#audit-body img').count(), 0, 'no element was made from the name')
    assert.ok(await page.locator('#audit-body tr[data-action="token.revoke"]').count() === 1)
    assert.ok(await page.locator('#audit-body tr[data-action="token.create"]').count() >= 3)

    // filter by what
    await page.selectOption('#audit-action', 'token.')
    await page.click('#audit-filters button[type=submit]')
    await page.waitForFunction(() => [...document.querySelectorAll('#audit-body tr')].every((r) => (r as HTMLElement).dataset.action?.startsWith('token.')), null, WAIT)
    await page.click('#audit-filters button[type=reset]')
    await page.waitForSelector('#audit-body tr[data-action="settings.update"]', WAIT)

    // "version N" opens the Settings tab at that version of the history
    const version = server.app.settingsStore.current().version
    const link = page.locator(`#audit-body a[data-history-version="${version}"]`)
    await link.click()
    await page.waitForSelector('#view-settings', { state: 'visible', ...WAIT })
    await page.waitForSelector(`#settings-history li[data-version="${version}"].pointed`, WAIT)

    assert.deepEqual(forbidden(), [])
    assert.deepEqual(dialogs, [], 'no script ran')
    assert.deepEqual(pageErrors, [])
  })
})
