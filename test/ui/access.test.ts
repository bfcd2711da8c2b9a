// The Users and ACL pages in real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core) against
// the real app: an MQTT user created, refused at a field, edited, disabled and deleted, its password never in the
// page; ACL rules added, refused at a field, moved, edited and deleted; "try it" naming the rule that decided or the
// default; script-like usernames, comments and topics shown as text; the new failure reasons in the filter and the
// legend; the ACL's refusals per connection.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import type { Page } from 'playwright-core'
import { startServer, connectMqtt, waitForFailure, hasChromium, TEST_TOKEN, type TestServer } from '../helpers.ts'
import { failureEvent } from '../failures/fixtures.ts'
import { openUi, ROOT, signIn, WAIT } from './browser.ts'

const XSS = '<img src=x onerror=alert(1)>'
const PASSWORD = 'Correct-Horse-7431'
const NEW_PASSWORD = 'Battery-Staple-9902'

/** The users table's row for `username` (matched on the data attribute's value, no CSS escaping needed). */
const userRow = (page: Page, username: string) =>
  page.locator('#users-body tr').filter({ has: page.locator('td.username code', { hasText: username }) })

/** [id, position] of every ACL rule row, in table order. */
const ruleRows = (page: Page) =>
  page.$$eval('#acl-body tr', (rows) => rows.map((r) => [Number((r as HTMLElement).dataset.id), Number((r as HTMLElement).dataset.position)]))

async function waitForText(page: Page, selector: string, pattern: RegExp) {
  await page.waitForFunction(
    ([sel, source, flags]) => new RegExp(source, flags).test(document.querySelector(sel)?.textContent ?? ''),
    [selector, pattern.source, pattern.flags] as const,
    WAIT,
  )
}

async function addRule(page: Page, r: { who?: string; username?: string; clientId?: string; topic: string; action: string; permission: string; position?: string; comment?: string }) {
  await page.selectOption('#acl-who', r.who ?? 'everyone')
  if (r.username !== undefined) await page.fill('#acl-username', r.username)
  await page.fill('#acl-clientId', r.clientId ?? '')
  await page.fill('#acl-topic', r.topic)
  await page.selectOption('#acl-action', r.action)
  await page.selectOption('#acl-permission', r.permission)
  await page.fill('#acl-position', r.position ?? '')
  await page.fill('#acl-comment', r.comment ?? '')
  await page.click('#acl-save')
}

async function tryIt(page: Page, q: { username: string | null; clientId: string; action: string; topic: string }) {
  await page.setChecked('#try-anonymous', q.username === null)
  if (q.username !== null) await page.fill('#try-username', q.username)
  await page.fill('#try-clientId', q.clientId)
  await page.selectOption('#try-action', q.action)
  await page.fill('#try-topic', q.topic)
  const before = await page.getAttribute('#try-result', 'data-seq')
  await page.click('#try-check')
  // each answer counts up the box's data-seq
  await page.waitForFunction((old) => (document.querySelector('#try-result') as HTMLElement).dataset.seq !== (old ?? undefined), before, WAIT)
}

