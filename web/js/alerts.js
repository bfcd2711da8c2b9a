// The Alerts view and banner: the rules (GET/POST /api/alerts/rules, GET/PATCH/DELETE /api/alerts/rules/:id), the
// built-in one first and marked, adding/editing one (the webhook secret is write-only), enabling and disabling, the
// history of what fired (GET /api/alerts/history) with a link to the failure list filtered to the failures behind
// each event; and the banner on every page while a rule fires (GET /api/alerts/active, polled).
import { api, ApiError, query, signedOut } from './api.js'
import { h, $, $$, fill, formatTime, formatNumber } from './dom.js'
import { say, clearFieldErrors, showFieldErrors, notSavedText, confirmed, disarm } from './forms.js'
import { REASONS, reasonInfo } from './reasons.js'
import { app, can } from './state.js'

/** How often the banner asks what fires (ms). */
const ACTIVE_POLL_MS = 3000
const HISTORY_PAGE = 25
const FIELDS = ['name', 'enabled', 'reason', 'profile', 'minBytesReceived', 'kind', 'count', 'windowSec', 'factor', 'baselineSec',
  'notifyUi', 'webhookUrl', 'comment']

const view = {
  rules: [],
  editing: null,
  loading: null,
  activeTimer: null,
  /** the rule ids firing at the last poll, to refresh the view when that changes */
  firingKey: '',
  historyCursor: null,
}

const form = () => $('#alert-form')

export function initAlerts() {
  const reason = $('#alert-reason')
  for (const r of REASONS) reason.append(h('option', { value: r.id }, r.label))
  form().addEventListener('submit', (e) => {
    e.preventDefault()
    save()
  })
  $('#alert-kind').addEventListener('change', showKindFields)
  $('#alert-cancel').addEventListener('click', () => {
    createMode()
    say($('#alert-form-message'), '')
  })
  $('#alerts-refresh').addEventListener('click', () => load())
  $('#alert-history-refresh').addEventListener('click', () => loadHistory(true))
  $('#alert-history-more').addEventListener('click', () => loadHistory(false))
  $('#alerts-body').addEventListener('click', onRowClick)
  app.addEventListener('tab', (e) => {
    if (e.detail === 'alerts') {
      load()
      loadHistory(true)
    }
  })
  // "the failures behind it" links, in the history and the banner: the Failures tab filtered to them
  document.addEventListener('click', (e) => {
    const link = e.target.closest?.('a[data-failures-query]')
    if (!link) return
    e.preventDefault()
    showFailures(JSON.parse(link.dataset.failuresQuery))
  })
}

/** Called after sign-in. */
export function startAlerts() {
  createMode()
  pollActive()
  view.activeTimer = setInterval(pollActive, ACTIVE_POLL_MS)
  if (location.hash === '#alerts') {
    load()
    loadHistory(true)
  }
}

export function stopAlerts() {
  clearInterval(view.activeTimer)
  view.activeTimer = null
  view.firingKey = ''
  $('#alert-banner').hidden = true
  fill($('#alert-banner-list'))
  fill($('#tab-alerts-count'))
  fill($('#alerts-body'))
  fill($('#alert-history-body'))
  for (const id of ['#alerts-message', '#alert-form-message']) say($(id), '')
}

// ---- the banner ----

async function pollActive() {
  let items
  try {
    items = (await api('/api/alerts/active')).items
  } catch {
    return // the header's pills say when the server is away
  }
  const shown = items.filter((a) => a.notifyUi)
  const banner = $('#alert-banner')
  banner.hidden = shown.length === 0
  banner.dataset.count = String(shown.length)
  fill($('#alert-banner-list'), shown.map((a) => h('li', { dataset: { rule: a.ruleName } },
    h('code', null, a.ruleName), a.builtIn ? ' (built-in)' : '', `: ${a.detail} · firing since ${formatTime(a.since)} · `,
    failuresLink(a.failures, 'see the failures'))))
  fill($('#tab-alerts-count'), items.length > 0 ? String(items.length) : '')
  const key = items.map((a) => a.ruleId).sort().join(',')
  if (key !== view.firingKey) {
    view.firingKey = key
    if (location.hash === '#alerts') {
      load()
      loadHistory(true)
    }
  }
}

