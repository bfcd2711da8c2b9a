// The timeout profiles editor on the Settings page: the profiles of the version in force, in the order they are
// tried (first match wins), each with its match conditions and overrides; add, remove, move up and down; saving
// stores a new settings version (PUT /api/settings/profiles, with If-Match and a comment); a 400 is shown at the
// field it names (profiles.2.match.cidr.0 at that profile's CIDR list). Every value is set as text, never markup.
import { api, ApiError } from './api.js'
import { h, $, $$, fill, formatValue } from './dom.js'
import { app, can } from './state.js'

/** The match conditions, each a list of alternatives (one per line); transport is a set of checkboxes. */
const MATCH_LISTS = [
  ['cidr', 'Remote address (CIDR)', '10.0.0.0/8\nfd00::/8', 'before CONNECT'],
  ['origin', 'Origin (exact or glob)', 'https://*.example.com', 'before CONNECT'],
  ['userAgent', 'User-Agent (glob)', 'Mozilla/*', 'before CONNECT'],
  ['subprotocol', 'Subprotocol', 'mqtt', 'before CONNECT'],
  ['path', 'Request path (glob)', '/mqtt*', 'before CONNECT'],
  ['clientId', 'Client id (glob)', 'sensor-*', 'at CONNECT only'],
  ['username', 'Username (glob)', 'ops-*', 'at CONNECT only'],
]
const TRANSPORTS = ['ws', 'wss', 'tcp', 'tls']

const view = {
  /** the override keys and their schemas, from GET /api/settings/schema */
  overrideProps: null,
  /** the settings version the list was rendered from */
  version: null,
  dirty: false,
}

export function initProfiles() {
  $('#profiles-form').addEventListener('submit', (e) => {
    e.preventDefault()
    save()
  })
  $('#profile-add').addEventListener('click', () => {
    const list = readProfiles()
    list.push({ name: `profile-${list.length + 1}`, match: {}, overrides: {} })
    render(list)
    edited()
    $$('#profiles-list .profile').at(-1)?.querySelector('input[data-key="name"]')?.focus()
  })
  $('#profiles-revert').addEventListener('click', () => {
    view.dirty = false
    render(app.settings?.values?.profiles ?? [])
    say('')
  })
  $('#profiles-list').addEventListener('input', edited)
  $('#profiles-list').addEventListener('change', edited)
  app.addEventListener('settings', () => {
    // another save (here, in the form above, elsewhere) keeps edits in progress; without edits the list follows
    if (!view.dirty) render(app.settings?.values?.profiles ?? [])
    fill($('#profiles-version'), app.settings ? `in settings version ${app.settings.version}` : '')
  })
}

/** Called after sign-in, with the settings schema's properties. */
export function startProfiles(schemaProperties) {
  $('#profiles-fieldset').disabled = !can('operator')
  const profiles = schemaProperties.profiles
  view.overrideProps = profiles?.items?.properties?.overrides?.properties ?? {}
  view.dirty = false
  render(app.settings?.values?.profiles ?? [])
}

function edited() {
  view.dirty = true
  $('#profiles-save').disabled = false
}

function say(text, kind = 'ok') {
  const el = $('#profiles-message')
  el.dataset.kind = kind
  fill(el, text)
}

// ---- rendering ---------------------------------------------------------------------------------------------------

function render(profiles) {
  view.version = app.settings?.version ?? null
  const list = $('#profiles-list')
  fill(list, profiles.map((p, i) => profileItem(p, i, profiles.length)))
  $('#profiles-empty').hidden = profiles.length > 0
  $('#profiles-save').disabled = !view.dirty
}

/** A labelled control with its error line; `path` is the field path the API names (profiles.0.match.cidr). */
function field(path, label, control, note) {
  return h('div', { class: 'form-field profile-field', dataset: { path } },
    h('label', null, label, note ? h('span', { class: 'muted small' }, ` (${note})`) : null),
    control,
    h('p', { class: 'field-error', role: 'alert' }))
}

