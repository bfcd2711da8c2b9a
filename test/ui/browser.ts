// What every admin UI browser test shares: Debian's Chromium started headless the way this machine needs it (never
// a downloaded browser), one page of a set size, and every dialog and page error collected so that a test can
// assert that no injected script ran and nothing threw. Closed in the test's `t.after`.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { MqttClient } from 'mqtt'
import { CHROMIUM_PATH } from '../helpers.ts'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const WAIT = { timeout: 10_000 }

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic',
]

export interface UiSession {
  browser: Browser
  page: Page
  /** messages of every dialog the page opened (each dismissed): an XSS payload that ran would show here */
  dialogs: string[]
  /** uncaught errors in the page */
  pageErrors: string[]
  /** MQTT clients the test opens, ended in t.after */
  clients: MqttClient[]
}

export async function openUi(t: { after(fn: () => unknown): void }): Promise<UiSession> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS })
  t.after(() => browser.close())
  const clients: MqttClient[] = []
  t.after(() => {
    for (const c of clients) c.end(true)
  })
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } })
  const dialogs: string[] = []
  page.on('dialog', (d) => {
    dialogs.push(d.message())
    void d.dismiss()
  })
  const pageErrors: string[] = []
  page.on('pageerror', (err) => pageErrors.push(err.message))
  return { browser, page, dialogs, pageErrors, clients }
}

/**
 * A screenshot of the page in `test-output/<name>.png` (its size in bytes returned). With `docs`, it is also a
 * picture of the README: copied to `docs/<name>.png` when that is missing or when UPDATE_DOCS_SCREENSHOT=1 (so that
 * a test run leaves git clean).
 */
export async function screenshot(page: Page, name: string, opts: { docs?: boolean, fullPage?: boolean } = {}): Promise<number> {
  mkdirSync(`${ROOT}test-output`, { recursive: true })
  const file = `${ROOT}test-output/${name}.png`
  const png = await page.screenshot({ path: file, fullPage: opts.fullPage ?? false })
  if (opts.docs && (!existsSync(`${ROOT}docs/${name}.png`) || process.env.UPDATE_DOCS_SCREENSHOT === '1')) {
    mkdirSync(`${ROOT}docs`, { recursive: true })
    copyFileSync(file, `${ROOT}docs/${name}.png`)
  }
  return png.length
}

/** Sign in with `token` on the admin UI at `url` (its `/admin/` page, at `hash`), and wait for the app. */
export async function signIn(page: Page, url: string, token: string, hash = ''): Promise<void> {
  await page.goto(`${url}/admin/${hash}`)
  await page.waitForSelector('#signin-token', { state: 'visible', ...WAIT })
  await page.fill('#signin-token', token)
  await page.click('#signin-form button[type=submit]')
  await page.waitForSelector('#app', { state: 'visible', ...WAIT })
}

/** Click a tab of the admin UI and wait for its view. */
export async function openTab(page: Page, tab: string): Promise<void> {
  await page.click(`a[data-tab="${tab}"]`)
  await page.waitForSelector(`#view-${tab}`, { state: 'visible', ...WAIT })
}