function failuresLink(q, text) {
  return h('a', { href: '#failures', class: 'failures-link', dataset: { failuresQuery: JSON.stringify(q) } }, text)
}

/** A date as a datetime-local input takes it: local time, to the second. */
function localInput(iso) {
  const d = new Date(iso)
  const p = (n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
}

/** Opens the Failures tab with its filter form set to the query (reason, profile, since, until) and applied. */
function showFailures(q) {
  const f = $('#failure-filters')
  for (const el of $$('input, select', f)) el.value = ''
  $('#filter-reason').value = q.reason ?? ''
  const profile = $('#filter-profile') // the failure list's profile filter, when the page has one
  if (profile) profile.value = q.profile ?? ''
  $('#filter-since').value = q.since ? localInput(q.since) : ''
  $('#filter-until').value = q.until ? localInput(q.until) : ''
  location.hash = '#failures'
  f.requestSubmit()
}

// ---- the rules ----

async function load() {
  const token = {}
  view.loading = token
  try {
    const { items } = await api('/api/alerts/rules')
    if (view.loading !== token) return
    view.rules = items
    render()
  } catch (err) {
    if (view.loading === token && !signedOut(err)) {
      say($('#alerts-message'), `Could not load the alert rules: ${err.message}`, 'error')
    }
  }
}

function describeMatch(r) {
  const parts = [r.reason === null ? 'any failure' : reasonInfo(r.reason).label]
  if (r.minBytesReceived === 1) parts.push('after part of a CONNECT')
  else if (r.minBytesReceived > 1) parts.push(`after ≥ ${formatNumber(r.minBytesReceived)} bytes`)
  if (r.profile !== null) parts.push(`profile ${r.profile}`)
  return parts.join(', ')
}

function describeCondition(r) {
  return r.kind === 'threshold'
    ? `≥ ${formatNumber(r.count)} in ${formatNumber(r.windowSec)} s`
    : `${r.factor}x the rate of the ${formatNumber(r.baselineSec)} s before, over ${formatNumber(r.windowSec)} s (≥ ${formatNumber(r.count)})`
}

function stateBadge(r) {
  const state = !r.enabled ? 'disabled' : r.firing ? 'firing' : 'ok'
  return h('span', { class: `badge alert-state ${state}`, dataset: { state } }, state === 'ok' ? 'quiet' : state)
}

function render() {
  const rules = view.rules
  const firing = rules.filter((r) => r.firing).length
  fill($('#alerts-summary'), `${rules.length} rule${rules.length === 1 ? '' : 's'} · ${firing} firing`)
  fill($('#alerts-body'), rules.map((r) => h('tr', { class: view.editing === r.id ? 'editing' : null, dataset: { id: r.id, name: r.name } },
    h('td', { class: 'rule-name' }, h('code', null, r.name), r.builtIn ? h('span', { class: 'badge built-in', title: 'editable, not deletable' }, 'built-in') : null),
    h('td', null, stateBadge(r)),
    h('td', null, describeMatch(r)),
    h('td', null, describeCondition(r)),
    h('td', null, [r.notifyUi ? 'banner' : null, r.webhookUrl ? `webhook${r.hasSecret ? ' (signed)' : ''}` : null].filter(Boolean).join(', ') || '—'),
    h('td', { class: 'rule-comment' }, r.comment ?? h('span', { class: 'muted' }, '—')),
    h('td', { class: 'actions needs-operator' }, h('div', { class: 'row-actions' },
      h('button', { type: 'button', class: 'ghost small-button', dataset: { act: 'toggle' } }, r.enabled ? 'Disable' : 'Enable'),
      h('button', { type: 'button', class: 'ghost small-button', dataset: { act: 'edit' } }, 'Edit'),
      r.builtIn ? null : h('button', { type: 'button', class: 'ghost small-button danger', dataset: { act: 'delete' } }, 'Delete'))),
  )))
}

function onRowClick(e) {
  const button = e.target.closest('button[data-act]')
  if (!button || !can('operator')) return
  const rule = view.rules.find((r) => r.id === Number(button.closest('tr').dataset.id))
  if (!rule) return
  const act = button.dataset.act
  if (act === 'edit') editMode(rule)
  else if (act === 'toggle') patch(rule, { enabled: !rule.enabled }, rule.enabled ? 'disabled' : 'enabled')
  else if (act === 'delete') remove(rule, button)
}

async function patch(rule, body, what) {
  disarm()
  try {
    await api(`/api/alerts/rules/${rule.id}`, { method: 'PATCH', body })
    say($('#alerts-message'), `Rule ${rule.name} ${what}.`)
  } catch (err) {
    if (!signedOut(err)) say($('#alerts-message'), `Not changed: ${err.message}`, 'error')
  }
  load()
}

async function remove(rule, button) {
  if (!confirmed(button, 'Confirm delete?')) return
  button.disabled = true
  try {
    await api(`/api/alerts/rules/${rule.id}`, { method: 'DELETE' })
    say($('#alerts-message'), `Rule ${rule.name} deleted.`)
    if (view.editing === rule.id) createMode()
  } catch (err) {
    button.disabled = false
    if (!signedOut(err)) say($('#alerts-message'), `Not deleted: ${err.message}`, 'error')
  }
  load()
}

// ---- the form ----

function showKindFields() {
  const spike = $('#alert-kind').value === 'spike'
  $('#alert-spike-fields').hidden = !spike
  fill($('#alert-count-label'), spike ? 'Least count' : 'N failures')
}

function createMode() {
  const f = form()
  view.editing = null
  f.dataset.mode = 'create'
  f.reset()
  clearFieldErrors(f)
  $('#alert-name').disabled = false
  $('#alert-secret-clear-wrap').hidden = true
  $('#alert-secret').placeholder = 'optional'
  showKindFields()
  fill($('#alert-form-title'), 'Add a rule')
  fill($('#alert-save'), 'Add rule')
  $('#alert-cancel').hidden = true
  for (const tr of $$('#alerts-body tr.editing')) tr.classList.remove('editing')
}

function editMode(rule) {
  createMode()
  view.editing = rule.id
  form().dataset.mode = 'edit'
  $('#alert-name').value = rule.name
  $('#alert-name').disabled = rule.builtIn
  $('#alert-enabled').checked = rule.enabled
  $('#alert-reason').value = rule.reason ?? ''
  $('#alert-profile').value = rule.profile ?? ''
  $('#alert-minBytes').value = String(rule.minBytesReceived)
  $('#alert-kind').value = rule.kind
  $('#alert-count').value = String(rule.count)
  $('#alert-windowSec').value = String(rule.windowSec)
  $('#alert-factor').value = String(rule.factor)
  $('#alert-baselineSec').value = String(rule.baselineSec)
  $('#alert-notifyUi').checked = rule.notifyUi
  $('#alert-webhookUrl').value = rule.webhookUrl ?? ''
  $('#alert-secret').placeholder = rule.hasSecret ? 'unchanged (set: type a new one)' : 'none'
  $('#alert-secret-clear-wrap').hidden = !rule.hasSecret
  $('#alert-comment').value = rule.comment ?? ''
  showKindFields()
  fill($('#alert-form-title'), `Edit rule ${rule.name}`)
  fill($('#alert-save'), 'Save rule')
  $('#alert-cancel').hidden = false
  say($('#alert-form-message'), '')
  for (const tr of $$('#alerts-body tr')) tr.classList.toggle('editing', Number(tr.dataset.id) === rule.id)
  $('#alert-card').scrollIntoView({ block: 'nearest' })
}

const numberOf = (el) => {
  const t = el.value.trim()
  if (t === '') return el.validity.badInput ? 'not a number' : undefined
  const n = Number(t)
  return Number.isFinite(n) ? n : t
}

/** The rule as the form says it: numbers as typed (the API checks them), empty optional fields as null. */
function readForm() {
  const text = (id) => $(id).value.trim()
  const out = {
    name: $('#alert-name').value,
    enabled: $('#alert-enabled').checked,
    reason: $('#alert-reason').value || null,
    profile: text('#alert-profile') || null,
    minBytesReceived: numberOf($('#alert-minBytes')) ?? 0,
    kind: $('#alert-kind').value,
    count: numberOf($('#alert-count')),
    windowSec: numberOf($('#alert-windowSec')),
    notifyUi: $('#alert-notifyUi').checked,
    webhookUrl: text('#alert-webhookUrl') || null,
    comment: text('#alert-comment') || null,
  }
  if (out.kind === 'spike') {
    out.factor = numberOf($('#alert-factor'))
    out.baselineSec = numberOf($('#alert-baselineSec'))
  }
  return out
}

async function save() {
  if (!can('operator')) return
  const f = form()
  clearFieldErrors(f)
  disarm()
  const editing = view.editing
  const input = readForm()
  let body = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined))
  if (editing !== null) {
    const rule = view.rules.find((r) => r.id === editing)
    body = {}
    for (const key of FIELDS) if (input[key] !== undefined && input[key] !== rule?.[key]) body[key] = input[key]
    if (rule?.builtIn) delete body.name
  }
  const secret = $('#alert-secret').value
  if (secret !== '') body.secret = secret
  else if (editing !== null && $('#alert-secret-clear').checked) body.secret = null
  if (editing !== null && Object.keys(body).length === 0) {
    say($('#alert-form-message'), 'Nothing to save: the rule is as the form shows it.')
    return
  }
  const button = $('#alert-save')
  button.disabled = true
  say($('#alert-form-message'), 'Saving…', 'pending')
  try {
    const saved = editing === null
      ? await api('/api/alerts/rules', { method: 'POST', body })
      : await api(`/api/alerts/rules/${editing}`, { method: 'PATCH', body })
    createMode()
    say($('#alert-form-message'), editing === null ? `Rule ${saved.name} added: counted from now on.` : `Rule ${saved.name} saved.`)
    await load()
  } catch (err) {
    if (!(err instanceof ApiError)) {
      say($('#alert-form-message'), `Not saved: ${err.message}`, 'error')
    } else if (err.status === 400 || err.status === 409) {
      const { marked, loose } = showFieldErrors(f, err.body)
      say($('#alert-form-message'), notSavedText(marked, loose, err.message), 'error')
    } else if (err.status !== 401) {
      say($('#alert-form-message'), `Not saved: ${err.message} (HTTP ${err.status}).`, 'error')
    }
  } finally {
    $('#alert-secret').value = ''
    button.disabled = false
  }
}