function profileItem(p, i, count) {
  const at = `profiles.${i}`
  const move = (to) => () => {
    const list = readProfiles()
    const [item] = list.splice(i, 1)
    list.splice(to, 0, item)
    render(list)
    edited()
  }
  const remove = () => {
    const list = readProfiles()
    list.splice(i, 1)
    render(list)
    edited()
  }
  const transports = h('div', { class: 'profile-transports' }, TRANSPORTS.map((t) =>
    h('label', { class: 'check' },
      h('input', { type: 'checkbox', dataset: { transport: t }, checked: (p.match?.transport ?? []).includes(t) }), ` ${t}`)))
  const matches = MATCH_LISTS.map(([key, label, placeholder, when]) => {
    const area = h('textarea', { rows: 2, spellcheck: 'false', placeholder, dataset: { match: key } })
    area.value = (p.match?.[key] ?? []).join('\n')
    return field(`${at}.match.${key}`, label, area, when)
  })
  const overrides = Object.entries(view.overrideProps ?? {}).map(([key, prop]) => {
    const value = p.overrides?.[key]
    const variants = prop.anyOf ?? [prop]
    const main = variants.find((v) => v.type && v.type !== 'null') ?? prop
    let control
    if (main.type === 'boolean') {
      control = h('select', { dataset: { override: key, kind: 'boolean' } },
        h('option', { value: '' }, 'global'), h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'))
      control.value = value === undefined ? '' : String(value)
    } else {
      const nullable = variants.some((v) => v.type === 'null')
      control = h('input', { type: 'text', inputmode: 'decimal', dataset: { override: key, kind: 'number' },
        placeholder: `global${nullable ? '; none = unset' : ''}`, title: `${main.minimum ?? ''} – ${main.maximum ?? ''}` })
      control.value = value === undefined ? '' : value === null ? 'none' : String(value)
    }
    const range = main.minimum !== undefined ? `${main.minimum} – ${main.maximum}` : null
    return field(`${at}.overrides.${key}`, h('code', null, key), control, range)
  })
  const name = h('input', { type: 'text', maxlength: 64, spellcheck: 'false', dataset: { key: 'name' }, 'aria-label': `name of profile ${i + 1}` })
  name.value = p.name ?? ''
  return h('li', { class: 'profile card-inner', dataset: { index: i } },
    h('div', { class: 'profile-head' },
      h('span', { class: 'profile-order muted' }, `${i + 1}.`),
      field(`${at}.name`, 'Name', name),
      h('div', { class: 'profile-buttons needs-operator' },
        h('button', { type: 'button', class: 'ghost small-button', disabled: i === 0, onclick: move(i - 1), 'aria-label': 'move up' }, '↑'),
        h('button', { type: 'button', class: 'ghost small-button', disabled: i === count - 1, onclick: move(i + 1), 'aria-label': 'move down' }, '↓'),
        h('button', { type: 'button', class: 'ghost small-button profile-remove', onclick: remove }, 'Remove'))),
    h('p', { class: 'field-error profile-error', role: 'alert', dataset: { errorFor: at } }),
    h('h4', null, 'Applies to connections whose'),
    field(`${at}.match.transport`, 'Transport', transports, 'none ticked = any'),
    h('div', { class: 'profile-grid' }, matches),
    h('h4', null, 'Overrides (empty = the global value)'),
    h('div', { class: 'profile-grid' }, overrides))
}

// ---- reading -----------------------------------------------------------------------------------------------------

/** The profiles as the editor shows them; a value that is not a number is kept as text (the API will say why). */
function readProfiles() {
  return $$('#profiles-list .profile').map((li) => {
    const match = {}
    const transport = $$('input[data-transport]', li).filter((c) => c.checked).map((c) => c.dataset.transport)
    if (transport.length > 0) match.transport = transport
    for (const area of $$('textarea[data-match]', li)) {
      const lines = area.value.split('\n').map((l) => l.trim()).filter((l) => l !== '')
      if (lines.length > 0) match[area.dataset.match] = lines
    }
    const overrides = {}
    for (const input of $$('[data-override]', li)) {
      const text = input.value.trim()
      if (text === '') continue
      if (input.dataset.kind === 'boolean') overrides[input.dataset.override] = text === 'true'
      else if (text === 'none' || text === 'null') overrides[input.dataset.override] = null
      else overrides[input.dataset.override] = Number.isFinite(Number(text)) ? Number(text) : text
    }
    return { name: $('input[data-key="name"]', li).value.trim(), match, overrides }
  })
}

// ---- saving ------------------------------------------------------------------------------------------------------

function clearErrors() {
  for (const el of $$('#profiles-list .field-error')) fill(el)
  for (const el of $$('#profiles-list .invalid')) el.classList.remove('invalid')
}

/** Each message of a 400 at the field whose path is the longest prefix of the one the API names. */
function showErrors(body) {
  const loose = []
  let marked = 0
  for (const { field: name, message } of body?.fields ?? []) {
    const path = String(name)
    const target = $$('#profiles-list [data-path]')
      .filter((el) => path === el.dataset.path || path.startsWith(`${el.dataset.path}.`))
      .sort((a, b) => b.dataset.path.length - a.dataset.path.length)[0]
    const profile = /^profiles\.(\d+)/.exec(path)
    if (target) {
      target.classList.add('invalid')
      const line = $('.field-error', target)
      fill(line, line.textContent ? `${line.textContent}; ${message}` : message)
      marked++
    } else if (profile && $(`[data-error-for="profiles.${profile[1]}"]`)) {
      fill($(`[data-error-for="profiles.${profile[1]}"]`), `${path}: ${message}`)
      marked++
    } else {
      loose.push(`${path}: ${message}`)
    }
  }
  $('#profiles-list .invalid input, #profiles-list .invalid textarea, #profiles-list .invalid select')?.focus()
  return { marked, loose }
}

async function save() {
  if (!can('operator')) return
  clearErrors()
  const profiles = readProfiles()
  const comment = $('#profiles-comment').value.trim()
  const body = { profiles }
  if (comment) body.comment = comment
  const button = $('#profiles-save')
  button.disabled = true
  say('Saving…', 'pending')
  try {
    const headers = app.settings ? { 'if-match': `"${app.settings.version}"` } : {}
    const saved = await api('/api/settings/profiles', { method: 'PUT', body, headers })
    $('#profiles-comment').value = ''
    view.dirty = false
    app.setSettings(saved)
    say(`Saved as version ${saved.version}: ${saved.values.profiles.length} profile${saved.values.profiles.length === 1 ? '' : 's'}, in force now.`, 'ok')
  } catch (err) {
    button.disabled = false
    if (!(err instanceof ApiError)) {
      say(`Not saved: ${err.message}`, 'error')
    } else if (err.status === 400) {
      const { marked, loose } = showErrors(err.body)
      say(`Not saved: ${[marked > 0 ? 'see the marked fields' : null, ...loose].filter(Boolean).join('; ') || err.message}.`, 'error')
    } else if (err.status === 412) {
      say(`Not saved: someone else saved version ${formatValue(err.body?.currentVersion ?? '?')} meanwhile. Your edits are kept: discard them to see the profiles in force, or save again.`, 'error')
      api('/api/settings').then((v) => app.setSettings(v)).catch(() => {})
    } else if (err.status !== 401) {
      say(`Not saved: ${err.message} (HTTP ${err.status}).`, 'error')
    }
  }
}
