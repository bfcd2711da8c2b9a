// The Retained and Sessions pages in real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core)
// against the real app, over what real MQTT.js clients made: retained messages listed, filtered by prefix, one
// opened (text and hex), one deleted and a prefix deleted (each after its confirming second click); sessions
// listed online and offline with their queues, filtered, one opened with its subscriptions, one ended (its client
// gets DISCONNECT 0x98). A topic, a payload and a client id of `<img src=x onerror=...>` show as text, inject nothing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Page } from 'playwright-core'
import type { IDisconnectPacket } from 'mqtt-packet'
import { startServer, connectMqtt, hasChromium, until, TEST_TOKEN, type TestServer } from '../helpers.ts'
import { openUi, signIn, WAIT } from './browser.ts'

const XSS = '<img src=x onerror=alert(1)>'

const cellTexts = (page: Page, selector: string) => page.$$eval(selector, (els) => els.map((e) => e.textContent ?? ''))
const retainedTopics = (page: Page) => page.$$eval('#retained-body tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.topic))
const sessionIds = (page: Page) => page.$$eval('#sessions-body tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.clientId))
const retainedRow = (page: Page, topic: string) =>
  page.locator('#retained-body tr').filter({ has: page.locator('td.topic-cell code', { hasText: topic }) })
const sessionRow = (page: Page, clientId: string) =>
  page.locator('#sessions-body tr').filter({ has: page.locator('td.client-id code', { hasText: clientId }) })

test('retained and sessions pages in headless Chromium', { skip: hasChromium() ? false : 'chromium not installed: apt-get install -y chromium', timeout: 90_000 }, async (t) => {
  const server: TestServer = await startServer()
  t.after(() => server.close())
  const { page, dialogs, pageErrors, clients } = await openUi(t)
  const mqtt = async (opts: Parameters<typeof connectMqtt>[1]) => {
    const c = await connectMqtt(server.wsUrl, opts)
    c.on('error', () => {})
    clients.push(c)
    return c
  }

  /** Polls `read` until it returns `expected`. */
  const listIs = async (read: (page: Page) => Promise<(string | undefined)[]>, expected: string[]) => {
    const end = Date.now() + WAIT.timeout
    let got: (string | undefined)[] = []
    while (Date.now() < end) {
      got = await read(page)
      if (JSON.stringify(got) === JSON.stringify(expected)) return
      await page.waitForTimeout(50)
    }
    assert.deepEqual(got, expected)
  }

  // what the clients make: retained configs (one binary, one script-like topic and payload), sessions online and offline
  const pub = await mqtt({ protocolVersion: 5, clientId: 'publisher' })
  await pub.publishAsync('cfg/dev-1', '{"interval":30}', { qos: 1, retain: true, properties: { contentType: 'application/json' } })
  await pub.publishAsync('cfg/dev-2', Buffer.from([0x00, 0x01, 0xfe, 0xff]), { qos: 1, retain: true })
  await pub.publishAsync(`cfg/${XSS}`, XSS, { qos: 1, retain: true })
  await pub.publishAsync('lab/a', 'a', { qos: 1, retain: true })
  await pub.publishAsync('lab/b', 'b', { qos: 1, retain: true })

  const away = await mqtt({ protocolVersion: 5, clientId: 'sensor-away', clean: false, properties: { sessionExpiryInterval: 3600 } })
  await away.subscribeAsync({ 'cmd/away/#': { qos: 1 }, 'broadcast/+': { qos: 2, nl: true } })
  await away.endAsync()
  await until(() => server.app.broker.clientConnection('sensor-away') === undefined, 'sensor-away offline')
  for (const p of ['one', 'two']) await pub.publishAsync('cmd/away/reboot', p, { qos: 1 })
  const xssClient = await mqtt({ protocolVersion: 5, clientId: XSS, clean: false, properties: { sessionExpiryInterval: 60 } })
  await xssClient.subscribeAsync(`x/${XSS}`, { qos: 1 })
  const live = await mqtt({ protocolVersion: 5, clientId: 'sensor-live', clean: false, properties: { sessionExpiryInterval: 60 } })
  await live.subscribeAsync('cmd/live/#', { qos: 1 })
  const liveDisconnect = new Promise<IDisconnectPacket>((resolve) => live.once('disconnect', resolve))

  await t.test('signs in; Retained and Sessions are in the nav', async () => {
    await signIn(page, server.url, TEST_TOKEN)
    const tabs = await page.$$eval('.tabs [data-tab]', (links) => links.map((a) => (a as HTMLElement).dataset.tab))
    assert.deepEqual(tabs.slice(-5, -3), ['retained', 'sessions'], 'before Alerts, Audit and Tokens')
  })

  await t.test('retained: the list by topic with size, preview and expiry; a prefix filters it', async () => {
    await page.click('a[data-tab="retained"]')
    await listIs(retainedTopics, [`cfg/${XSS}`, 'cfg/dev-1', 'cfg/dev-2', 'lab/a', 'lab/b'])
    const cfg = retainedRow(page, 'cfg/dev-1')
    assert.deepEqual((await cfg.locator('td').allTextContents()).slice(0, 5), ['cfg/dev-1', '1', '15 B', '{"interval":30}', 'never'])
    assert.equal(await retainedRow(page, 'cfg/dev-2').locator('td.preview').textContent(), 'binary, 4 B')
    assert.match(await page.textContent('#retained-count') ?? '', /5 shown · 5 stored/)

    await page.fill('#retained-prefix', 'lab/')
    await page.click('#retained-filters button[type=submit]')
    await listIs(retainedTopics, ['lab/a', 'lab/b'])
  })

  await t.test('retained: one opened shows its payload as text, a binary one as hex', async () => {
    await page.fill('#retained-prefix', 'cfg/')
    await page.click('#retained-filters button[type=submit]')
    await listIs(retainedTopics, [`cfg/${XSS}`, 'cfg/dev-1', 'cfg/dev-2'])
    await retainedRow(page, 'cfg/dev-1').locator('button[data-act="view"]').click()
    await page.waitForSelector('#retained-payload-text', WAIT)
    assert.equal(await page.textContent('#retained-payload-text'), '{"interval":30}')
    assert.equal(await page.textContent('#retained-detail-body dd[data-field="contentType"]'), 'application/json')
    await page.click('#retained-detail-body button[data-mode="hex"]')
    await page.waitForSelector('#retained-payload-hex', WAIT)
    assert.match(await page.textContent('#retained-payload-hex') ?? '', /^0000 {2}7b 22 69 6e/)
    await page.click('#retained-detail button[aria-label="close"]')

    await retainedRow(page, 'cfg/dev-2').locator('button[data-act="view"]').click()
    await page.waitForSelector('#retained-payload-hex', WAIT)
    assert.match(await page.textContent('#retained-payload-hex') ?? '', /^0000 {2}00 01 fe ff/)
    assert.equal(await page.isDisabled('#retained-detail-body button[data-mode="text"]'), true)
    await page.click('#retained-detail button[aria-label="close"]')
  })

  await t.test('retained: a script-like topic and payload show as text', async () => {
    const row = retainedRow(page, `cfg/${XSS}`)
    assert.equal(await row.locator('td.topic-cell code').textContent(), `cfg/${XSS}`)
    assert.equal(await row.locator('td.preview').textContent(), XSS)
    await row.locator('button[data-act="view"]').click()
    await page.waitForSelector('#retained-payload-text', WAIT)
    assert.equal(await page.textContent('#retained-payload-text'), XSS)
    assert.equal(await page.textContent('#retained-detail-title code'), `cfg/${XSS}`)
    await page.click('#retained-detail button[aria-label="close"]')
    assert.equal(await page.locator('img').count(), 0, 'no element was injected')
  })

  await t.test('retained: delete one after the confirming click', async () => {
    const button = retainedRow(page, 'cfg/dev-1').locator('button[data-act="delete"]')
    await button.click()
    assert.equal(await button.textContent(), 'Confirm delete?')
    assert.ok(server.app.broker.retained.get('cfg/dev-1'), 'nothing deleted on the first click')
    await button.click()
    await listIs(retainedTopics, [`cfg/${XSS}`, 'cfg/dev-2'])
    assert.match(await page.textContent('#retained-message') ?? '', /Deleted the retained message of “cfg\/dev-1”/)
    assert.equal(server.app.broker.retained.get('cfg/dev-1'), undefined)
  })

  await t.test('retained: delete by prefix shows what goes, then deletes it on the confirming click', async () => {
    await page.fill('#retained-prefix', 'lab/')
    await page.click('#retained-delete-prefix')
    await listIs(retainedTopics, ['lab/a', 'lab/b'])
    assert.match(await page.textContent('#retained-delete-prefix') ?? '', /Confirm: delete every topic starting with “lab\/”\?/)
    assert.equal(server.app.broker.retained.size, 4, 'nothing deleted on the first click')
    await page.click('#retained-delete-prefix')
    await listIs(retainedTopics, [])
    assert.match(await page.textContent('#retained-message') ?? '', /Deleted 2 retained messages whose topic starts with “lab\/”/)
    assert.deepEqual(server.app.broker.retained.list('', null, 10).items.map((m) => m.topic), [`cfg/${XSS}`, 'cfg/dev-2'])
    await page.fill('#retained-prefix', '')
    assert.equal(await page.isDisabled('#retained-delete-prefix'), true, 'no button wipes every retained message')
  })

  await t.test('sessions: online and offline with queue and expiry; filters by state and client id', async () => {
    await page.click('a[data-tab="sessions"]')
    const all = ['publisher', 'sensor-away', 'sensor-live', XSS].sort((a, b) => (a < b ? -1 : 1))
    await listIs(sessionIds, all)
    assert.equal(await page.textContent('#sessions-count'), '3 online · 1 offline')
    const away = sessionRow(page, 'sensor-away')
    assert.equal(await away.getAttribute('data-online'), 'false')
    assert.equal(await away.locator('td').nth(1).textContent(), 'offline')
    assert.equal(await away.locator('td[data-queued]').getAttribute('data-queued'), '2')
    assert.equal(await away.locator('td[data-queued]').textContent(), '2 (6 B)')
    const expiresAt = server.app.broker.sessionExpiresAt(server.app.broker.sessions.get('sensor-away')!)!
    assert.equal(await away.locator('td').nth(6).getAttribute('title'), new Date(expiresAt).toISOString())
    assert.equal(await sessionRow(page, 'sensor-live').locator('td').nth(1).textContent(), 'online')

    await page.selectOption('#sessions-state', 'offline')
    await page.click('#sessions-filters button[type=submit]')
    await listIs(sessionIds, ['sensor-away'])
    await page.selectOption('#sessions-state', 'online')
    await page.fill('#sessions-client', 'sensor-')
    await page.click('#sessions-filters button[type=submit]')
    await listIs(sessionIds, ['sensor-live'])
    assert.equal(await page.textContent('#sessions-count'), '1 online · 1 offline')
    await page.selectOption('#sessions-state', 'all')
    await page.fill('#sessions-client', '')
    await page.click('#sessions-filters button[type=submit]')
    await listIs(sessionIds, all)
  })

  await t.test('sessions: one opened shows its subscriptions (and its connection when online)', async () => {
    await sessionRow(page, 'sensor-away').locator('button[data-act="view"]').click()
    await page.waitForSelector('#session-subscriptions', WAIT)
    assert.deepEqual(await cellTexts(page, '#session-subscriptions tbody td.topic-cell'), ['broadcast/+', 'cmd/away/#'])
    assert.deepEqual(await cellTexts(page, '#session-subscriptions tbody tr:first-child td'), ['broadcast/+', '2', 'yes', 'no', '0', '—'])
    assert.match(await page.textContent('#session-detail-body') ?? '', /Offline: no connection holds this session/)
    await page.click('#session-detail button[aria-label="close"]')

    await sessionRow(page, 'sensor-live').locator('button[data-act="view"]').click()
    await page.waitForSelector('#session-subscriptions', WAIT)
    assert.match(await page.textContent('#session-detail-body dd[data-field="protocol"]') ?? '', /MQTT 5\.0 · ws/)
    assert.match(await page.textContent('#session-detail-body dd[data-field="remoteAddress"]') ?? '', /^127\.0\.0\.1:\d+$/)
    await page.click('#session-detail button[aria-label="close"]')
  })

  await t.test('sessions: a script-like client id shows as text', async () => {
    const row = sessionRow(page, XSS)
    assert.equal(await row.locator('td.client-id code').textContent(), XSS)
    await row.locator('button[data-act="view"]').click()
    await page.waitForSelector('#session-subscriptions', WAIT)
    assert.equal(await page.textContent('#session-detail-title code'), XSS)
    assert.deepEqual(await cellTexts(page, '#session-subscriptions tbody td.topic-cell'), [`x/${XSS}`])
    await page.click('#session-detail button[aria-label="close"]')
    assert.equal(await page.locator('img').count(), 0, 'no element was injected')
  })

  await t.test('sessions: ending an online one after the confirming click disconnects its client with 0x98', async () => {
    const button = sessionRow(page, 'sensor-live').locator('button[data-act="delete"]')
    assert.equal(await button.textContent(), 'Disconnect and delete')
    await button.click()
    assert.equal(await button.textContent(), 'Confirm delete?')
    assert.ok(server.app.broker.sessions.get('sensor-live'), 'nothing ended on the first click')
    await button.click()
    assert.equal((await liveDisconnect).reasonCode, 0x98)
    await listIs(sessionIds, ['publisher', 'sensor-away', XSS].sort((a, b) => (a < b ? -1 : 1)))
    assert.match(await page.textContent('#sessions-message') ?? '', /Ended the session of “sensor-live”/)
    assert.equal(server.app.broker.sessions.get('sensor-live'), undefined)
  })

  await t.test('nothing injected ran, nothing threw', () => {
    assert.deepEqual(dialogs, [])
    assert.deepEqual(pageErrors, [])
  })
})