test('users and ACL pages in headless Chromium', { skip: hasChromium() ? false : 'chromium not installed: apt-get install -y chromium', timeout: 90_000 }, async (t) => {
  const server: TestServer = await startServer()
  t.after(() => server.close())
  const { page, dialogs, pageErrors, clients } = await openUi(t)
  /** Nothing typed as a password is anywhere in the page's HTML. */
  const assertNoPasswordInPage = async () => {
    const html = await page.content()
    assert.ok(!html.includes(PASSWORD), 'the password is not in the page')
    assert.ok(!html.includes(NEW_PASSWORD), 'the new password is not in the page')
  }

  await t.test('signs in; Users and ACL come after Connections in the nav', async () => {
    await signIn(page, server.url, TEST_TOKEN)
    const tabs = await page.$$eval('.tabs [data-tab]', (links) => links.map((a) => (a as HTMLElement).dataset.tab))
    assert.deepEqual(tabs, ['failures', 'settings', 'connections', 'nodes', 'users', 'acl', 'retained', 'sessions', 'alerts', 'audit', 'tokens'])
  })

  await t.test('users: the password input is write-only by its attributes, and empty', async () => {
    await page.click('a[data-tab="users"]')
    await page.waitForSelector('#user-form', { state: 'visible', ...WAIT })
    await page.waitForSelector('#users-empty', { state: 'visible', ...WAIT })
    const input = page.locator('#user-password')
    assert.equal(await input.getAttribute('type'), 'password')
    assert.equal(await input.getAttribute('autocomplete'), 'new-password')
    assert.equal(await input.getAttribute('value'), null)
    assert.equal(await input.inputValue(), '')
    assert.match(await page.textContent('#users-anonymous') ?? '', /let in as anonymous/)
  })

  await t.test('users: an empty password gets the API\'s 400 at the password field; nothing is created', async () => {
    await page.fill('#user-username', 'sensor-1')
    await page.fill('#user-note', 'greenhouse')
    await page.click('#user-save')
    await waitForText(page, '#user-password-error', /\S/)
    assert.match(await page.textContent('#user-password-error') ?? '', /empty|least|1/)
    assert.equal(await page.locator('.form-field[data-field="password"]').evaluate((el) => el.classList.contains('invalid')), true)
    assert.equal(await page.textContent('#user-username-error'), '')
    assert.match(await page.textContent('#user-form-message') ?? '', /Not saved/)
    assert.equal(server.app.mqttUsers.get('sensor-1'), null)
  })

  await t.test('users: created and listed; the password field is emptied and the password is nowhere in the page', async () => {
    await page.fill('#user-password', PASSWORD)
    await page.click('#user-save')
    await userRow(page, 'sensor-1').waitFor(WAIT)
    assert.equal(await page.inputValue('#user-password'), '')
    assert.equal(await page.inputValue('#user-username'), '', 'the form is ready for the next user')
    assert.match(await page.textContent('#user-form-message') ?? '', /Created “sensor-1”/)
    const row = userRow(page, 'sensor-1')
    assert.match(await row.textContent() ?? '', /enabled/)
    assert.match(await row.locator('td.note').textContent() ?? '', /greenhouse/)
    assert.equal(await page.textContent('#user-password-error'), '')
    await assertNoPasswordInPage()
    const stored = server.app.mqttUsers.get('sensor-1')
    assert.equal(stored?.enabled, true)
    assert.equal(stored?.note, 'greenhouse')
    // the broker takes it
    clients.push(await connectMqtt(server.wsUrl, { clientId: 'sensor-1-a', username: 'sensor-1', password: PASSWORD }))
  })

  await t.test('users: a taken username gets the 409 at the username field', async () => {
    await page.fill('#user-username', 'sensor-1')
    await page.fill('#user-password', 'another-one')
    await page.click('#user-save')
    await waitForText(page, '#user-username-error', /taken/)
    assert.equal(await page.locator('#users-body tr').count(), 1)
    await page.fill('#user-password', '')
  })

  await t.test('users: edit sets a note and a new password; the field is empty again after the save', async () => {
    await userRow(page, 'sensor-1').locator('button[data-act="edit"]').click()
    await waitForText(page, '#user-form-title', /Edit sensor-1/)
    assert.equal(await page.inputValue('#user-password'), '', 'never pre-filled')
    assert.equal(await page.inputValue('#user-username'), 'sensor-1')
    assert.equal(await page.locator('#user-username').evaluate((el) => (el as HTMLInputElement).readOnly), true)
    assert.equal(await page.inputValue('#user-note'), 'greenhouse')
    await page.fill('#user-note', 'greenhouse, north side')
    await page.fill('#user-password', NEW_PASSWORD)
    await page.click('#user-save')
    await waitForText(page, '#user-form-message', /Saved “sensor-1”: the new password is in force/)
    assert.equal(await page.inputValue('#user-password'), '')
    assert.match(await userRow(page, 'sensor-1').locator('td.note').textContent() ?? '', /north side/)
    await assertNoPasswordInPage()
    // the old password is refused now: an auth_failed failure (shown in the failure views below)
    const refused = waitForFailure(server, (e) => e.reason === 'auth_failed')
    await assert.rejects(connectMqtt(server.wsUrl, { clientId: 'sensor-1-b', username: 'sensor-1', password: PASSWORD }))
    await refused
    clients.push(await connectMqtt(server.wsUrl, { clientId: 'sensor-1-c', username: 'sensor-1', password: NEW_PASSWORD }))
  })

  await t.test('users: disabled from its row, then deleted after a confirm click', async () => {
    const row = userRow(page, 'sensor-1')
    await row.locator('button[data-act="toggle"]').click()
    await page.waitForSelector('#users-body tr[data-enabled="false"]', WAIT)
    assert.match(await row.textContent() ?? '', /disabled/)
    assert.equal(await row.locator('button[data-act="toggle"]').textContent(), 'Enable')
    assert.equal(server.app.mqttUsers.get('sensor-1')?.enabled, false)

    const del = row.locator('button[data-act="delete"]')
    await del.click()
    assert.equal(await del.textContent(), 'Confirm delete?')
    assert.notEqual(server.app.mqttUsers.get('sensor-1'), null, 'the first click deletes nothing')
    await del.click()
    await page.waitForSelector('#users-empty', { state: 'visible', ...WAIT })
    assert.equal(server.app.mqttUsers.get('sensor-1'), null)
    assert.match(await page.textContent('#users-message') ?? '', /Deleted “sensor-1”/)
  })

  await t.test('users: a script-like username is shown as text and runs nothing', async () => {
    await page.fill('#user-username', XSS)
    await page.fill('#user-password', PASSWORD)
    await page.fill('#user-note', XSS)
    await page.click('#user-save')
    await page.waitForSelector('#users-body tr', WAIT)
    assert.equal(await page.textContent('#users-body td.username'), XSS)
    assert.equal(await page.textContent('#users-body td.note'), XSS)
    assert.match(await page.textContent('#user-form-message') ?? '', new RegExp(XSS.replace(/[()]/g, '\\$&')))
    assert.equal(await page.locator('#app img').count(), 0)
    assert.equal(await page.inputValue('#user-password'), '')
    await assertNoPasswordInPage()
    // one more for the screenshot
    await page.fill('#user-username', 'dashboard')
    await page.fill('#user-password', PASSWORD)
    await page.fill('#user-note', 'the wall display in the hall')
    await page.click('#user-save')
    await userRow(page, 'dashboard').waitFor(WAIT)
    assert.deepEqual(dialogs, [])
  })

  await t.test('screenshot of the users page', async () => {
    mkdirSync(`${ROOT}test-output`, { recursive: true })
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur())
    const png = await page.screenshot({ path: `${ROOT}test-output/users.png`, fullPage: true })
    assert.ok(png.length > 10_000)
  })

  let denyId = 0
  let aliceId = 0

  await t.test('ACL: the default policy is shown with a link to Settings; a bad filter gets its 400 at the field', async () => {
    await page.click('a[data-tab="acl"]')
    await page.waitForSelector('#acl-empty', { state: 'visible', ...WAIT })
    assert.equal(await page.textContent('#acl-default'), 'allow')
    await addRule(page, { topic: 'a/#/b', action: 'publish', permission: 'deny' })
    await waitForText(page, '#acl-topic-error', /\S/)
    assert.equal(await page.locator('#acl-form .form-field[data-field="topic"]').evaluate((el) => el.classList.contains('invalid')), true)
    assert.equal(server.app.acl.list().length, 0)
    // a rule for one user without the username: 400 at the username field
    await addRule(page, { who: 'user', username: '', topic: 'a/b', action: 'publish', permission: 'deny' })
    await waitForText(page, '#acl-username-error', /\S/)
    assert.equal(server.app.acl.list().length, 0)
  })

  await t.test('ACL: two rules added in order; the second moved up', async () => {
    await addRule(page, { topic: 'secret/#', action: 'publish', permission: 'deny', comment: XSS })
    await page.waitForFunction(() => document.querySelectorAll('#acl-body tr').length === 1, null, WAIT)
    await addRule(page, { who: 'user', username: 'alice', topic: 'secret/%u/#', action: 'publish', permission: 'allow', comment: 'alice writes her own' })
    await page.waitForFunction(() => document.querySelectorAll('#acl-body tr').length === 2, null, WAIT)
    const rules = server.app.acl.list()
    assert.deepEqual(rules.map((r) => [r.topic, r.position]), [['secret/#', 1], ['secret/%u/#', 2]])
    denyId = rules[0]!.id
    aliceId = rules[1]!.id
    assert.equal(rules[0]!.comment, XSS)
    assert.equal(rules[1]!.username, 'alice')
    assert.deepEqual(await ruleRows(page), [[denyId, 1], [aliceId, 2]])
    // shown as text: the comment and who
    const first = page.locator('#acl-body tr').first()
    assert.equal(await first.locator('td.rule-comment').textContent(), XSS)
    assert.equal(await first.locator('td.who').textContent(), 'everyone')
    assert.equal(await page.locator('#acl-body tr').nth(1).locator('td.who').textContent(), 'user alice')
    assert.equal(await page.locator('#app img').count(), 0)
  })

  await t.test('try it: the deny rule decides first; after moving alice\'s rule up, it decides', async () => {
    await tryIt(page, { username: 'alice', clientId: 'alice-phone', action: 'publish', topic: 'secret/alice/diary' })
    await page.waitForSelector(`#try-result[data-decided-by="rule-${denyId}"]`, WAIT)
    assert.equal(await page.getAttribute('#try-result', 'data-allowed'), 'false')
    assert.match(await page.textContent('#try-result .decided') ?? '', new RegExp(`rule #${denyId} at position 1`))
    assert.equal(await page.locator(`#acl-body tr.decided`).getAttribute('data-id'), String(denyId))

    await page.locator(`#acl-body tr[data-id="${aliceId}"] button[data-act="up"]`).click()
    await page.waitForFunction((id) => (document.querySelector('#acl-body tr') as HTMLElement | null)?.dataset.id === String(id), aliceId, WAIT)
    assert.deepEqual(await ruleRows(page), [[aliceId, 1], [denyId, 2]])
    assert.deepEqual(server.app.acl.list().map((r) => r.id), [aliceId, denyId])
    assert.equal(await page.isVisible('#try-result .stale'), true, 'the answer on screen is marked as old')
    assert.equal(await page.locator('#acl-body tr[data-id] button[data-act="up"]').first().isDisabled(), true)

    await tryIt(page, { username: 'alice', clientId: 'alice-phone', action: 'publish', topic: 'secret/alice/diary' })
    await page.waitForSelector(`#try-result[data-decided-by="rule-${aliceId}"]`, WAIT)
    assert.equal(await page.getAttribute('#try-result', 'data-allowed'), 'true')
    const text = await page.textContent('#try-result') ?? ''
    assert.match(text, /allowed/)
    assert.match(text, new RegExp(`Decided by rule #${aliceId} at position 1: allow publish of secret/%u/# for user alice`))
    assert.match(await page.textContent('#try-result .explanation') ?? '', new RegExp(`rule ${aliceId} \\(position 1\\) allows publish`))
    assert.equal(await page.isVisible('#try-result .stale'), false)
    assert.equal(await page.locator(`#acl-body tr.decided`).getAttribute('data-id'), String(aliceId))
  })

  await t.test('try it: a topic no rule matches is decided by the default', async () => {
    await tryIt(page, { username: null, clientId: 'probe', action: 'subscribe', topic: 'weather/+/today' })
    await page.waitForSelector('#try-result[data-decided-by="default"]', WAIT)
    assert.equal(await page.getAttribute('#try-result', 'data-allowed'), 'true')
    const text = await page.textContent('#try-result') ?? ''
    assert.match(text, /an anonymous client \(client id probe\) may subscribe weather\/\+\/today/)
    assert.match(text, /default policy/)
    assert.match(await page.textContent('#try-result .explanation') ?? '', /aclDefault\) is allow/)
    assert.equal(await page.locator('#acl-body tr.decided').count(), 0)
    // a filter is no topic name to publish to: the 400 at the topic field
    await page.selectOption('#try-action', 'publish')
    await page.fill('#try-topic', 'sensors/#')
    await page.click('#try-check')
    await waitForText(page, '#try-topic-error', /\S/)
  })

  await t.test('script-like text in a rule\'s username and topic, and in a checked topic, is shown literally', async () => {
    await addRule(page, { who: 'user', username: XSS, topic: XSS, action: 'subscribe', permission: 'deny', comment: XSS })
    await page.waitForFunction(() => document.querySelectorAll('#acl-body tr').length === 3, null, WAIT)
    const last = page.locator('#acl-body tr').nth(2)
    assert.equal(await last.locator('td.topic').textContent(), XSS)
    assert.equal(await last.locator('td.who').textContent(), `user ${XSS}`)
    assert.equal(await last.locator('td.rule-comment').textContent(), XSS)

    await tryIt(page, { username: XSS, clientId: XSS, action: 'publish', topic: XSS })
    await page.waitForSelector('#try-result[data-decided-by="default"]', WAIT)
    assert.equal(await page.locator('#try-result .verdict code').last().textContent(), XSS)
    assert.ok((await page.textContent('#try-result .explanation') ?? '').includes(XSS))
    await tryIt(page, { username: XSS, clientId: 'c1', action: 'subscribe', topic: XSS })
    const id = String(server.app.acl.list()[2]!.id)
    await page.waitForSelector(`#try-result[data-decided-by="rule-${id}"]`, WAIT)
    assert.ok((await page.textContent('#try-result .decided') ?? '').includes(`for user ${XSS}`))
    assert.equal(await page.locator('#app img').count(), 0)
    assert.deepEqual(dialogs, [], 'no alert() ran')
  })

  await t.test('ACL: a rule edited, placed by position, and deleted after a confirm click', async () => {
    // a subscribe deny for everyone at position 1 (the Connections check below uses it)
    await addRule(page, { topic: 'private/#', action: 'subscribe', permission: 'deny', position: '1', comment: 'nobody listens in' })
    await page.waitForFunction(() => document.querySelectorAll('#acl-body tr').length === 4, null, WAIT)
    assert.deepEqual(server.app.acl.list().map((r) => r.topic), ['private/#', 'secret/%u/#', 'secret/#', XSS])

    // edit the XSS rule: a new comment and a client id glob
    const xssId = server.app.acl.list()[3]!.id
    await page.locator(`#acl-body tr[data-id="${xssId}"] button[data-act="edit"]`).click()
    await waitForText(page, '#acl-form-title', new RegExp(`Edit rule #${xssId}`))
    assert.equal(await page.inputValue('#acl-topic'), XSS)
    assert.equal(await page.inputValue('#acl-position'), '4')
    await page.fill('#acl-clientId', 'test-*')
    await page.fill('#acl-comment', 'checks the page escapes text')
    await page.click('#acl-save')
    await waitForText(page, '#acl-form-message', new RegExp(`Rule #${xssId} saved`))
    const edited = server.app.acl.get(xssId)
    assert.equal(edited?.clientId, 'test-*')
    assert.equal(edited?.comment, 'checks the page escapes text')
    assert.equal(edited?.username, XSS, 'unchanged fields kept')
    // the list is reloaded after the answer
    await waitForText(page, `#acl-body tr[data-id="${xssId}"] td.who`, /client id test-\*/)

    const del = page.locator(`#acl-body tr[data-id="${xssId}"] button[data-act="delete"]`)
    await del.click()
    assert.equal(await del.textContent(), 'Confirm delete?')
    await del.click()
    await page.waitForFunction(() => document.querySelectorAll('#acl-body tr').length === 3, null, WAIT)
    assert.equal(server.app.acl.get(xssId), null)
  })

  await t.test('screenshot of the ACL page', async () => {
    await tryIt(page, { username: 'alice', clientId: 'alice-phone', action: 'publish', topic: 'secret/alice/diary' })
    await page.waitForSelector(`#try-result[data-decided-by="rule-${aliceId}"]`, WAIT)
    await page.evaluate(() => {
      window.scrollTo(0, 0)
      ;(document.activeElement as HTMLElement | null)?.blur()
    })
    const png = await page.screenshot({ path: `${ROOT}test-output/acl.png`, fullPage: true })
    assert.ok(png.length > 10_000)
  })

  await t.test('the default policy\'s link opens Settings at aclDefault; a change there shows on the ACL page', async () => {
    await page.click('#acl-default-link')
    await page.waitForSelector('#view-settings', { state: 'visible', ...WAIT })
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'setting-aclDefault')
    await page.selectOption('#setting-aclDefault', 'deny')
    await page.click('#settings-save')
    await waitForText(page, '#settings-message', /Saved as version/)
    await page.click('a[data-tab="acl"]')
    await page.waitForFunction(() => document.querySelector('#acl-default')?.textContent === 'deny', null, WAIT)
  })

  await t.test('failures: auth_failed and slow_consumer are in the reason filter and the chart legend', async () => {
    server.app.failureLog.record(failureEvent({ reason: 'slow_consumer', phase: 'connected', clientId: 'slow-reader', remoteAddress: '10.1.2.3' }))
    server.app.failureLog.flush()
    await page.click('a[data-tab="failures"]')
    const options = await page.$$eval('#filter-reason option', (os) => os.map((o) => (o as HTMLOptionElement).value))
    assert.ok(options.includes('auth_failed') && options.includes('slow_consumer'), options.join())
    await page.selectOption('#stats-window', String(3_600_000))
    await page.waitForFunction(() => {
      const legend = [...document.querySelectorAll('#chart-legend .legend-item')].map((i) => i.textContent)
      return legend.includes('auth failed') && legend.includes('slow consumer')
    }, null, WAIT)
    await page.selectOption('#filter-reason', 'auth_failed')
    await page.click('#failure-filters button[type=submit]')
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#failures-body tr')] as HTMLElement[]
      return rows.length > 0 && rows.every((r) => r.dataset.reason === 'auth_failed')
    }, null, WAIT)
    assert.match(await page.textContent('#failures-body tr') ?? '', /auth failed/)
  })

  await t.test('connections: what the ACL refused each connection', async () => {
    // aclDefault is deny now: allow this client's own topic, and see its refused subscribe and publish counted
    server.app.acl.create({ topic: 'probe/#', action: 'all', permission: 'allow', clientId: 'acl-probe' })
    const client = await connectMqtt(server.wsUrl, { clientId: 'acl-probe' })
    clients.push(client)
    assert.deepEqual((await client.subscribeAsync('probe/in', { qos: 0 })).map((g) => g.qos), [0])
    await assert.rejects(client.subscribeAsync('private/x', { qos: 0 }), /Subscribe error/, 'SUBACK 0x80')
    await client.publishAsync('elsewhere/out', 'x', { qos: 1 })
    await page.click('a[data-tab="connections"]')
    await page.click('#connections-refresh')
    const cell = page.locator('#connections-body tr[data-client-id="acl-probe"] td.acl-denied')
    await page.waitForFunction(() => {
      const td = [...document.querySelectorAll('#connections-body tr')].find((r) => (r as HTMLElement).dataset.clientId === 'acl-probe')
        ?.querySelector('td.acl-denied') as HTMLElement | undefined
      return td?.dataset.aclSubscribe === '1' && td.dataset.aclPublish === '1'
    }, null, WAIT)
    assert.equal(await cell.textContent(), '1 / 1 / 0')
    assert.equal(await cell.evaluate((el) => el.classList.contains('some')), true)
    const quiet = page.locator('#connections-body tr[data-client-id="sensor-1-a"] td.acl-denied')
    if (await quiet.count() > 0) assert.equal(await quiet.textContent(), '0 / 0 / 0')
    await page.evaluate(() => window.scrollTo(0, 0))
    await page.screenshot({ path: `${ROOT}test-output/connections-acl.png` })
  })

  await t.test('no dialog fired, no script error, no password in the page', async () => {
    await assertNoPasswordInPage()
    assert.deepEqual(dialogs, [])
    assert.deepEqual(pageErrors, [])
  })
})
