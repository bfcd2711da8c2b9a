// The ACL view: the topic rules in the order they are checked (GET/POST /api/acl, GET/PATCH/DELETE /api/acl/:id),
// adding one (appended or at a position), editing, moving up/down, deleting, the default policy (the setting
// aclDefault), and "try it" (POST /api/acl/check), which names the rule that decided and says why.
import { api, ApiError, signedOut } from './api.js'
import { h, $, $$, fill } from './dom.js'
import { say, clearFieldErrors, showFieldErrors, markField, notSavedText, confirmed, disarm } from './forms.js'
import { app, can } from './state.js'

const ACTIONS = { all: 'publish and subscribe', publish: 'publish', subscribe: 'subscribe' }
/** What a rule body field is called in the form when the API names another (anonymous is part of "who"). */
const ALIAS = { anonymous: 'who' }
const FIELDS = ['position', 'username', 'anonymous', 'clientId', 'topic', 'action', 'permission', 'comment']

const view = {
  rules: [],
  aclDefault: null,
  version: null,
  loaded: false,
  /** the rule id being edited, or null when the form adds one */
  editing: null,
  loading: null,
  /** the last "try it" answer: { version, decidedBy } */
  tried: null,
}

const ruleForm = () => $('#acl-form')
const tryForm = () => $('#try-form')

export function initAcl() {
  ruleForm().addEventListener('submit', (e) => {
    e.preventDefault()
    save()
  })
  $('#acl-who').addEventListener('change', showUsernameField)
  $('#acl-cancel').addEventListener('click', () => {
    createMode()
    say($('#acl-form-message'), '')
  })
  $('#acl-refresh').addEventListener('click', () => load())
  $('#acl-body').addEventListener('click', onRowClick)
  tryForm().addEventListener('submit', (e) => {
    e.preventDefault()
    check()
  })
  $('#try-anonymous').addEventListener('change', (e) => {
    $('#try-username').disabled = e.target.checked
  })
  $('#try-result').addEventListener('click', (e) => {
    const link = e.target.closest('[data-show-rule]')
    if (!link) return
    e.preventDefault()
    highlight(Number(link.dataset.showRule), true)
  })
  app.addEventListener('tab', (e) => {
    if (e.detail === 'acl') load()
  })
  // a new aclDefault changes the answer for every topic no rule matches
  app.addEventListener('settings', () => {
    if (view.loaded) load()
  })
}

/** Called after sign-in. */
export function startAcl() {
  createMode()
  load()
}

export function stopAcl() {
  createMode()
  view.loaded = false
  view.tried = null
  fill($('#acl-body'))
  fill($('#try-result'))
  $('#try-result').hidden = true
  for (const id of ['#acl-message', '#acl-form-message', '#try-message']) say($(id), '')
}

// ---- the rule list ----

async function load() {
  const token = {}
  view.loading = token
  try {
    const { items, aclDefault, version } = await api('/api/acl')
    if (view.loading !== token) return
    view.rules = items
    view.aclDefault = aclDefault
    view.version = version
    view.loaded = true
    render()
  } catch (err) {
    if (view.loading === token && !signedOut(err)) {
      say($('#acl-message'), `Could not load the ACL rules: ${err.message}`, 'error')
    }
  }
}

function render() {
  const rules = view.rules
  $('#acl-empty').hidden = rules.length > 0
  fill($('#acl-summary'), `${rules.length} rule${rules.length === 1 ? '' : 's'} · version ${view.version}`)
  fill($('#acl-body'), rules.map((r, i) => row(r, i === 0, i === rules.length - 1)))
  const def = $('#acl-default')
  def.className = `badge perm ${view.aclDefault}`
  def.dataset.permission = view.aclDefault
  fill(def, view.aclDefault)
  // the rule being edited may have moved or gone
  if (view.editing !== null && !rules.some((r) => r.id === view.editing)) {
    createMode()
    say($('#acl-form-message'), 'The rule you were editing was deleted meanwhile.', 'error')
  }
  markStale()
}

