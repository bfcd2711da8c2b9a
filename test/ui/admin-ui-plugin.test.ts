// The admin UI's serving (no browser needed): paths, headers, and a check of web/ for ways to inject markup.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildApp } from '../../src/app.ts'
import { WEB_ROOT } from '../../src/plugins/admin-ui.ts'
import { TEST_TOKEN } from '../helpers.ts'

async function app(t: import('node:test').TestContext) {
  const a = await buildApp({ config: { dbPath: ':memory:', adminToken: TEST_TOKEN }, logger: false })
  t.after(() => a.close())
  return a
}

test('/admin redirects to /admin/, keeping the query', async (t) => {
  const a = await app(t)
  for (const [url, location] of [['/admin', '/admin/'], ['/admin?x=1', '/admin/?x=1']]) {
    const res = await a.inject({ url })
    assert.equal(res.statusCode, 302, url)
    assert.equal(res.headers.location, location)
  }
})

test('the UI is served without a token, with a strict Content-Security-Policy', async (t) => {
  const a = await app(t)
  const page = await a.inject({ url: '/admin/' })
  assert.equal(page.statusCode, 200)
  assert.match(String(page.headers['content-type']), /^text\/html/)
  assert.match(page.body, /<script type="module" src="js\/main\.js"><\/script>/)
  const csp = String(page.headers['content-security-policy'])
  assert.match(csp, /script-src 'self'(;|$)/, 'no inline or remote script')
  assert.match(csp, /connect-src 'self'/)
  assert.equal(page.headers['x-content-type-options'], 'nosniff')

  const script = await a.inject({ url: '/admin/js/main.js' })
  assert.equal(script.statusCode, 200)
  assert.match(String(script.headers['content-type']), /javascript/)
  assert.equal((await a.inject({ url: '/admin/style.css' })).statusCode, 200)
  assert.equal((await a.inject({ url: '/admin/no-such-file.js' })).statusCode, 404)
  // the API behind it still needs the token
  assert.equal((await a.inject({ url: '/api/settings' })).statusCode, 401)
})

test('/favicon.ico points at the UI\'s icon instead of a 404', async (t) => {
  const a = await app(t)
  const res = await a.inject({ url: '/favicon.ico' })
  assert.equal(res.statusCode, 301)
  assert.equal(res.headers.location, '/admin/favicon.svg')
  const icon = await a.inject({ url: '/admin/favicon.svg' })
  assert.equal(icon.statusCode, 200)
  assert.match(String(icon.headers['content-type']), /^image\/svg\+xml/)
})

test('web/ never turns strings into markup (client-controlled text stays text)', () => {
  const files = readdirSync(WEB_ROOT, { recursive: true, encoding: 'utf8' }).filter((f) => /\.(js|html)$/.test(f))
  assert.ok(files.length >= 5, 'found the UI sources')
  const forbidden = [/\.innerHTML\b/, /\.outerHTML\b/, /insertAdjacentHTML/, /document\.write/, /\beval\(/, /new Function\(/, /setAttribute\(\s*['"]on/]
  for (const file of files) {
    const text = readFileSync(join(WEB_ROOT, file), 'utf8').replace(/^\s*\/\/.*$/gm, '') // comments may name them
    for (const pattern of forbidden) assert.doesNotMatch(text, pattern, `${file} uses ${pattern}`)
  }
  // inline scripts and handlers would be refused by the CSP anyway; none are written
  const html = readFileSync(join(WEB_ROOT, 'index.html'), 'utf8')
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/)
  assert.doesNotMatch(html, /\son[a-z]+=/)
})
