// Entry point: sign-in (the token's name and role from GET /api/whoami), tabs (those the role may use), the header's
// status, and starting/stopping the views.
import { api, session, UNAUTHORIZED_EVENT, signedOut } from './api.js'
import { h, $, $$, fill, formatNumber } from './dom.js'
import { app, can } from './state.js'
import { initFailures, startFailures, stopFailures } from './failures.js'
import { initSettings, startSettings } from './settings.js'
import { initConnections, startConnections, stopConnections } from './connections.js'
import { initNodes, stopNodes } from './nodes.js'
import { initUsers, startUsers, stopUsers } from './users.js'
import { initAcl, startAcl, stopAcl } from './acl.js'
import { initRetained, startRetained, stopRetained } from './retained.js'
import { initSessions, startSessions, stopSessions } from './sessions.js'
import { initAudit, startAudit, stopAudit } from './audit.js'
import { initTokens, startTokens, stopTokens } from './tokens.js'
import { initAlerts, startAlerts, stopAlerts } from './alerts.js'

const TABS = ['failures', 'settings', 'connections', 'nodes', 'users', 'acl', 'retained', 'sessions', 'alerts', 'audit', 'tokens']
/** Tabs a viewer does not get: the role each needs (the same as its API). */
const TAB_ROLE = { audit: 'operator', tokens: 'admin' }
const tabAllowed = (tab) => TAB_ROLE[tab] === undefined || can(TAB_ROLE[tab])
let running = false
let healthTimer = null

function showSignIn(text = '') {
  stopAll()
  app.whoami = null
  delete document.body.dataset.role
  fill($('#signed-in'))
  $('#app').hidden = true
  $('#signin').hidden = false
  fill($('#signin-message'), text)
  $('#signin-token').value = ''
  $('#signin-token').focus()
}

let signingIn = false

async function signIn(token) {
  session.token = token
  signingIn = true
  try {
    // the token's check, and what it may do: the page shows only that (body[data-role], can())
    const who = await api('/api/whoami')
    app.whoami = who
    document.body.dataset.role = who.role
    fill($('#signed-in'), 'signed in as ', h('code', null, who.name), ` · ${who.role}`)
    app.setSettings(await api('/api/settings'))
  } catch (err) {
    if (signedOut(err)) return // the UNAUTHORIZED_EVENT handler shows the message
    fill($('#signin-message'), `Could not reach the server: ${err.message}`)
    return
  } finally {
    signingIn = false
  }
  $('#signin').hidden = true
  $('#app').hidden = false
  startAll()
}

function startAll() {
  if (running) return
  running = true
  showTab()
  startSettings()
  startFailures()
  startConnections()
  startUsers()
  startAcl()
  startRetained()
  startSessions()
  startAlerts()
  if (can('operator')) startAudit()
  if (can('admin')) startTokens()
  checkHealth()
  healthTimer = setInterval(checkHealth, 10_000)
}

function stopAll() {
  if (!running) return
  running = false
  stopFailures()
  stopConnections()
  stopNodes()
  stopUsers()
  stopAcl()
  stopRetained()
  stopSessions()
  stopAlerts()
  stopAudit()
  stopTokens()
  clearInterval(healthTimer)
}

function showTab() {
  const name = location.hash.replace(/^#/, '')
  const tab = TABS.includes(name) && tabAllowed(name) ? name : TABS[0]
  for (const link of $$('.tabs [data-tab]')) {
    const active = link.dataset.tab === tab
    link.classList.toggle('active', active)
    link.setAttribute('aria-selected', String(active))
  }
  for (const section of $$('.view')) section.hidden = section.dataset.view !== tab
  if (running) app.dispatchEvent(new CustomEvent('tab', { detail: tab }))
}

function setPill(el, state, text) {
  el.dataset.state = state
  fill($('.pill-text', el), text)
}

async function checkHealth() {
  const pill = $('#status-broker')
  try {
    const res = await fetch('/healthz', { cache: 'no-store' })
    let body = null
    try {
      body = await res.json()
    } catch {}
    const ok = res.ok && (!body || body.status === undefined || body.status === 'ok')
    setPill(pill, ok ? 'ok' : 'warn', ok ? 'broker running' : `broker: ${body?.status ?? `HTTP ${res.status}`}`)
  } catch {
    setPill(pill, 'down', 'server unreachable')
  }
}

app.addEventListener('stream', () => {
  const { state, detail } = app.stream
  const pill = $('#status-stream')
  if (state === 'open') setPill(pill, 'ok', 'live feed on')
  else if (state === 'error' || state === 'closed') setPill(pill, 'warn', `live feed: reconnecting${detail ? ` (${detail})` : ''}`)
})

app.addEventListener('settings', () => {
  const v = app.settings
  if (!v) return
  fill($('#status-version'), `v${v.version}`)
  fill($('#status-timeout'), `${formatNumber(v.values.connectTimeoutMs)} ms`)
})

window.addEventListener(UNAUTHORIZED_EVENT, () => {
  // several requests in flight may each get the 401: the first one decides the message
  if (running) showSignIn('The server refused the token (401): your session ended or the token changed. Sign in again.')
  else if (signingIn) showSignIn('That token was refused (401). Check ADMIN_TOKEN and try again.')
})

window.addEventListener('hashchange', showTab)

// "change it in Settings" links (`data-focus-setting="aclDefault"`): open the Settings tab at that field
document.addEventListener('click', (e) => {
  const link = e.target.closest?.('a[data-focus-setting]')
  if (!link) return
  e.preventDefault()
  if (location.hash !== '#settings') history.pushState(null, '', '#settings')
  showTab()
  const key = link.dataset.focusSetting
  const field = $(`.field[data-field="${CSS.escape(key)}"]`)
  if (!field) return
  field.scrollIntoView({ block: 'center' })
  field.classList.remove('pointed')
  void field.offsetWidth // restart the animation
  field.classList.add('pointed')
  $(`#setting-${CSS.escape(key)}`)?.focus({ preventScroll: true })
})

// "version N" links of the audit trail (`data-history-version`): open the Settings tab at that version of the history
document.addEventListener('click', async (e) => {
  const link = e.target.closest?.('a[data-history-version]')
  if (!link) return
  e.preventDefault()
  if (location.hash !== '#settings') history.pushState(null, '', '#settings')
  showTab()
  const version = Number(link.dataset.historyVersion)
  const item = await historyItem(version)
  if (!item) return
  item.scrollIntoView({ block: 'center' })
  item.classList.remove('pointed')
  void item.offsetWidth // restart the animation
  item.classList.add('pointed')
})

/** The history's entry of a version, loading older pages until it shows (or there are no more). */
async function historyItem(version) {
  for (let i = 0; i < 50; i++) {
    const item = $$('#settings-history li[data-version]').find((li) => Number(li.dataset.version) === version)
    if (item) return item
    const more = $('#history-more')
    if (more.hidden) return null
    more.click()
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return null
}

document.addEventListener('DOMContentLoaded', () => {
  initFailures()
  initSettings()
  initConnections()
  initNodes()
  initUsers()
  initAcl()
  initRetained()
  initSessions()
  initAlerts()
  initAudit()
  initTokens()
  $('#signin-form').addEventListener('submit', (e) => {
    e.preventDefault()
    const token = $('#signin-token').value.trim()
    if (token) signIn(token)
  })
  $('#signout').addEventListener('click', () => {
    session.token = null
    showSignIn('Signed out.')
  })
  if (session.token) signIn(session.token)
  else showSignIn()
})
