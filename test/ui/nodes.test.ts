// The Nodes page in headless Chromium against two real in-process cluster nodes on the machine's NATS, with fake
// nodes written into the nodes bucket as heartbeats: the page lists every node with its clients, updates by itself
// every 2 s while shown (and asks nothing while another page is) and at once on Refresh, says when an answer failed,
// flags a node behind on its settings version and a dead one, and shows a node id made of markup as text.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Kvm, type KV } from '@nats-io/kv'
import { connectMqtt, delay, hasChromium, TEST_TOKEN, until } from '../helpers.ts'
import { startCluster } from '../cluster/cluster.ts'
import type { NodeHeartbeat } from '../../src/cluster/nodes.ts'
import { encodeToken as token } from '../../src/cluster/keys.ts'
import { openUi, openTab, screenshot, signIn, WAIT } from './browser.ts'

const XSS = '<img src=x onerror=alert(1)>'

/** A heartbeat of a node that does not exist; its boot's reap marker written first, so no survivor removes it. */
async function fakeNode(kv: KV, hb: Partial<NodeHeartbeat> & Pick<NodeHeartbeat, 'id'>): Promise<void> {
  const full: NodeHeartbeat = {
    address: '10.0.0.9:8080', upSince: new Date(Date.now() - 3_600_000).toISOString(), connections: 7, settingsVersion: 1,
    lastHeartbeat: new Date().toISOString(), boot: 'fake', ...hb,
  }
  await kv.create(`reap.${token(full.id)}.${token(full.boot)}`, 'test').catch(() => {})
  await kv.put(`n.${token(full.id)}`, JSON.stringify(full))
}

const row = (id: string) => `#nodes-body tr[data-node-id="${id.replace(/["\\]/g, '\\$&')}"]`