/** "user “alice”", "anonymous clients" or "everyone", and the client id glob when the rule has one. */
function whoNodes(r) {
  const who = r.username !== null
    ? ['user ', h('code', null, r.username)]
    : r.anonymous ? ['anonymous clients'] : ['everyone']
  return r.clientId === null ? who : [...who, h('span', { class: 'who-client' }, 'client id ', h('code', null, r.clientId))]
}

function permBadge(permission) {
  return h('span', { class: `badge perm ${permission}`, dataset: { permission } }, permission)
}

function row(r, first, last) {
  return h('tr', { class: view.editing === r.id ? 'editing' : null, dataset: { id: r.id, position: r.position } },
    h('td', { class: 'num position' }, String(r.position)),
    h('td', { class: 'who' }, whoNodes(r)),
    h('td', { class: 'topic' }, h('code', null, r.topic)),
    h('td', { class: 'nowrap action' }, ACTIONS[r.action] ?? r.action),
    h('td', null, permBadge(r.permission)),
    h('td', { class: 'rule-comment' }, r.comment ?? h('span', { class: 'muted' }, '—')),
    h('td', { class: 'actions needs-operator' }, h('div', { class: 'row-actions' },
      h('button', { type: 'button', class: 'ghost small-button', dataset: { act: 'up' }, disabled: first, title: 'move up (checked earlier)', 'aria-label': 'move up' }, '↑'),
      h('button', { type: 'button', class: 'ghost small-button', dataset: { act: 'down' }, disabled: last, title: 'move down (checked later)', 'aria-label': 'move down' }, '↓'),
      h('button', { type: 'button', class: 'ghost small-button', dataset: { act: 'edit' } }, 'Edit'),
      h('button', { type: 'button', class: 'ghost small-button danger', dataset: { act: 'delete' } }, 'Delete'))),
  )
}

const rowOf = (id) => $$('#acl-body tr').find((tr) => Number(tr.dataset.id) === id)

function highlight(id, scroll = false) {
  for (const tr of $$('#acl-body tr.decided')) tr.classList.remove('decided')
  const tr = id === null ? null : rowOf(id)
  if (!tr) return
  tr.classList.add('decided')
  if (scroll) tr.scrollIntoView({ block: 'center', behavior: 'smooth' })
}

function flash(id) {
  const tr = rowOf(id)
  if (!tr) return
  tr.classList.remove('fresh')
  void tr.offsetWidth // restart the animation
  tr.classList.add('fresh')
}

function onRowClick(e) {
  const button = e.target.closest('button[data-act]')
  if (!button || !can('operator')) return
  const rule = view.rules.find((r) => r.id === Number(button.closest('tr').dataset.id))
  if (!rule) return
  const act = button.dataset.act
  if (act === 'edit') editMode(rule)
  else if (act === 'delete') remove(rule, button)
  else if (act === 'up') move(rule, rule.position - 1)
  else if (act === 'down') move(rule, rule.position + 1)
}

async function move(rule, position) {
  disarm()
  if (position < 1 || position > view.rules.length) return
  say($('#acl-form-message'), '')
  try {
    await api(`/api/acl/${rule.id}`, { method: 'PATCH', body: { position } })
    say($('#acl-message'), `Rule #${rule.id} moved to position ${position}: in force now.`)
    await load()
    flash(rule.id)
  } catch (err) {
    failed(err, rule, 'Not moved')
  }
}

async function remove(rule, button) {
  if (!confirmed(button, 'Confirm delete?')) return
  button.disabled = true
  say($('#acl-form-message'), '')
  try {
    await api(`/api/acl/${rule.id}`, { method: 'DELETE' })
    say($('#acl-message'), `Rule #${rule.id} deleted; the rules after it moved up one.`)
    await load()
  } catch (err) {
    button.disabled = false
    failed(err, rule, 'Not deleted')
  }
}

function failed(err, rule, what) {
  if (signedOut(err)) return
  if (err instanceof ApiError && err.status === 404) {
    say($('#acl-message'), `${what}: rule #${rule.id} no longer exists (deleted meanwhile). The list is reloaded.`, 'error')
  } else if (err instanceof ApiError && err.status === 400) {
    const text = (err.body?.fields ?? []).map((f) => `${f.field} ${f.message}`).join('; ') || err.message
    say($('#acl-message'), `${what}: ${text}. The list is reloaded.`, 'error')
  } else {
    say($('#acl-message'), `${what}: ${err.message}`, 'error')
  }
  load()
}

