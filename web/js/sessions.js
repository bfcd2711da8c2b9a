// The Sessions view: the MQTT sessions the broker holds, online and offline (GET /api/sessions, filtered by state
// and client id prefix, paged), one opened with its subscriptions and connection (GET /api/sessions/*), one ended
// (DELETE /api/sessions/*: its client is disconnected, what it held dropped). Client ids are client-controlled text.
import { api, ApiError, query, signedOut } from './api.js'
import { h, $, fill, formatAddress, formatAgo, formatBytes, formatDuration, formatNumber, formatProtocol, formatTime } from './dom.js'
import { say, confirmed } from './forms.js'
import { app, can } from './state.js'

const PAGE = 100
/** Session Expiry Interval meaning "never expires" */
const NEVER_EXPIRES = 0xffffffff

const view = {
  items: [],
  next: null,
  total: null,
  /** the filters the list shows */
  filters: { state: 'all', clientId: '' },
  loading: null,
}

const sessionPath = (clientId) => `/api/sessions/${encodeURIComponent(clientId)}`
const quote = (text) => `“${text}”`

export function initSessions() {
  $('#sessions-filters').addEventListener('submit', (e) => {
    e.preventDefault()
    view.filters = { state: $('#sessions-state').value, clientId: $('#sessions-client').value }
    load(true)
  })
  $('#sessions-refresh').addEventListener('click', () => load(true))
  $('#sessions-more').addEventListener('click', () => load(false))
  $('#sessions-body').addEventListener('click', onRowClick)
  app.addEventListener('tab', (e) => {
    if (e.detail === 'sessions') load(true)
  })
}

/** Called after sign-in. */
export function startSessions() {
  load(true)
}

/** Called at sign-out (or a 401). */
export function stopSessions() {
  view.items = []
  view.next = null
  fill($('#sessions-body'))
  say($('#sessions-message'), '')
  const dialog = $('#session-detail')
  if (dialog.open) dialog.close()
}

// ---- the list ----

async function load(reset) {
  const params = { ...view.filters, limit: PAGE }
  if (!reset && view.next !== null) params.after = view.next
  const token = {}
  view.loading = token
  const more = $('#sessions-more')
  more.disabled = true
  try {
    const page = await api(`/api/sessions${query(params)}`)
    if (view.loading !== token) return
    view.items = reset ? page.items : [...view.items, ...page.items]
    view.next = page.next
    view.total = page.total
    render()
  } catch (err) {
    if (view.loading === token && !signedOut(err)) {
      say($('#sessions-message'), `Could not load the sessions: ${err.message}`, 'error')
    }
  } finally {
    more.disabled = false
  }
}

function render() {
  const items = view.items
  $('#sessions-empty').hidden = items.length > 0
  $('#sessions-more').hidden = view.next === null
  const t = view.total
  const totals = t ? `${formatNumber(t.online)} online · ${formatNumber(t.offline)} offline` : ''
  fill($('#sessions-count'), view.next !== null ? `${totals} · first ${formatNumber(items.length)} shown` : totals)
  fill($('#sessions-body'), items.map(row))
}

const stateBadge = (online) => h('span', { class: `badge ${online ? 'online' : 'offline'}` }, online ? 'online' : 'offline')

function expiryText(s) {
  if (s.online) return s.expiryIntervalSec === 0 ? 'ends with its connection' : `${formatDuration(s.expiryIntervalSec * 1000)} after it leaves`
  if (s.expiresAt === null) return s.expiryIntervalSec === NEVER_EXPIRES ? 'never' : '—'
  return formatTime(s.expiresAt)
}

function row(s) {
  return h('tr', { dataset: { clientId: s.clientId, online: s.online } },
    h('td', { class: 'client-id' }, h('code', null, s.clientId)),
    h('td', null, stateBadge(s.online)),
    h('td', { class: 'num' }, formatNumber(s.subscriptions)),
    h('td', { class: 'num nowrap', dataset: { queued: s.queued }, title: `${formatNumber(s.queuedBytes)} payload bytes` },
      s.queued === 0 ? '0' : `${formatNumber(s.queued)} (${formatBytes(s.queuedBytes)})`),
    h('td', { class: 'num' }, formatNumber(s.inflight)),
    h('td', { class: 'nowrap', title: s.disconnectedAt ?? '' }, s.disconnectedAt === null ? h('span', { class: 'muted' }, '—') : formatAgo(s.disconnectedAt)),
    h('td', { class: 'nowrap', title: s.expiresAt ?? '' }, expiryText(s)),
    h('td', null, s.willPending ? h('span', { class: 'badge will', title: 'published after its delay unless the client comes back' }, 'pending') : h('span', { class: 'muted' }, '—')),
    h('td', { class: 'actions' }, h('div', { class: 'row-actions' },
      h('button', { type: 'button', class: 'ghost small-button', dataset: { act: 'view' } }, 'View'),
      h('button', { type: 'button', class: 'ghost small-button danger needs-operator', dataset: { act: 'delete' } }, s.online ? 'Disconnect and delete' : 'Delete'))),
  )
}

