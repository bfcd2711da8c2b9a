// The Failures view: charts, filters, a table fed by cursor paging and by the live stream, and the detail dialog.
import { api, query, openEventStream } from './api.js'
import { h, $, fill, formatAddress, formatTime, formatDuration, formatNumber, formatProtocol, formatValue } from './dom.js'
import { REASONS, reasonInfo, PHASES } from './reasons.js'
import { hexDump, hexToBytes, describeFirstByte } from './hexdump.js'
import { drawFailuresChart, drawLatencyChart, compactBuckets } from './charts.js'
import { app } from './state.js'

const PAGE = 50
/** Rows kept in the table; the oldest live rows are dropped beyond it (load more brings them back). */
const MAX_ROWS = 1000

const view = {
  filters: {},
  nextCursor: null,
  shown: new Map(), // id -> record
  stream: null,
  statsTimer: null,
  statsSoon: null,
  loading: null,
  /** records from the stream while a first page is loading (null when none is) */
  liveDuringLoad: null,
}

export function initFailures() {
  const select = $('#filter-reason')
  for (const r of REASONS) select.append(h('option', { value: r.id }, r.label))

  $('#failure-filters').addEventListener('submit', (e) => {
    e.preventDefault()
    view.filters = readFilters()
    loadPage(true)
  })
  $('#failure-filters').addEventListener('reset', () => {
    view.filters = {}
    setTimeout(() => loadPage(true)) // after the form has cleared its inputs
  })
  $('#failures-more').addEventListener('click', () => loadPage(false))
  $('#failures-body').addEventListener('click', (e) => {
    const row = e.target.closest('tr[data-id]')
    if (row) openDetail(Number(row.dataset.id))
  })
  $('#failures-body').addEventListener('keydown', (e) => {
    const row = e.target.closest('tr[data-id]')
    if (row && (e.key === 'Enter' || e.key === ' ')) {
      e.preventDefault()
      openDetail(Number(row.dataset.id))
    }
  })
  $('#stats-window').addEventListener('change', () => refreshStats())
  app.addEventListener('settings', () => drawLatency())
  // back on this tab: bring the charts up to date at once
  app.addEventListener('tab', (e) => {
    if (e.detail === 'failures' && view.stream) refreshStats()
  })
}

/** Called after sign-in. */
export function startFailures() {
  loadPage(true)
  refreshStats()
  view.statsTimer = setInterval(refreshStats, 10_000)
  view.stream = openEventStream('/api/failures/stream', {
    onEvent: onStreamEvent,
    onState: (state, detail) => app.setStreamState(state, detail),
  })
}

export function stopFailures() {
  view.stream?.stop()
  view.stream = null
  clearInterval(view.statsTimer)
  clearTimeout(view.statsSoon)
}

// ---- the table ----

function readFilters() {
  const form = $('#failure-filters')
  const data = new FormData(form)
  const f = {}
  for (const key of ['reason', 'clientId', 'remoteAddress', 'transport', 'profile', 'node']) {
    const v = String(data.get(key) ?? '').trim()
    if (v) f[key] = v
  }
  for (const key of ['since', 'until']) {
    const v = String(data.get(key) ?? '')
    if (v) {
      const d = new Date(v) // datetime-local: the browser's local time
      if (!Number.isNaN(d.getTime())) f[key] = d.toISOString()
    }
  }
  return f
}

function matchesFilters(r, f) {
  if (f.reason && r.reason !== f.reason) return false
  if (f.clientId && !(r.clientId ?? '').startsWith(f.clientId)) return false
  if (f.remoteAddress && r.remoteAddress !== f.remoteAddress) return false
  if (f.transport && r.transport !== f.transport) return false
  if (f.profile && (r.profile ?? null) !== (f.profile === '-' ? null : f.profile)) return false
  if (f.node && r.node !== f.node) return false
  const t = new Date(r.occurredAt).getTime()
  if (f.since && t < new Date(f.since).getTime()) return false
  if (f.until && t > new Date(f.until).getTime()) return false
  return true
}

async function loadPage(reset) {
  const filters = view.filters
  const params = { ...filters, limit: PAGE }
  if (!reset && view.nextCursor !== null) params.before = view.nextCursor
  const more = $('#failures-more')
  more.disabled = true
  const token = {}
  view.loading = token
  // live records that arrive while the first page loads must survive its reset of the table
  if (reset) view.liveDuringLoad = []
  try {
    const page = await api(`/api/failures${query(params)}`)
    if (view.loading !== token) return // a newer request superseded this one
    if (reset) {
      view.shown.clear()
      fill($('#failures-body'))
    }
    for (const r of page.items ?? []) addRow(r, 'end')
    if (reset) {
      for (const r of view.liveDuringLoad ?? []) if (matchesFilters(r, filters)) addRow(r, 'start', true)
      view.liveDuringLoad = null
    }
    view.nextCursor = page.nextCursor ?? null
    more.hidden = view.nextCursor === null || view.nextCursor === undefined
    fill($('#failures-error'))
  } catch (err) {
    if (view.loading === token) {
      view.liveDuringLoad = null
      fill($('#failures-error'), `Could not load failures: ${err.message}`)
    }
  } finally {
    more.disabled = false
    updateCount()
  }
}