// ---- the form: add a rule, or edit one ----

function showUsernameField() {
  $('#acl-username-field').hidden = $('#acl-who').value !== 'user'
}

function createMode() {
  const f = ruleForm()
  view.editing = null
  f.dataset.mode = 'create'
  f.reset()
  clearFieldErrors(f)
  showUsernameField()
  fill($('#acl-form-title'), 'Add a rule')
  fill($('#acl-position-help'), 'empty: after the last rule; a number: there, the rules from it move down')
  fill($('#acl-save'), 'Add rule')
  $('#acl-cancel').hidden = true
  for (const tr of $$('#acl-body tr.editing')) tr.classList.remove('editing')
}

function editMode(rule) {
  createMode()
  view.editing = rule.id
  ruleForm().dataset.mode = 'edit'
  $('#acl-who').value = rule.username !== null ? 'user' : rule.anonymous ? 'anonymous' : 'everyone'
  showUsernameField()
  $('#acl-username').value = rule.username ?? ''
  $('#acl-clientId').value = rule.clientId ?? ''
  $('#acl-topic').value = rule.topic
  $('#acl-action').value = rule.action
  $('#acl-permission').value = rule.permission
  $('#acl-position').value = String(rule.position)
  $('#acl-comment').value = rule.comment ?? ''
  fill($('#acl-form-title'), `Edit rule #${rule.id}`)
  fill($('#acl-position-help'), 'a new number moves the rule there; the rules between shift by one')
  fill($('#acl-save'), 'Save rule')
  $('#acl-cancel').hidden = false
  say($('#acl-form-message'), '')
  for (const tr of $$('#acl-body tr')) tr.classList.toggle('editing', Number(tr.dataset.id) === rule.id)
  $('#acl-card').scrollIntoView({ block: 'nearest' })
  $('#acl-topic').focus()
}

/** The rule as the form says it: text as typed (the API checks it), empty optional fields as null. */
function readForm() {
  const who = $('#acl-who').value
  const clientId = $('#acl-clientId').value
  const comment = $('#acl-comment').value.trim()
  const positionText = $('#acl-position').value.trim()
  const out = {
    username: who === 'user' ? $('#acl-username').value : null,
    anonymous: who === 'anonymous',
    clientId: clientId.trim() === '' ? null : clientId,
    topic: $('#acl-topic').value,
    action: $('#acl-action').value,
    permission: $('#acl-permission').value,
    comment: comment === '' ? null : comment,
  }
  if (positionText !== '') {
    const n = Number(positionText)
    out.position = Number.isFinite(n) ? n : positionText
  } else if ($('#acl-position').validity.badInput) {
    out.position = 'not a number'
  }
  return out
}

async function save() {
  if (!can('operator')) return
  const f = ruleForm()
  clearFieldErrors(f)
  disarm()
  const editing = view.editing
  const input = readForm()
  let body = input
  if (editing !== null) {
    const rule = view.rules.find((r) => r.id === editing)
    body = {}
    for (const key of FIELDS) if (input[key] !== undefined && input[key] !== rule?.[key]) body[key] = input[key]
    if (Object.keys(body).length === 0) {
      say($('#acl-form-message'), 'Nothing to save: the rule is as the form shows it.')
      return
    }
  }
  const button = $('#acl-save')
  button.disabled = true
  say($('#acl-form-message'), 'Saving…', 'pending')
  try {
    const saved = editing === null
      ? await api('/api/acl', { method: 'POST', body })
      : await api(`/api/acl/${editing}`, { method: 'PATCH', body })
    createMode()
    say($('#acl-message'), '')
    say($('#acl-form-message'), editing === null
      ? `Rule #${saved.id} added at position ${saved.position}: in force now.`
      : `Rule #${saved.id} saved (position ${saved.position}): in force now.`)
    await load()
    flash(saved.id)
  } catch (err) {
    if (!(err instanceof ApiError)) {
      say($('#acl-form-message'), `Not saved: ${err.message}`, 'error')
    } else if (err.status === 400) {
      const { marked, loose } = showFieldErrors(f, err.body, ALIAS)
      say($('#acl-form-message'), notSavedText(marked, loose, err.message), 'error')
    } else if (err.status === 404 && editing !== null) {
      createMode()
      say($('#acl-form-message'), `Not saved: rule #${editing} no longer exists (deleted meanwhile).`, 'error')
      load()
    } else if (err.status !== 401) {
      say($('#acl-form-message'), `Not saved: ${err.message} (HTTP ${err.status}).`, 'error')
    }
  } finally {
    button.disabled = false
  }
}

