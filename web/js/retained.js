// The Retained view: retained messages by topic prefix (GET /api/retained, paged), one shown whole with its payload
// as text or as a hex dump (GET /api/retained/*), one deleted (DELETE /api/retained/*) or every one under a prefix
// (DELETE /api/retained?prefix=). Topics and payloads come from MQTT clients: they are only ever text nodes.
import { api, ApiError, query, signedOut } from './api.js'
import { h, $, fill, formatBytes, formatNumber, formatTime } from './dom.js'
import { say, confirmed, disarm } from './forms.js'
import { hexDump } from './hexdump.js'
import { app, can } from './state.js'

const PAGE = 100
/** A hex dump longer than this many bytes is cut (the whole payload is still there as text, when it is text). */
const HEX_MAX_BYTES = 16 * 1024

const view = {
  items: [],
  next: null,
  /** the prefix the list shows */
  prefix: '',
  stored: null,
  loading: null,
  /** the message in the dialog, and how its payload is shown: 'text' | 'hex' */
  shown: null,
  mode: 'text',
}

const retainedPath = (topic) => `/api/retained/${encodeURIComponent(topic)}`
const quote = (text) => `“${text}”`

export function initRetained() {
  $('#retained-filters').addEventListener('submit', (e) => {
    e.preventDefault()
    disarm()
    view.prefix = $('#retained-prefix').value
    load(true)
  })
  $('#retained-prefix').addEventListener('input', () => {
    disarm()
    const empty = $('#retained-prefix').value === ''
    $('#retained-delete-prefix').disabled = empty
    $('#retained-delete-prefix').title = empty ? 'type a prefix first' : ''
  })
  $('#retained-delete-prefix').addEventListener('click', (e) => deletePrefix(e.currentTarget))
  $('#retained-refresh').addEventListener('click', () => load(true))
  $('#retained-more').addEventListener('click', () => load(false))
  $('#retained-body').addEventListener('click', onRowClick)
  $('#retained-detail-body').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-mode]')
    if (!button || !view.shown) return
    view.mode = button.dataset.mode
    renderDetail(view.shown)
  })
  app.addEventListener('tab', (e) => {
    if (e.detail === 'retained') load(true)
  })
}

/** Called after sign-in. */
export function startRetained() {
  load(true)
}

/** Called at sign-out (or a 401). */
export function stopRetained() {
  view.items = []
  view.next = null
  view.shown = null
  fill($('#retained-body'))
  say($('#retained-message'), '')
  const dialog = $('#retained-detail')
  if (dialog.open) dialog.close()
}

// ---- the list ----

async function load(reset) {
  const params = { prefix: view.prefix, limit: PAGE }
  if (!reset && view.next !== null) params.after = view.next
  const token = {}
  view.loading = token
  const more = $('#retained-more')
  more.disabled = true
  try {
    const page = await api(`/api/retained${query(params)}`)
    if (view.loading !== token) return
    view.items = reset ? page.items : [...view.items, ...page.items]
    view.next = page.next
    view.stored = page.stored
    render()
  } catch (err) {
    if (view.loading === token && !signedOut(err)) {
      say($('#retained-message'), `Could not load the retained messages: ${err.message}`, 'error')
    }
  } finally {
    more.disabled = false
  }
}

function render() {
  const items = view.items
  $('#retained-empty').hidden = items.length > 0
  $('#retained-more').hidden = view.next === null
  const n = items.length
  const shown = view.next !== null ? `first ${formatNumber(n)} shown, more below` : `${formatNumber(n)} shown`
  const stored = view.stored ? ` · ${formatNumber(view.stored.messages)} stored (${formatBytes(view.stored.bytes)})` : ''
  fill($('#retained-count'), `${shown}${stored}`)
  fill($('#retained-body'), items.map(row))
}

/** The list's payload cell: the text preview (cut when the payload is longer), or what kind of bytes it is. */
function previewCell(m) {
  if (m.payloadPreview === null) return h('td', { class: 'preview muted' }, `binary, ${formatBytes(m.payloadBytes)}`)
  const cut = new TextEncoder().encode(m.payloadPreview).length < m.payloadBytes
  return h('td', { class: 'preview', title: m.payloadPreview }, cut ? `${m.payloadPreview}…` : m.payloadPreview)
}

function row(m) {
  return h('tr', { dataset: { topic: m.topic } },
    h('td', { class: 'topic-cell' }, h('code', null, m.topic)),
    h('td', { class: 'num' }, String(m.qos)),
    h('td', { class: 'num nowrap', title: `${formatNumber(m.payloadBytes)} bytes` }, formatBytes(m.payloadBytes)),
    previewCell(m),
    h('td', { class: 'nowrap', title: m.expiresAt ?? '' }, m.expiresAt === null ? h('span', { class: 'muted' }, 'never') : formatTime(m.expiresAt)),
    h('td', { class: 'actions' }, h('div', { class: 'row-actions' },
      h('button', { type: 'button', class: 'ghost small-button', dataset: { act: 'view' } }, 'View'),
      h('button', { type: 'button', class: 'ghost small-button danger needs-operator', dataset: { act: 'delete' } }, 'Delete'))),
  )
}

function onRowClick(e) {
  const button = e.target.closest('button[data-act]')
  if (!button) return
  const topic = button.closest('tr').dataset.topic
  if (button.dataset.act === 'view') openDetail(topic)
  else if (button.dataset.act === 'delete' && can('operator')) remove(topic, button)
}

