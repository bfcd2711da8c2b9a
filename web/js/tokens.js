// The Tokens view (admins only): the admin tokens in force (GET /api/admin-tokens) with their role and last use,
// making one (POST: its secret is shown once, in a box that is emptied when dismissed, at the next token and at
// sign-out) and revoking one (DELETE, after a second click). The boot token cannot be revoked.
import { api, ApiError, signedOut } from './api.js'
import { h, $, fill, formatAgo, formatTime } from './dom.js'
import { say, clearFieldErrors, showFieldErrors, notSavedText, confirmed, disarm } from './forms.js'
import { app } from './state.js'

const view = { items: [], loading: null }

export function initTokens() {
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault()
    create()
  })
  $('#tokens-refresh').addEventListener('click', () => load())
  $('#tokens-body').addEventListener('click', onRowClick)
  $('#token-secret-done').addEventListener('click', hideSecret)
  $('#token-secret-copy').addEventListener('click', copySecret)
  app.addEventListener('tab', (e) => {
    if (e.detail === 'tokens') load()
  })
}

/** Called after sign-in, for admins only. */
export function startTokens() {
  load()
}

/** Called at sign-out (or a 401): no secret stays in the page. */
export function stopTokens() {
  hideSecret()
  view.items = []
  view.loading = null
  fill($('#tokens-body'))
  $('#token-form').reset()
  clearFieldErrors($('#token-form'))
  for (const id of ['#tokens-message', '#token-form-message']) say($(id), '')
}

async function load() {
  const token = {}
  view.loading = token
  try {
    const { items } = await api('/api/admin-tokens')
    if (view.loading !== token) return
    view.items = items
    render()
  } catch (err) {
    if (view.loading === token && !signedOut(err)) {
      say($('#tokens-message'), `Could not load the tokens: ${err.message}`, 'error')
    }
  }
}

function render() {
  const n = view.items.length
  fill($('#tokens-count'), `${n} in force`)
  fill($('#tokens-body'), view.items.map(row))
}

const roleBadge = (role) => h('span', { class: `badge role-${role}`, dataset: { role } }, role)

function row(t) {
  const self = app.whoami?.name === t.name
  return h('tr', { dataset: { id: t.id, name: t.name } },
    h('td', { class: 'username' }, h('code', null, t.name), self ? h('span', { class: 'muted' }, ' (you)') : null),
    h('td', null, roleBadge(t.role), t.builtIn ? [' ', h('span', { class: 'badge built-in', title: 'ADMIN_TOKEN, or the token generated on first start' }, 'boot token')] : null),
    h('td', { class: 'nowrap', title: t.createdAt }, formatTime(t.createdAt)),
    h('td', { class: 'nowrap', title: t.lastUsedAt ?? 'never' }, t.lastUsedAt === null ? h('span', { class: 'muted' }, 'never') : formatAgo(t.lastUsedAt)),
    h('td', { class: 'actions' }, t.builtIn
      ? h('span', { class: 'muted small', title: 'restart with another ADMIN_TOKEN to replace it' }, 'not revocable')
      : h('div', { class: 'row-actions' },
        h('button', { type: 'button', class: 'ghost small-button danger', dataset: { act: 'revoke' } }, 'Revoke'))),
  )
}

function onRowClick(e) {
  const button = e.target.closest('button[data-act="revoke"]')
  if (!button) return
  const t = view.items.find((i) => i.id === Number(button.closest('tr').dataset.id))
  if (t) revoke(t, button)
}

async function revoke(t, button) {
  const self = app.whoami?.name === t.name
  if (!confirmed(button, self ? 'Confirm: revoke (you are signed in with it)?' : 'Confirm revoke?')) return
  button.disabled = true
  try {
    await api(`/api/admin-tokens/${t.id}`, { method: 'DELETE' })
    say($('#tokens-message'), `Revoked “${t.name}”: it is refused from its next request on.`)
  } catch (err) {
    button.disabled = false
    if (signedOut(err)) return
    say($('#tokens-message'), err instanceof ApiError && err.status === 404
      ? `“${t.name}” is no longer in force (revoked meanwhile). The list is reloaded.`
      : `Not revoked: ${err.message}`, 'error')
  }
  load()
}

async function create() {
  const f = $('#token-form')
  clearFieldErrors(f)
  disarm()
  hideSecret()
  const button = $('#token-create')
  button.disabled = true
  say($('#token-form-message'), 'Creating…', 'pending')
  try {
    const made = await api('/api/admin-tokens', { method: 'POST', body: { name: $('#token-name').value, role: $('#token-role').value } })
    f.reset()
    say($('#token-form-message'), `Created “${made.name}” (${made.role}).`)
    showSecret(made.token)
    await load()
  } catch (err) {
    if (!(err instanceof ApiError)) {
      say($('#token-form-message'), `Not created: ${err.message}`, 'error')
    } else if (err.status === 400 || err.status === 409) {
      const { marked, loose } = showFieldErrors(f, err.body)
      say($('#token-form-message'), err.status === 409 ? `Not created: ${err.message}` : notSavedText(marked, loose, err.message).replace('Not saved', 'Not created'), 'error')
    } else if (err.status !== 401) {
      say($('#token-form-message'), `Not created: ${err.message} (HTTP ${err.status}).`, 'error')
    }
  } finally {
    button.disabled = false
  }
}

// ---- the secret, shown once ----

function showSecret(secret) {
  fill($('#token-secret-value'), secret)
  fill($('#token-secret-copy'), 'Copy')
  $('#token-secret').hidden = false
  $('#token-secret').scrollIntoView({ block: 'nearest' })
}

function hideSecret() {
  fill($('#token-secret-value'))
  $('#token-secret').hidden = true
}

async function copySecret() {
  const text = $('#token-secret-value').textContent
  try {
    await navigator.clipboard.writeText(text)
    fill($('#token-secret-copy'), 'Copied')
  } catch {
    // no clipboard (plain http, or refused): select the text for Ctrl+C
    const range = document.createRange()
    range.selectNodeContents($('#token-secret-value'))
    const selection = getSelection()
    selection.removeAllRanges()
    selection.addRange(range)
    fill($('#token-secret-copy'), 'Selected: press Ctrl+C')
  }
}
