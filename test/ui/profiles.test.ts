// The timeout profiles editor and the failure log's profile in real headless Chromium against the real app: the
// profiles in force listed in order, add, move, a 400 shown at the field it names (nothing stored), a save with a
// comment that is in force at once, remove; a client-controlled pattern shown as text; a failure's profile in its
// detail and the failure list filtered by profile.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, RawClient, hasChromium, waitForFailure, type TestServer } from '../helpers.ts'
import { openUi, signIn, WAIT } from './browser.ts'

const XSS = '<img src=x onerror=alert(1)>'

test('timeout profiles in the admin UI', { skip: hasChromium() ? false : 'chromium not installed', timeout: 60_000 }, async (t) => {
  const server: TestServer = await startServer({
    settings: {
      connectTimeoutMs: 5000,
      profiles: [{ name: 'lan', match: { cidr: ['127.0.0.1/32'], userAgent: [XSS] }, overrides: { connectTimeoutMs: 5000 } },
        { name: 'local', match: { cidr: ['127.0.0.0/8'] }, overrides: { connectTimeoutMs: 300 } }],
    },
  })
  t.after(() => server.close())
  const { page, dialogs, pageErrors } = await openUi(t)
  const store = server.app.settingsStore

  await signIn(page, server.url, server.token)

  await t.test('the profiles in force, in order, client text as text', async () => {
    await page.click('a[data-tab="settings"]')
    await page.waitForSelector('#profiles-list .profile', { state: 'visible', ...WAIT })
    const names = await page.$$eval('#profiles-list input[data-key="name"]', (els) => els.map((e) => (e as HTMLInputElement).value))
    assert.deepEqual(names, ['lan', 'local'])
    assert.equal(await page.inputValue('#profiles-list .profile >> nth=0 >> textarea[data-match="userAgent"]'), XSS)
    assert.equal(await page.locator('#profiles-list img').count(), 0)
    assert.equal(await page.inputValue('#profiles-list .profile >> nth=1 >> [data-override="connectTimeoutMs"]'), '300')
  })

  await t.test('add and move a profile; a bad CIDR gets the 400 at its field and nothing is stored', async () => {
    const before = store.current().version
    await page.click('#profile-add')
    const added = page.locator('#profiles-list .profile').nth(2)
    await added.locator('input[data-key="name"]').fill('browsers')
    await added.locator('textarea[data-match="origin"]').fill('https://*.example.com')
    await added.locator('[data-override="connectTimeoutMs"]').fill('1500')
    await added.locator('[data-override="keepaliveMultiplier"]').fill('2')
    // up twice: first in the list
    await added.locator('button[aria-label="move up"]').click()
    await page.locator('#profiles-list .profile').nth(1).locator('button[aria-label="move up"]').click()
    const names = await page.$$eval('#profiles-list input[data-key="name"]', (els) => els.map((e) => (e as HTMLInputElement).value))
    assert.deepEqual(names, ['browsers', 'lan', 'local'])
    await page.locator('#profiles-list .profile').nth(1).locator('textarea[data-match="cidr"]').fill('127.0.0.1/33')
    await page.click('#profiles-save')
    const field = page.locator('#profiles-list [data-path="profiles.1.match.cidr"]')
    await field.locator('.field-error:not(:empty)').waitFor(WAIT)
    assert.match(await field.locator('.field-error').textContent() ?? '', /127\.0\.0\.1\/33/)
    assert.equal(await field.evaluate((el) => el.classList.contains('invalid')), true)
    assert.match(await page.textContent('#profiles-message') ?? '', /Not saved/)
    assert.equal(store.current().version, before, 'nothing stored')
  })

  await t.test('a good save is a new version with the comment, in force at once', async () => {
    await page.locator('#profiles-list .profile').nth(1).locator('textarea[data-match="cidr"]').fill('127.0.0.1/32')
    await page.fill('#profiles-comment', 'browsers get longer')
    await page.click('#profiles-save')
    await page.waitForFunction(() => /Saved as version \d+/.test(document.querySelector('#profiles-message')?.textContent ?? ''), null, WAIT)
    const now = store.current()
    assert.equal(now.comment, 'browsers get longer')
    assert.deepEqual(now.values.profiles.map((p) => p.name), ['browsers', 'lan', 'local'])
    assert.deepEqual(now.values.profiles[0], { name: 'browsers', match: { origin: ['https://*.example.com'] }, overrides: { connectTimeoutMs: 1500, keepaliveMultiplier: 2 } })
    assert.deepEqual(server.app.broker.settings.values.profiles, now.values.profiles)
    assert.equal(await page.locator('#profiles-list .invalid').count(), 0)
    // the history shows the change by profile names, newest first
    await page.waitForFunction((v) => document.querySelector(`#settings-history .history-item[data-version="${v}"] ins`)?.textContent === '[browsers, lan, local]', now.version, WAIT)
  })

  await t.test('remove a profile and save', async () => {
    await page.locator('#profiles-list .profile').nth(1).locator('.profile-remove').click()
    await page.click('#profiles-save')
    await page.waitForFunction(() => /2 profiles, in force/.test(document.querySelector('#profiles-message')?.textContent ?? ''), null, WAIT)
    assert.deepEqual(store.current().values.profiles.map((p) => p.name), ['browsers', 'local'])
  })

  await t.test('a failure shows its profile; the failure list filters by profile', async () => {
    const silent = await RawClient.open(server.wsUrl)
    t.after(() => silent.close())
    const e = await waitForFailure(server, (f) => f.reason === 'connect_timeout')
    assert.equal(e.profile, 'local')
    await page.click('a[data-tab="failures"]')
    await page.fill('#filter-profile', 'local')
    await page.click('#failure-filters button[type=submit]')
    const row = page.locator('#failures-body tr[data-reason="connect_timeout"]').first()
    await row.waitFor(WAIT)
    await row.click()
    await page.waitForSelector('#failure-detail[open]', WAIT)
    assert.equal(await page.textContent('#detail-body dd[data-field="profile"]'), 'local')
    await page.keyboard.press('Escape')
    await page.fill('#filter-profile', 'browsers')
    await page.click('#failure-filters button[type=submit]')
    await page.waitForFunction(() => document.querySelectorAll('#failures-body tr[data-reason]').length === 0, null, WAIT)
  })

  assert.deepEqual(dialogs, [])
  assert.deepEqual(pageErrors, [])
})