function onStreamEvent(ev) {
  if (ev.event === 'folded') return onFolded(ev)
  if (ev.event === 'dropped') {
    // this browser read too slowly and the server skipped some: the newest page has them
    loadPage(true)
    return
  }
  if (ev.event !== 'failure' && ev.event !== 'message') return
  let record
  try {
    record = JSON.parse(ev.data)
  } catch {
    return
  }
  if (!record || typeof record.id !== 'number') return
  app.dispatchEvent(new CustomEvent('failure', { detail: record }))
  view.liveDuringLoad?.push(record)
  if (matchesFilters(record, view.filters)) {
    addRow(record, 'start', true)
    trimRows()
    updateCount()
  }
  // the chart catches up a moment later (many failures at once cost one request)
  if (!view.statsSoon) {
    view.statsSoon = setTimeout(() => {
      view.statsSoon = null
      refreshStats()
    }, 2000)
  }
}

/** More failures were folded into a row already shown: update its counter. */
function onFolded(ev) {
  let update
  try {
    update = JSON.parse(ev.data)
  } catch {
    return
  }
  const record = view.shown.get(update?.id)
  if (!record) return
  record.foldedCount = update.foldedCount
  const row = $(`#failures-body tr[data-id="${Number(update.id)}"]`)
  if (row) fill(row.cells[1], reasonBadge(record.reason), foldedBadge(record.foldedCount))
}

function foldedBadge(n) {
  return n > 0 ? h('span', { class: 'folded', title: 'similar failures from the same source folded into this record' }, `+${formatNumber(n)}`) : null
}

function trimRows() {
  const body = $('#failures-body')
  while (body.rows.length > MAX_ROWS) {
    const last = body.rows[body.rows.length - 1]
    view.shown.delete(Number(last.dataset.id))
    last.remove()
    // the next page starts after the oldest row still shown
    const oldest = body.rows[body.rows.length - 1]
    if (oldest) view.nextCursor = Number(oldest.dataset.id)
    $('#failures-more').hidden = false
  }
}

function updateCount() {
  const n = view.shown.size
  $('#failures-empty').hidden = n > 0
  const filtered = Object.keys(view.filters).length > 0
  fill($('#failures-count'), `${formatNumber(n)} shown${filtered ? ' (filtered)' : ''}${view.nextCursor !== null && view.nextCursor !== undefined ? ', more below' : ''}`)
}

function reasonBadge(reason) {
  const info = reasonInfo(reason)
  return h('span', { class: 'badge', style: { '--badge': info.color }, dataset: { reason } }, info.label)
}

function addRow(r, where, fresh = false) {
  if (view.shown.has(r.id)) {
    view.shown.set(r.id, r)
    return
  }
  view.shown.set(r.id, r)
  const row = h(
    'tr',
    { tabindex: 0, class: fresh ? 'fresh' : null, dataset: { id: r.id, reason: r.reason } },
    h('td', { class: 'nowrap', title: r.occurredAt }, formatTime(r.occurredAt)),
    h('td', null, reasonBadge(r.reason), foldedBadge(r.foldedCount)),
    h('td', { class: 'nowrap muted' }, PHASES[r.phase] ?? r.phase),
    h('td', { class: 'client-id' }, r.clientId === null ? h('span', { class: 'muted' }, '—') : h('code', null, r.clientId)),
    h('td', { class: 'nowrap' }, formatAddress(r.remoteAddress, r.remotePort)),
    h('td', { class: 'num nowrap' }, formatDuration(r.durationMs)),
    h('td', { class: 'num' }, formatNumber(r.bytesReceived)),
    h('td', { class: 'detail-cell', title: r.detail }, r.detail),
    // the node it happened on (cluster mode: every node shows every node's failures), as text
    h('td', { class: 'nowrap muted node-cell' }, r.node ?? '—'),
  )
  const body = $('#failures-body')
  if (where === 'start') body.prepend(row)
  else body.append(row)
}

// ---- the detail dialog ----

const FIELD_ORDER = [
  'id', 'occurredAt', 'node', 'transport', 'profile', 'reason', 'phase', 'clientId', 'username', 'protocolVersion', 'keepaliveSec',
  'remoteAddress', 'remotePort', 'userAgent', 'origin', 'subprotocol', 'durationMs', 'bytesReceived',
  'packetsReceived', 'firstBytesHex', 'detail', 'hint', 'brokerLagMs', 'settingsVersion', 'foldedCount',
]

const FIELD_FORMAT = {
  occurredAt: (v) => `${v}  (${formatTime(v)} local)`,
  protocolVersion: (v) => (v === null ? '—' : `${v} (${formatProtocol(v)})`),
  keepaliveSec: (v) => (v === null ? '—' : v === 0 ? '0 (no keepalive)' : `${v} s`),
  durationMs: (v) => `${v} ms (${formatDuration(v)})`,
  brokerLagMs: (v) => (v === null ? '—' : v === 0 ? '0 (the broker kept up)' : `${v} ms (the broker's own event loop stalled this long in the seconds before)`),
}