// ---- try it ----

async function check() {
  const f = tryForm()
  clearFieldErrors(f)
  say($('#try-message'), '')
  const anonymous = $('#try-anonymous').checked
  const username = $('#try-username').value
  if (!anonymous && username === '') {
    markField(f, 'username', 'type a username, or tick “anonymous”')
    return
  }
  const body = {
    username: anonymous ? null : username,
    clientId: $('#try-clientId').value,
    action: $('#try-action').value,
    topic: $('#try-topic').value,
  }
  const button = $('#try-check')
  button.disabled = true
  try {
    const result = await api('/api/acl/check', { method: 'POST', body })
    showResult(body, result)
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) {
      const { marked, loose } = showFieldErrors(f, err.body)
      if (marked === 0 || loose.length > 0) say($('#try-message'), loose.join('; ') || err.message, 'error')
    } else if (!signedOut(err)) {
      say($('#try-message'), `Could not check: ${err.message}`, 'error')
    }
  } finally {
    button.disabled = false
  }
}

function showResult(q, result) {
  const box = $('#try-result')
  const byRule = result.decidedBy !== 'default'
  const rule = byRule ? result.rule ?? view.rules.find((r) => r.id === result.decidedBy.id) : null
  view.tried = { version: view.version, decidedBy: byRule ? result.decidedBy.id : null }
  box.dataset.seq = String(Number(box.dataset.seq ?? 0) + 1) // one more answer (tests wait for it)
  box.dataset.allowed = String(result.allowed)
  box.dataset.decidedBy = byRule ? `rule-${result.decidedBy.id}` : 'default'
  const client = q.username === null ? 'an anonymous client' : ['user ', h('code', null, q.username)]
  const decided = byRule
    ? [
      'Decided by ',
      h('a', { href: '#acl', class: 'rule-link', dataset: { showRule: result.decidedBy.id } }, `rule #${result.decidedBy.id}`),
      ` at position ${result.decidedBy.position}`,
      rule ? [': ', rule.permission, ' ', ACTIONS[rule.action] ?? rule.action, ' of ', h('code', null, rule.topic), ' for ', whoNodes(rule)] : null,
      '.',
    ]
    : ['Decided by the ', h('strong', null, 'default policy'), ': no rule matched, and ', h('code', null, 'aclDefault'),
      ` is ${result.allowed ? 'allow' : 'deny'}.`]
  fill(box,
    h('div', { class: 'verdict' },
      h('span', { class: `badge perm verdict-badge ${result.allowed ? 'allow' : 'deny'}` }, result.allowed ? 'allowed' : 'denied'),
      h('span', { class: 'verdict-text' }, client, q.clientId === '' ? '' : [' (client id ', h('code', null, q.clientId), ')'],
        ` may ${result.allowed ? '' : 'not '}${q.action} `, h('code', null, q.topic))),
    h('p', { class: 'decided' }, decided),
    h('p', { class: 'explanation' }, result.explanation),
    h('p', { class: 'stale', hidden: true }, 'The rules or the default policy changed since this answer: check again.'),
  )
  box.hidden = false
  highlight(byRule ? result.decidedBy.id : null)
}

/** After a change of the rules, an answer on screen may no longer be the broker's: say so. */
function markStale() {
  if (!view.tried) return
  const stale = view.tried.version !== view.version
  const note = $('#try-result .stale')
  if (note) note.hidden = !stale
  highlight(stale ? null : view.tried.decidedBy)
}