async function remove(topic, button) {
  if (!confirmed(button, 'Confirm delete?')) return
  button.disabled = true
  try {
    await api(retainedPath(topic), { method: 'DELETE' })
    say($('#retained-message'), `Deleted the retained message of ${quote(topic)}: new subscribers no longer get it.`)
  } catch (err) {
    button.disabled = false
    if (signedOut(err)) return
    if (!(err instanceof ApiError && err.status === 404)) {
      say($('#retained-message'), `Not deleted: ${err.message}`, 'error')
      return
    }
    say($('#retained-message'), `${quote(topic)} has no retained message any more (cleared meanwhile). The list is reloaded.`, 'error')
  }
  view.items = view.items.filter((m) => m.topic !== topic)
  load(true)
}

async function deletePrefix(button) {
  const prefix = $('#retained-prefix').value
  if (prefix === '' || !can('operator')) return
  if (!confirmed(button, `Confirm: delete every topic starting with ${quote(prefix)}?`)) {
    // show what would go before the second click
    if (view.prefix !== prefix) {
      view.prefix = prefix
      load(true)
    }
    return
  }
  button.disabled = true
  try {
    const { deleted } = await api(`/api/retained${query({ prefix })}`, { method: 'DELETE' })
    say($('#retained-message'), `Deleted ${formatNumber(deleted)} retained message${deleted === 1 ? '' : 's'} whose topic starts with ${quote(prefix)}.`)
    view.prefix = prefix
    load(true)
  } catch (err) {
    if (!signedOut(err)) say($('#retained-message'), `Not deleted: ${err.message}`, 'error')
  } finally {
    button.disabled = $('#retained-prefix').value === ''
  }
}

// ---- one message ----

async function openDetail(topic) {
  const dialog = $('#retained-detail')
  fill($('#retained-detail-title'), 'Retained message')
  fill($('#retained-detail-body'), h('p', { class: 'muted' }, 'Loading…'))
  view.shown = null
  if (!dialog.open) dialog.showModal()
  try {
    const m = await api(retainedPath(topic))
    view.shown = m
    view.mode = m.payloadPreview === null ? 'hex' : 'text'
    if (dialog.open) renderDetail(m)
  } catch (err) {
    if (signedOut(err)) return
    const text = err instanceof ApiError && err.status === 404
      ? `${quote(topic)} has no retained message any more.`
      : `Could not load ${quote(topic)}: ${err.message}`
    fill($('#retained-detail-body'), h('p', { class: 'form-error' }, text))
  }
}

function bytesOf(base64) {
  const binary = atob(base64)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/** The payload as text when it is UTF-8 (controls and all, shown as they are), else null. */
function textOf(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return null
  }
}

function renderDetail(m) {
  const bytes = bytesOf(m.payloadBase64)
  const text = textOf(bytes)
  const mode = text === null ? 'hex' : view.mode
  fill($('#retained-detail-title'), h('span', { class: 'detail-title-text' }, 'Retained on ', h('code', null, m.topic)))
  const fields = h('dl', { class: 'fields-list' })
  const add = (key, value) => fields.append(h('dt', null, key), h('dd', { dataset: { field: key }, class: value === null ? 'muted' : null }, value ?? '—'))
  add('topic', m.topic)
  add('qos', String(m.qos))
  add('size', `${formatNumber(m.payloadBytes)} bytes`)
  add('expiresAt', m.expiresAt === null ? 'never' : `${m.expiresAt}  (${formatTime(m.expiresAt)} local)`)
  const p = m.properties
  add('payloadFormatIndicator', p.payloadFormatIndicator === null ? null : p.payloadFormatIndicator ? 'UTF-8 text' : 'unspecified bytes')
  add('contentType', p.contentType)
  add('responseTopic', p.responseTopic)
  add('correlationData', p.correlationData === null ? null : `${p.correlationData} (base64)`)
  add('userProperties', p.userProperties === null ? null : JSON.stringify(p.userProperties))

  const hexBytes = bytes.subarray(0, HEX_MAX_BYTES)
  const hex = Array.from(hexBytes, (b) => b.toString(16).padStart(2, '0')).join('')
  const modeButton = (name, label) => h('button', {
    type: 'button', class: 'ghost small-button', dataset: { mode: name }, 'aria-pressed': String(mode === name), disabled: name === 'text' && text === null,
  }, label)
  fill(
    $('#retained-detail-body'),
    h('h3', null, 'Payload', h('span', { class: 'payload-modes' }, modeButton('text', 'Text'), modeButton('hex', 'Hex'))),
    text === null ? h('p', { class: 'muted small' }, 'Not UTF-8 text: shown as bytes.') : null,
    mode === 'text'
      ? h('pre', { class: 'payload-text', id: 'retained-payload-text' }, text)
      : h('pre', { class: 'hexdump payload-hex', id: 'retained-payload-hex' }, hexDump(hex)),
    mode === 'hex' && bytes.length > HEX_MAX_BYTES
      ? h('p', { class: 'muted small' }, `The first ${formatNumber(HEX_MAX_BYTES)} of ${formatNumber(bytes.length)} bytes.`)
      : null,
    h('h3', null, 'Every field'),
    fields,
  )
}