async function openDetail(id) {
  let record = view.shown.get(id)
  const dialog = $('#failure-detail')
  if (record) renderDetail(record)
  if (!dialog.open) dialog.showModal()
  try {
    record = await api(`/api/failures/${encodeURIComponent(id)}`)
    if (dialog.open) renderDetail(record)
  } catch (err) {
    if (!record) fill($('#detail-body'), h('p', { class: 'form-error' }, `Could not load failure ${id}: ${err.message}`))
  }
}

/** A record's profile: its name, or what null means. */
const profileText = (v) => (v === null || v === undefined ? 'none (the global values)' : v)

function renderDetail(r) {
  fill($('#detail-title'), reasonBadge(r.reason), ` failure #${r.id}`)
  const fields = h('dl', { class: 'fields-list' })
  const keys = [...FIELD_ORDER.filter((k) => k in r), ...Object.keys(r).filter((k) => !FIELD_ORDER.includes(k))]
  for (const key of keys) {
    const value = r[key]
    const text = key === 'profile' ? profileText(value)
      : FIELD_FORMAT[key] && value !== null && value !== undefined ? FIELD_FORMAT[key](value) : formatValue(value)
    fields.append(h('dt', null, key), h('dd', { dataset: { field: key }, class: value === null ? 'muted' : null }, text))
  }
  const bytes = hexToBytes(r.firstBytesHex)
  fill(
    $('#detail-body'),
    h('p', { class: 'detail-what' }, r.detail),
    h('div', { class: 'hint' }, h('strong', null, 'What to do: '), r.hint),
    h('h3', null, 'First bytes'),
    h('p', { class: 'muted small' },
      `${bytes.length} of ${formatNumber(r.bytesReceived)} byte${r.bytesReceived === 1 ? '' : 's'} received are kept · ${describeFirstByte(r.firstBytesHex)}`),
    bytes.length > 0 ? h('pre', { class: 'hexdump', id: 'detail-hexdump' }, hexDump(r.firstBytesHex)) : h('p', { class: 'muted' }, 'The client sent no bytes.'),
    h('h3', null, 'Every field'),
    fields,
  )
}

// ---- the charts ----

/**
 * GET /api/failures/stats in the shapes the charts draw: failure buckets with epoch-ms starts, and the latency
 * histogram as [{ lo, hi, count }] (hi = Infinity above the last edge).
 */
function normalizeStats(raw) {
  const buckets = raw.buckets.map((b) => ({ start: new Date(b.start).getTime(), counts: b.counts }))
  let prev = 0
  const latency = raw.latency.buckets.map((b) => {
    const hi = b.leMs ?? Infinity
    const out = { lo: prev, hi, count: b.count }
    prev = hi
    return out
  })
  return { bucketMs: raw.bucketSec * 1000, buckets, latency, latencySummary: raw.latency }
}

let lastStats = null

async function refreshStats() {
  const windowMs = Number($('#stats-window').value)
  app.statsWindowMs = windowMs
  const until = Date.now()
  const since = until - windowMs
  try {
    const raw = await api(`/api/failures/stats${query({ since: new Date(since).toISOString(), until: new Date(until).toISOString() })}`)
    lastStats = normalizeStats(raw)
    app.latency = lastStats.latency
    app.whatIf = raw.whatIf
    app.dispatchEvent(new CustomEvent('latency'))
    drawFailuresChart($('#chart-failures'), lastStats, $('#chart-legend'))
    drawLatency()
  } catch (err) {
    fill($('#chart-failures'), h('p', { class: 'form-error' }, `Could not load statistics: ${err.message}`))
  }
}

function drawLatency() {
  if (!lastStats) return
  const timeout = app.settings?.values?.connectTimeoutMs
  const lines = timeout ? [{ ms: timeout, label: `connectTimeoutMs ${formatNumber(timeout)} ms`, kind: 'current' }] : []
  drawLatencyChart($('#chart-latency'), compactBuckets(lastStats.latency, lines.map((l) => l.ms)), lines)
  const sum = lastStats.latencySummary
  const total = lastStats.latency.reduce((a, b) => a + b.count, 0)
  const parts = [`${formatNumber(total)} connection${total === 1 ? '' : 's'}`]
  if (total > 0 && sum.p50Ms !== undefined && sum.p50Ms !== null) parts.push(`p50 ≤ ${formatDuration(sum.p50Ms)}`)
  if (total > 0 && sum.p99Ms !== undefined && sum.p99Ms !== null) parts.push(`p99 ≤ ${formatDuration(sum.p99Ms)}`)
  if (total > 0 && sum.maxMs !== undefined && sum.maxMs !== null) parts.push(`max ${formatDuration(sum.maxMs)}`)
  fill($('#latency-summary'), parts.join(' · '))
}
