// The Users view: the MQTT users clients log in as (GET/POST /api/mqtt-users, GET/PATCH/DELETE
// /api/mqtt-users/:username). A password is write-only here: the input is never filled by this code, is emptied after
// every save and when the form is left, and no answer of the API holds one.
import { api, ApiError, query, signedOut } from './api.js'
import { h, $, fill, formatTime } from './dom.js'
import { say, clearFieldErrors, showFieldErrors, notSavedText, confirmed, disarm } from './forms.js'
import { app, can } from './state.js'

const PAGE = 100

const view = {
  /** loaded users in username order */
  items: [],
  nextCursor: null,
  /** the username being edited, or null when the form creates */
  editing: null,
  loading: null,
}

const form = () => $('#user-form')
const passwordInput = () => $('#user-password')
/** The binary order the API pages in (its cursor is the last username). */
const byName = (a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0)

export function initUsers() {
  form().addEventListener('submit', (e) => {
    e.preventDefault()
    save()
  })
  $('#user-cancel').addEventListener('click', () => {
    createMode()
    say($('#user-form-message'), '')
  })
  $('#users-refresh').addEventListener('click', () => load(true))
  $('#users-more').addEventListener('click', () => load(false))
  $('#users-body').addEventListener('click', onRowClick)
  app.addEventListener('tab', (e) => {
    if (e.detail === 'users') load(true)
  })
  app.addEventListener('settings', renderAnonymous)
}

/** Called after sign-in. */
export function startUsers() {
  createMode()
  renderAnonymous()
  load(true)
}

/** Called at sign-out (or a 401): nothing typed stays in the page. */
export function stopUsers() {
  createMode()
  say($('#user-form-message'), '')
  say($('#users-message'), '')
  view.items = []
  view.nextCursor = null
  fill($('#users-body'))
}

function renderAnonymous() {
  const allow = app.settings?.values?.allowAnonymous
  const line = $('#users-anonymous')
  if (allow === undefined) {
    fill(line)
    return
  }
  fill(line,
    'Clients without a username (or with an unknown one) are ',
    h('strong', null, allow ? 'let in as anonymous' : 'refused'),
    ' (the setting ', h('code', null, 'allowAnonymous'), ') · ',
    h('a', { href: '#settings', dataset: { focusSetting: 'allowAnonymous' } }, 'change it in Settings'))
}

// ---- the list ----

async function load(reset) {
  const params = { limit: PAGE }
  if (!reset && view.nextCursor !== null) params.after = view.nextCursor
  const token = {}
  view.loading = token
  const more = $('#users-more')
  more.disabled = true
  try {
    const page = await api(`/api/mqtt-users${query(params)}`)
    if (view.loading !== token) return
    view.items = reset ? page.items : [...view.items, ...page.items]
    view.nextCursor = page.nextCursor ?? null
    render()
    if (reset) say($('#users-message'), '')
  } catch (err) {
    if (view.loading === token && !signedOut(err)) {
      say($('#users-message'), `Could not load the MQTT users: ${err.message}`, 'error')
    }
  } finally {
    more.disabled = false
  }
}

function render() {
  const items = view.items
  $('#users-empty').hidden = items.length > 0
  $('#users-more').hidden = view.nextCursor === null
  const n = items.length
  fill($('#users-count'), view.nextCursor !== null ? `first ${n}, more below` : `${n} user${n === 1 ? '' : 's'}`)
  fill($('#users-body'), items.map(row))
}

function row(u) {
  const editing = view.editing === u.username
  return h('tr', { class: editing ? 'editing' : null, dataset: { username: u.username, enabled: u.enabled } },
    h('td', { class: 'username' }, h('code', null, u.username)),
    h('td', null, h('span', { class: `badge ${u.enabled ? 'state-on' : 'state-off'}` }, u.enabled ? 'enabled' : 'disabled')),
    h('td', { class: 'note' }, u.note ?? h('span', { class: 'muted' }, '—')),
    h('td', { class: 'nowrap', title: u.createdAt }, formatTime(u.createdAt)),
    h('td', { class: 'nowrap', title: u.updatedAt }, formatTime(u.updatedAt)),
    h('td', { class: 'actions needs-operator' }, h('div', { class: 'row-actions' },
      h('button', { type: 'button', class: 'ghost small-button', dataset: { act: 'edit' } }, 'Edit'),
      h('button', { type: 'button', class: 'ghost small-button', dataset: { act: 'toggle' } }, u.enabled ? 'Disable' : 'Enable'),
      h('button', { type: 'button', class: 'ghost small-button danger', dataset: { act: 'delete' } }, 'Delete'))),
  )
}

/** Puts a user's new state in the list (in order), or takes it out (`user` null). */
function upsert(username, user) {
  const i = view.items.findIndex((u) => u.username === username)
  if (i >= 0) view.items.splice(i, 1)
  // a name beyond the loaded pages comes with "Load more"
  const last = view.items[view.items.length - 1]
  if (user && (view.nextCursor === null || !last || byName(user, last) < 0)) {
    view.items.push(user)
    view.items.sort(byName)
  }
  render()
}

function onRowClick(e) {
  const button = e.target.closest('button[data-act]')
  if (!button || !can('operator')) return
  const username = button.closest('tr').dataset.username
  const user = view.items.find((u) => u.username === username)
  if (!user) return
  if (button.dataset.act === 'edit') editMode(user)
  else if (button.dataset.act === 'toggle') toggle(user, button)
  else if (button.dataset.act === 'delete') remove(user, button)
}