function onRowClick(e) {
  const button = e.target.closest('button[data-act]')
  if (!button) return
  const clientId = button.closest('tr').dataset.clientId
  if (button.dataset.act === 'view') openDetail(clientId)
  else if (button.dataset.act === 'delete' && can('operator')) remove(clientId, button)
}

async function remove(clientId, button) {
  if (!confirmed(button, 'Confirm delete?')) return
  button.disabled = true
  try {
    await api(sessionPath(clientId), { method: 'DELETE' })
    say($('#sessions-message'), `Ended the session of ${quote(clientId)}: its next CONNECT starts a new one.`)
  } catch (err) {
    button.disabled = false
    if (signedOut(err)) return
    if (!(err instanceof ApiError && err.status === 404)) {
      say($('#sessions-message'), `Not deleted: ${err.message}`, 'error')
      return
    }
    say($('#sessions-message'), `${quote(clientId)} has no session any more (it ended meanwhile). The list is reloaded.`, 'error')
  }
  load(true)
}

// ---- one session ----

async function openDetail(clientId) {
  const dialog = $('#session-detail')
  fill($('#session-detail-title'), 'Session')
  fill($('#session-detail-body'), h('p', { class: 'muted' }, 'Loading…'))
  if (!dialog.open) dialog.showModal()
  try {
    const s = await api(sessionPath(clientId))
    if (dialog.open) renderDetail(s)
  } catch (err) {
    if (signedOut(err)) return
    const text = err instanceof ApiError && err.status === 404
      ? `${quote(clientId)} has no session any more.`
      : `Could not load the session of ${quote(clientId)}: ${err.message}`
    fill($('#session-detail-body'), h('p', { class: 'form-error' }, text))
  }
}

function intervalText(sec) {
  if (sec === 0) return '0 (ends with its connection)'
  if (sec === NEVER_EXPIRES) return `${sec} (never expires)`
  return `${formatNumber(sec)} s (${formatDuration(sec * 1000)})`
}

function fieldList(entries) {
  const list = h('dl', { class: 'fields-list' })
  for (const [key, value] of entries) {
    list.append(h('dt', null, key), h('dd', { dataset: { field: key }, class: value === null ? 'muted' : null }, value ?? '—'))
  }
  return list
}

const yesNo = (b) => (b ? 'yes' : 'no')

function renderDetail(s) {
  fill($('#session-detail-title'), h('span', { class: 'detail-title-text' }, 'Session of ', h('code', null, s.clientId)), ' ', stateBadge(s.online))
  const c = s.connection
  fill(
    $('#session-detail-body'),
    fieldList([
      ['clientId', s.clientId],
      ['expiryIntervalSec', intervalText(s.expiryIntervalSec)],
      ['disconnectedAt', s.disconnectedAt === null ? null : `${s.disconnectedAt}  (${formatTime(s.disconnectedAt)} local)`],
      ['expiresAt', s.expiresAt === null ? null : `${s.expiresAt}  (${formatTime(s.expiresAt)} local)`],
      ['queued', `${formatNumber(s.queued)} message${s.queued === 1 ? '' : 's'}, ${formatNumber(s.queuedBytes)} payload bytes`],
      ['inflight', formatNumber(s.inflight)],
      ['willPending', yesNo(s.willPending)],
    ]),
    h('h3', null, 'Connection'),
    c === null
      ? h('p', { class: 'muted' }, 'Offline: no connection holds this session.')
      : fieldList([
        ['remoteAddress', formatAddress(c.remoteAddress, c.remotePort)],
        ['protocol', `${formatProtocol(c.protocolVersion)} · ${c.transport}`],
        ['username', c.username],
        ['keepaliveSec', c.keepaliveSec === 0 ? '0 (no keepalive)' : `${c.keepaliveSec} s`],
        ['connectedAt', `${c.connectedAt}  (${formatAgo(c.connectedAt)})`],
        ['lastPacketAt', `${c.lastPacketAt}  (${formatAgo(c.lastPacketAt)})`],
      ]),
    h('h3', null, `Subscriptions (${formatNumber(s.subscriptionList.length)})`),
    s.subscriptionList.length === 0
      ? h('p', { class: 'muted' }, 'None.')
      : h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'session-subscriptions' },
        h('thead', null, h('tr', null,
          h('th', null, 'Filter'), h('th', { class: 'num' }, 'QoS'), h('th', null, 'No Local'), h('th', null, 'Retain as published'),
          h('th', { class: 'num' }, 'Retain handling'), h('th', null, 'Subscription ids'))),
        h('tbody', null, s.subscriptionList.map((sub) => h('tr', { dataset: { filter: sub.filter } },
          h('td', { class: 'topic-cell' }, h('code', null, sub.filter)),
          h('td', { class: 'num' }, String(sub.qos)),
          h('td', null, yesNo(sub.noLocal)),
          h('td', null, yesNo(sub.retainAsPublished)),
          h('td', { class: 'num' }, String(sub.retainHandling)),
          h('td', null, sub.subscriptionIds.length === 0 ? '—' : sub.subscriptionIds.join(', '))))))),
  )
}
