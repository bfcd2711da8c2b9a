// The Audit view (operators and admins): who changed what through the API, newest first (GET /api/audit), filtered by
// who, what, target and time, paged with "Load more". Each change shows what it changed, before and after; a settings
// change links to its version in the Settings history. Token names, usernames, topics and client ids come from people
// and clients: they are only ever text nodes.
import { api, query, signedOut } from './api.js'
import { h, $, fill, formatTime, formatValue } from './dom.js'
import { say } from './forms.js'
import { app } from './state.js'

const PAGE = 50

const view = { items: [], nextCursor: null, filters: {}, loading: null }

export function initAudit() {
  $('#audit-filters').addEventListener('submit', (e) => {
    e.preventDefault()
    view.filters = readFilters()
    load(true)
  })
  $('#audit-filters').addEventListener('reset', () => {
    view.filters = {}
    // after the form has emptied itself
    setTimeout(() => load(true))
  })
  $('#audit-refresh').addEventListener('click', () => load(true))
  $('#audit-more').addEventListener('click', () => load(false))
  app.addEventListener('tab', (e) => {
    if (e.detail === 'audit') load(true)
  })
}

/** Called after sign-in, for operators and admins only. */
export function startAudit() {
  load(true)
}

export function stopAudit() {
  view.items = []
  view.nextCursor = null
  view.loading = null
  fill($('#audit-body'))
  fill($('#audit-count'))
  say($('#audit-message'), '')
}

function readFilters() {
  const f = {}
  const text = (id) => $(id).value.trim()
  if (text('#audit-actor')) f.actor = text('#audit-actor')
  if ($('#audit-action').value) f.action = $('#audit-action').value
  if ($('#audit-target').value !== '') f.target = $('#audit-target').value
  for (const key of ['since', 'until']) {
    const v = $(`#audit-${key}`).value
    if (!v) continue
    const d = new Date(v) // datetime-local: the browser's local time
    if (!Number.isNaN(d.getTime())) f[key] = d.toISOString()
  }
  return f
}

async function load(reset) {
  const params = { ...view.filters, limit: PAGE }
  if (!reset && view.nextCursor !== null) params.before = view.nextCursor
  const token = {}
  view.loading = token
  const more = $('#audit-more')
  more.disabled = true
  try {
    const page = await api(`/api/audit${query(params)}`)
    if (view.loading !== token) return
    view.items = reset ? page.items : [...view.items, ...page.items]
    view.nextCursor = page.nextCursor
    render()
    say($('#audit-message'), '')
  } catch (err) {
    if (view.loading === token && !signedOut(err)) {
      say($('#audit-message'), `Could not load the audit trail: ${err.message}`, 'error')
    }
  } finally {
    more.disabled = false
  }
}

function render() {
  const n = view.items.length
  $('#audit-empty').hidden = n > 0
  $('#audit-more').hidden = view.nextCursor === null
  fill($('#audit-count'), view.nextCursor !== null ? `newest ${n} shown, more below` : `${n} change${n === 1 ? '' : 's'}`)
  fill($('#audit-body'), view.items.map(row))
}

function row(e) {
  return h('tr', { dataset: { id: e.id, action: e.action } },
    h('td', { class: 'nowrap', title: e.at }, formatTime(e.at)),
    h('td', { class: 'audit-actor' }, e.actor),
    h('td', { class: 'audit-action' }, h('code', null, e.action)),
    h('td', { class: 'audit-target' }, e.target === null ? h('span', { class: 'muted' }, '—') : h('code', null, e.target)),
    h('td', { class: 'audit-change' }, changeNodes(e)),
    h('td', { class: 'nowrap' }, e.remoteAddress ?? '—'),
  )
}

// ---- what changed ----

/** Keys whose values are bookkeeping, left out of what a change shows. */
const QUIET = new Set(['createdAt', 'updatedAt'])

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

function changeNodes(e) {
  if (e.action.startsWith('settings.')) return settingsChange(e)
  const { before, after } = e
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])]
      .filter((k) => k !== 'passwordChanged' && !QUIET.has(k) && !same(before[k], after[k]))
    const items = keys.map((k) => h('li', null, h('code', null, k), ' ', h('del', null, formatValue(before[k])), ' → ', h('ins', null, formatValue(after[k]))))
    if (after.passwordChanged === true) items.push(h('li', null, 'password changed'))
    return items.length === 0 ? h('span', { class: 'muted' }, 'no field changed') : h('ul', null, items)
  }
  if (isObject(after)) return [h('span', { class: 'muted' }, before === null ? 'made: ' : 'now: '), summary(after)]
  if (isObject(before)) return [h('span', { class: 'muted' }, 'was: '), summary(before)]
  return h('span', { class: 'muted' }, '—')
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

/** `key value · key value` of a thing, without its bookkeeping. */
function summary(thing) {
  const parts = []
  for (const [k, v] of Object.entries(thing)) {
    if (QUIET.has(k)) continue
    if (parts.length > 0) parts.push(' · ')
    parts.push(h('code', null, k), ' ', formatValue(v))
  }
  return h('span', null, parts)
}

/** A settings change: the version it made (a link into the history) and each key from → to. */
function settingsChange(e) {
  const before = e.before ?? {}
  const after = e.after ?? {}
  const keys = Object.keys(after.values ?? {})
  return [
    h('div', null,
      before.version !== undefined ? `v${before.version} → ` : '',
      h('a', { href: '#settings', dataset: { historyVersion: after.version }, title: 'show this version in the Settings history' }, `version ${after.version}`),
      after.rolledBackTo !== undefined ? ` (the values of v${after.rolledBackTo})` : '',
      after.comment ? [' · ', h('q', null, after.comment)] : null),
    keys.length === 0
      ? h('span', { class: 'muted' }, 'no value changed')
      : h('ul', null, keys.map((k) => h('li', null, h('code', null, k), ' ',
        h('del', null, formatValue(before.values?.[k])), ' → ', h('ins', null, formatValue(after.values[k]))))),
  ]
}