test('nodes page in headless Chromium', { skip: hasChromium() ? false : 'chromium not installed: apt-get install -y chromium', timeout: 90_000 }, async (t) => {
  const cluster = await startCluster(2)
  t.after(() => cluster.close())
  const [a, b] = cluster.nodes
  const kv = await new Kvm(a.app.cluster!.links.main).open(`${cluster.name}_nodes`)
  // a newer settings version on every node: the fake node still on the one before is behind
  for (const node of cluster.nodes) node.app.settingsStore.update({ maxConnections: 900 }, { actor: 'test' })
  const versions = () => cluster.nodes.map((n) => n.app.settingsStore.current().version)
  await until(() => new Set(versions()).size === 1, 'the nodes on one settings version')
  const newest = versions()[0]
  // the live fake nodes beat while the test runs; the dead one wrote its last heartbeat 10 s ago
  const beat = () => Promise.all([
    fakeNode(kv, { id: 'node-old', settingsVersion: newest - 1, address: '10.0.0.7:8080' }),
    fakeNode(kv, { id: XSS, settingsVersion: newest, address: XSS }),
  ])
  await beat()
  const beating = setInterval(() => void beat().catch(() => {}), 500)
  t.after(() => clearInterval(beating))
  // (a last heartbeat that says the node leaves: dead at once, as after a graceful stop)
  await fakeNode(kv, { id: 'node-gone', settingsVersion: newest, lastHeartbeat: new Date(Date.now() - 10_000).toISOString(), leaving: true })

  const { page, dialogs, pageErrors, clients } = await openUi(t)
  /** the page's calls of GET /api/nodes */
  let asked = 0
  page.on('request', (req) => {
    if (new URL(req.url()).pathname === '/api/nodes') asked++
  })

  await t.test('the Nodes tab lists every node, this one marked', async () => {
    await signIn(page, a.url, TEST_TOKEN)
    const tabs = await page.$$eval('.tabs [data-tab]', (links) => links.map((l) => (l as HTMLElement).dataset.tab))
    assert.equal(tabs[tabs.indexOf('connections') + 1], 'nodes', 'Nodes right after Connections')
    await openTab(page, 'nodes')
    await page.waitForFunction(() => document.querySelectorAll('#nodes-body tr').length === 5, undefined, WAIT)
    const ids = await page.$$eval('#nodes-body tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.nodeId))
    assert.deepEqual([...ids].sort(), ['node-a', 'node-b', 'node-gone', 'node-old', XSS].sort())
    const self = await page.textContent(row('node-a')) ?? ''
    assert.match(self, /this node/)
    assert.match(self, new RegExp(`127\\.0\\.0\\.1:${a.port}`))
    assert.match(await page.textContent('#nodes-summary') ?? '', /5 nodes · newest settings v\d+ · 1 behind · 1 dead/)
  })

  await t.test('it refreshes by itself: a client connecting to node b is counted', async () => {
    const connections = () => page.textContent(`${row('node-b')} td:nth-child(4)`)
    assert.equal(await connections(), '0')
    clients.push(await connectMqtt(b.wsUrl, { clientId: 'meter-on-b' }))
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === '1', `${row('node-b')} td:nth-child(4)`, WAIT)
  })

  await t.test('a node on an older settings version is flagged behind', async () => {
    const old = page.locator(row('node-old'))
    assert.equal(await old.getAttribute('data-behind'), 'true')
    assert.match(await old.getAttribute('class') ?? '', /\bbehind\b/)
    assert.equal(await old.locator('.badge.node-behind').textContent(), `behind: runs v${newest - 1}, newest v${newest}`)
    assert.equal(await page.locator(row('node-a')).getAttribute('data-behind'), 'false')
    assert.equal(await page.locator(`${row('node-a')} .badge.node-behind`).count(), 0)
  })

  await t.test('a node without a heartbeat for 3 s is flagged dead', async () => {
    const gone = page.locator(row('node-gone'))
    assert.equal(await gone.getAttribute('data-state'), 'dead')
    assert.match(await gone.locator('.badge.node-dead').textContent() ?? '', /^dead: last heartbeat \d+ s ago$/)
    assert.equal(await page.locator(`${row('node-old')} .badge.node-alive`).textContent(), 'alive')
    await screenshot(page, 'nodes')
  })

  await t.test('a node id and address made of markup show as text', async () => {
    const x = page.locator(row(XSS))
    assert.equal(await x.locator('td.node-id code').textContent(), XSS)
    assert.equal(await x.locator('td:nth-child(2)').textContent(), XSS)
    assert.equal(await page.locator('#nodes-body img').count(), 0)
    assert.deepEqual(dialogs, [])
  })

  await t.test('Refresh asks at once; a failed answer is said above the last table, and gone with the next answer', async () => {
    const isNodes = (req: { url(): string }) => new URL(req.url()).pathname === '/api/nodes'
    // right after a poll the next one is 2 s away: a request within 1 s is the button's
    await page.waitForRequest(isNodes, WAIT)
    const clicked = page.waitForRequest(isNodes, { timeout: 1000 })
    await page.click('#nodes-refresh')
    await clicked
    await page.route('**/api/nodes', (route) => route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ message: 'the bucket is away' }) }))
    await page.click('#nodes-refresh')
    await page.waitForFunction(() => document.querySelector('#nodes-error')?.textContent === 'Could not load the nodes: the bucket is away', undefined, WAIT)
    assert.equal(await page.locator('#nodes-body tr').count(), 5, 'the last answer still shown')
    await page.unroute('**/api/nodes')
    await page.waitForFunction(() => document.querySelector('#nodes-error')?.textContent === '', undefined, WAIT)
    assert.equal(await page.locator('#nodes-body tr').count(), 5)
  })

  await t.test('another page shown: no more polling', async () => {
    await openTab(page, 'connections')
    const before = asked
    await delay(2300)
    assert.equal(asked, before, 'no GET /api/nodes while the Nodes page is hidden')
    await openTab(page, 'nodes')
    await until(() => asked > before, 'GET /api/nodes once the Nodes page is shown again')
    assert.deepEqual(pageErrors, [])
  })
})