// ---- the history ----

async function loadHistory(reset) {
  const params = { limit: HISTORY_PAGE }
  if (!reset && view.historyCursor !== null) params.before = view.historyCursor
  try {
    const page = await api(`/api/alerts/history${query(params)}`)
    const rows = page.items.map((e) => h('tr', { dataset: { id: e.id, state: e.state } },
      h('td', { class: 'nowrap' }, formatTime(e.at)),
      h('td', null, h('code', null, e.ruleName)),
      h('td', null, h('span', { class: `badge alert-state ${e.state}` }, e.state)),
      h('td', { class: 'num' }, formatNumber(e.count)),
      h('td', { class: 'detail' }, e.detail),
      h('td', { class: 'nowrap' }, failuresLink(e.failures, e.failures.reason ? `${reasonInfo(e.failures.reason).label} failures` : 'failures')),
    ))
    if (reset) fill($('#alert-history-body'), rows)
    else $('#alert-history-body').append(...rows)
    view.historyCursor = page.nextCursor
    $('#alert-history-more').hidden = page.nextCursor === null
    $('#alert-history-empty').hidden = $('#alert-history-body').children.length > 0
  } catch (err) {
    if (!signedOut(err)) say($('#alerts-message'), `Could not load the history: ${err.message}`, 'error')
  }
}