async function toggle(user, button) {
  disarm()
  say($('#user-form-message'), '')
  button.disabled = true
  try {
    const saved = await api(userPath(user.username), { method: 'PATCH', body: { enabled: !user.enabled } })
    upsert(user.username, saved)
    say($('#users-message'), `${saved.enabled ? 'Enabled' : 'Disabled'} ${quote(saved.username)}: ${saved.enabled ? 'it may log in again' : 'its next login is refused'}.`)
    if (view.editing === saved.username) $('#user-enabled').checked = saved.enabled
  } catch (err) {
    button.disabled = false
    failed(err, user.username, 'Not changed')
  }
}

async function remove(user, button) {
  if (!confirmed(button, 'Confirm delete?')) return
  button.disabled = true
  say($('#user-form-message'), '')
  try {
    await api(userPath(user.username), { method: 'DELETE' })
    if (view.editing === user.username) createMode()
    upsert(user.username, null)
    say($('#users-message'), `Deleted ${quote(user.username)}: a later login with this name is treated as an unknown user's.`)
  } catch (err) {
    button.disabled = false
    failed(err, user.username, 'Not deleted')
  }
}

/** A failed row action: a 404 means someone else deleted it (the list is reloaded). */
function failed(err, username, what) {
  if (signedOut(err)) return
  if (err instanceof ApiError && err.status === 404) {
    say($('#users-message'), `${what}: ${quote(username)} no longer exists (deleted meanwhile). The list is reloaded.`, 'error')
    if (view.editing === username) createMode()
    load(true)
    return
  }
  say($('#users-message'), `${what}: ${err.message}`, 'error')
}

// ---- the form: create, or edit one user ----

const userPath = (username) => `/api/mqtt-users/${encodeURIComponent(username)}`
const quote = (text) => `“${text}”`

function createMode() {
  const f = form()
  view.editing = null
  f.dataset.mode = 'create'
  f.reset() // empties the password too
  passwordInput().value = ''
  clearFieldErrors(f)
  $('#user-username').readOnly = false
  fill($('#user-form-title'), 'New user')
  fill($('#user-password-label'), 'Password')
  fill($('#user-password-help'), 'Stored only as a salted hash; it is never shown again.')
  fill($('#user-save'), 'Create user')
  $('#user-cancel').hidden = true
  for (const tr of document.querySelectorAll('#users-body tr.editing')) tr.classList.remove('editing')
}

function editMode(user) {
  const f = form()
  createMode()
  view.editing = user.username
  f.dataset.mode = 'edit'
  const name = $('#user-username')
  name.value = user.username
  name.readOnly = true
  $('#user-enabled').checked = user.enabled
  $('#user-note').value = user.note ?? ''
  fill($('#user-form-title'), 'Edit ', h('code', null, user.username))
  fill($('#user-password-label'), 'New password')
  fill($('#user-password-help'), 'Leave empty to keep the current password.')
  fill($('#user-save'), 'Save changes')
  $('#user-cancel').hidden = false
  say($('#user-form-message'), '')
  for (const tr of document.querySelectorAll('#users-body tr')) tr.classList.toggle('editing', tr.dataset.username === user.username)
  $('#user-card').scrollIntoView({ block: 'nearest' })
  $('#user-enabled').focus()
}

async function save() {
  if (!can('operator')) return
  const f = form()
  clearFieldErrors(f)
  disarm()
  const password = passwordInput().value
  const noteText = $('#user-note').value.trim()
  const enabled = $('#user-enabled').checked
  const editing = view.editing
  const button = $('#user-save')
  button.disabled = true
  say($('#user-form-message'), 'Saving…', 'pending')
  try {
    let saved
    if (editing === null) {
      // sent as typed, even empty: the API says what is wrong, next to the field
      const body = { username: $('#user-username').value, password, enabled, note: noteText === '' ? null : noteText }
      saved = await api('/api/mqtt-users', { method: 'POST', body })
    } else {
      const body = { enabled, note: noteText === '' ? null : noteText }
      if (password !== '') body.password = password
      saved = await api(userPath(editing), { method: 'PATCH', body })
    }
    const changedPassword = editing !== null && password !== ''
    createMode() // empties the form, the password first
    upsert(saved.username, saved)
    say($('#user-form-message'), editing === null
      ? `Created ${quote(saved.username)}${saved.enabled ? '' : ' (disabled)'}: it may log in with this password now.`
      : `Saved ${quote(saved.username)}${changedPassword ? ': the new password is in force for the next login' : ''}.`)
    say($('#users-message'), '')
    flash(saved.username)
  } catch (err) {
    if (!(err instanceof ApiError)) {
      say($('#user-form-message'), `Not saved: ${err.message}`, 'error')
    } else if (err.status === 400 || err.status === 409) {
      const { marked, loose } = showFieldErrors(f, err.body)
      if (err.status === 409 && marked === 0) {
        showFieldErrors(f, { fields: [{ field: 'username', message: 'is already taken' }] })
        say($('#user-form-message'), `Not saved: ${err.message}`, 'error')
      } else {
        say($('#user-form-message'), notSavedText(marked, loose, err.message), 'error')
      }
    } else if (err.status === 404 && editing !== null) {
      createMode()
      say($('#user-form-message'), `Not saved: ${quote(editing)} no longer exists (deleted meanwhile).`, 'error')
      load(true)
    } else if (err.status !== 401) {
      say($('#user-form-message'), `Not saved: ${err.message} (HTTP ${err.status}).`, 'error')
    }
  } finally {
    button.disabled = false
  }
}

function flash(username) {
  const tr = [...document.querySelectorAll('#users-body tr')].find((r) => r.dataset.username === username)
  if (!tr) return
  tr.classList.add('fresh')
  tr.scrollIntoView({ block: 'nearest' })
}
