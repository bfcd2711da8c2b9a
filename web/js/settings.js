// The Settings view: a form generated from the settings schema (range, description, scope per field), the API's
// validation messages next to the fields, a what-if line for connectTimeoutMs, the suggestions from evidence beside
// their fields (applied only by an operator's click), and the history with rollback.
import { api, ApiError, query, signedOut } from './api.js'
import { h, $, $$, fill, formatTime, formatNumber, formatValue } from './dom.js'
import { countSlowerThan } from './charts.js'
import { app, can } from './state.js'
import { initProfiles, startProfiles } from './profiles.js'

const view = {
  schema: null, // { key: JSON schema of the property }
  historyCursor: null,
  armedRollback: null,
}

export function initSettings() {
  $('#settings-form').addEventListener('submit', (e) => {
    e.preventDefault()
    save()
  })
  $('#settings-revert').addEventListener('click', () => {
    renderValues(app.settings, true)
    clearErrors()
    message('')
  })
  $('#history-more').addEventListener('click', () => loadHistory(false))
  $('#settings-fields').addEventListener('change', markChanged)
  app.addEventListener('settings', () => {
    renderValues(app.settings, false)
    // a version saved elsewhere on the page (the profiles editor) joins the history
    const newest = Number($('#settings-history .history-item')?.dataset.version ?? 0)
    if (newest > 0 && app.settings && app.settings.version > newest) loadHistory(true)
  })
  app.addEventListener('latency', () => updateWhatIf())
  initProfiles()
}

export async function startSettings() {
  // a viewer's token may read the settings, not change them: every input is disabled, the buttons are hidden
  $('#settings-fieldset').disabled = !can('operator')
  try {
    const { properties, rules } = await loadSchema()
    // the timeout profiles have their own editor (initProfiles); the form holds the plain settings
    const { profiles: _profiles, ...plain } = properties
    view.schema = plain
    buildForm(rules)
    startProfiles(properties)
    // sign-in loaded the version in force; renderValues waited for the form
    renderValues(app.settings, false)
  } catch (err) {
    message(`Could not load the settings: ${err.message}`, 'error')
  }
  loadHistory(true)
  loadSuggestions()
}

// ---- schema ----

/** The settings' JSON schema properties and the rules between keys (GET /api/settings/schema). */
async function loadSchema() {
  const { schema, rules } = await api('/api/settings/schema')
  return { properties: schema.properties, rules }
}

/**
 * { kind: 'integer'|'number'|'boolean'|'enum'|'list', options, nullable, min, max, description, scope, default } of
 * one property: a union of constants is an 'enum' (a select), an array of strings a 'list' (one per line).
 */
function describe(prop) {
  const variants = prop.anyOf ?? prop.oneOf ?? [prop]
  const nullable = variants.some((v) => v.type === 'null') || (Array.isArray(prop.type) && prop.type.includes('null'))
  const main = variants.find((v) => v.type && v.type !== 'null') ?? prop
  const type = Array.isArray(main.type) ? main.type.find((t) => t !== 'null') : main.type
  const constants = variants.filter((v) => v.const !== undefined).map((v) => v.const)
  const kind = constants.length > 0 && constants.length === variants.length ? 'enum' : type === 'array' ? 'list' : type
  return {
    kind: kind ?? 'string',
    options: constants,
    nullable,
    min: main.minimum ?? prop.minimum,
    max: main.maximum ?? prop.maximum,
    description: prop.description ?? main.description ?? '',
    scope: prop['x-scope'] ?? main['x-scope'] ?? '',
    default: prop.default ?? main.default,
  }
}

function unitOf(key) {
  if (/Ms$/.test(key)) return 'ms'
  if (/Sec$/.test(key)) return 's'
  if (/Days$/.test(key)) return 'days'
  if (/Size$/.test(key)) return 'bytes'
  return ''
}

function rangeText(d, key) {
  const unit = unitOf(key)
  if (d.kind === 'boolean') return 'true or false'
  if (d.kind === 'enum') return `one of ${d.options.join(', ')}`
  if (d.kind === 'list') return `a list, one per line${d.nullable ? ', or unset (any)' : ''}`
  const lo = d.min === undefined ? '−∞' : formatNumber(d.min)
  const hi = d.max === undefined ? '∞' : formatNumber(d.max)
  return `${lo} – ${hi}${unit ? ` ${unit}` : ''}${d.nullable ? ', or unset' : ''}`
}

/** The "unset" switch of a nullable setting: checked means null, and the value's input is disabled. */
function unsetSwitch(id, key, input, label) {
  return h('label', { class: 'unset' },
    h('input', { type: 'checkbox', id: `${id}-unset`, dataset: { unsetFor: key }, onchange: (e) => {
      input.disabled = e.target.checked
      markChanged()
    } }), label)
}

function buildForm(rules) {
  const container = $('#settings-fields')
  const fields = []
  for (const [key, prop] of Object.entries(view.schema)) {
    const d = describe(prop)
    const id = `setting-${key}`
    let control
    if (d.kind === 'boolean') {
      control = h('label', { class: 'switch' },
        h('input', { type: 'checkbox', id, name: key, dataset: { key, kind: 'boolean' } }), h('span', null, 'enabled'))
    } else if (d.kind === 'enum') {
      control = h('select', { id, name: key, dataset: { key, kind: 'enum' }, 'aria-describedby': `${id}-help ${id}-error` }, d.options.map((o) => h('option', { value: o }, o)))
    } else if (d.kind === 'list') {
      const list = h('textarea', { id, name: key, rows: 3, dataset: { key, kind: 'list' }, placeholder: 'one per line',
        'aria-describedby': `${id}-help ${id}-error` })
      list.addEventListener('input', markChanged)
      control = h('div', { class: 'list-control' }, list)
      if (d.nullable) control.append(unsetSwitch(id, key, list, 'unset (any)'))
    } else {
      const number = h('input', {
        type: 'number', id, name: key, inputmode: 'decimal', dataset: { key, kind: d.kind },
        min: d.min, max: d.max, step: d.kind === 'integer' ? 1 : 'any', 'aria-describedby': `${id}-help ${id}-error`,
      })
      number.addEventListener('input', () => {
        if (key === 'connectTimeoutMs') updateWhatIf()
        markChanged()
      })
      const unit = unitOf(key)
      control = h('div', { class: 'number-control' }, number, unit ? h('span', { class: 'unit' }, unit) : null)
      if (d.nullable) control.append(unsetSwitch(id, key, number, 'unset'))
    }
    fields.push(
      h('div', { class: 'field', dataset: { field: key } },
        h('div', { class: 'field-head' },
          h('label', { for: id }, h('code', null, key)),
          h('span', { class: 'range', title: 'allowed range' }, rangeText(d, key))),
        h('div', { class: 'field-control' }, control, h('span', { class: 'current', id: `${id}-current` })),
        h('p', { class: 'help', id: `${id}-help` }, d.description),
        h('p', { class: 'scope' }, h('span', { class: 'scope-label' }, 'applies to '), d.scope || '—',
          d.default !== undefined ? h('span', { class: 'default' }, ` · default ${formatValue(d.default)}`) : null),
        key === 'connectTimeoutMs' ? h('p', { class: 'what-if', id: 'what-if', role: 'status' }) : null,
        SUGGESTED.includes(key) ? h('div', { class: 'suggestions', id: `suggestions-${key}` }) : null,
        h('p', { class: 'field-error', id: `${id}-error`, role: 'alert' })),
    )
  }
  fill(container, fields)
  fill($('#settings-rules'), rules.length === 0 ? null : [
    h('span', { class: 'scope-label' }, 'rules between settings'),
    h('ul', null, rules.map((r) => h('li', null, r.description || r.rule))),
  ])
}

// ---- values ----

async function loadCurrent() {
  app.setSettings(await api('/api/settings'))
}

/** Put a version's values in the form. Edits in progress are kept unless `force`. */
function renderValues(v, force) {
  if (!v || !view.schema) return
  fill($('#settings-version'), `version ${v.version} · ${formatTime(v.updatedAt)} by ${v.updatedBy}`)
  for (const key of Object.keys(view.schema)) {
    const input = $(`#setting-${key}`)
    if (!input) continue
    const value = v.values[key]
    const field = input.closest('.field')
    fill($(`#setting-${key}-current`), `now ${formatValue(value)}`)
    if (!force && field.classList.contains('changed')) continue
    if (input.type === 'checkbox') input.checked = Boolean(value)
    else {
      const unset = $(`[data-unset-for="${key}"]`)
      if (unset) {
        unset.checked = value === null
        input.disabled = value === null
      }
      input.value = value === null ? '' : Array.isArray(value) ? value.join('\n') : String(value)
    }
  }
  markChanged()
  updateWhatIf()
}

/** Read a field: number, boolean, null, or the raw text when it is not a number (the API will say why). */
function readField(key) {
  const input = $(`#setting-${key}`)
  if (input.type === 'checkbox') return input.checked
  if (input.dataset.kind === 'enum') return input.value
  const unset = $(`[data-unset-for="${key}"]`)
  if (unset?.checked) return null
  if (input.dataset.kind === 'list') return input.value.split('\n').map((l) => l.trim()).filter((l) => l !== '')
  const text = input.value.trim()
  if (text === '') return input.validity.badInput ? input.value : ''
  const n = Number(text)
  return Number.isFinite(n) ? n : text
}

function edits() {
  const current = app.settings?.values ?? {}
  const patch = {}
  for (const key of Object.keys(view.schema ?? {})) {
    const value = readField(key)
    const was = current[key]
    const same = Array.isArray(value) || Array.isArray(was) ? JSON.stringify(value) === JSON.stringify(was) : value === was
    if (!same) patch[key] = value
  }
  return patch
}

function markChanged() {
  const patch = edits()
  for (const field of $$('#settings-fields .field')) field.classList.toggle('changed', field.dataset.field in patch)
  $('#settings-save').disabled = Object.keys(patch).length === 0
}

let whatIfTimer = null
let whatIfSeq = 0

/**
 * "N of the last M successful connections took longer than X ms": at once from the histogram the charts loaded,
 * then exactly from the server (GET /api/failures/stats?thresholdMs=X, which also knows each bucket's maximum).
 */
function updateWhatIf() {
  const line = $('#what-if')
  if (!line) return
  const input = $('#setting-connectTimeoutMs')
  const proposed = Number(input.value)
  clearTimeout(whatIfTimer)
  if (!input.value || !Number.isFinite(proposed) || proposed <= 0) {
    fill(line)
    return
  }
  const seq = ++whatIfSeq
  const thresholdMs = Math.min(proposed, 600000)
  // the charts' last stats answer counted this threshold already (it counts the timeout in force): no second request
  if (app.whatIf?.thresholdMs === thresholdMs) {
    showWhatIf(proposed, app.whatIf.slower, app.whatIf.slowerMax, app.whatIf.total)
    return
  }
  const { surely, maybe, total } = countSlowerThan(app.latency ?? [], proposed)
  showWhatIf(proposed, surely, surely + maybe, total)
  whatIfTimer = setTimeout(async () => {
    try {
      const until = Date.now()
      const since = until - app.statsWindowMs
      const stats = await api(`/api/failures/stats${query({ since: new Date(since).toISOString(), until: new Date(until).toISOString(), thresholdMs })}`)
      const w = stats.whatIf
      if (seq === whatIfSeq && w.thresholdMs === thresholdMs) showWhatIf(proposed, w.slower, w.slowerMax, w.total)
    } catch {
      // the local estimate stays
    }
  }, 300)
}

function windowText(ms) {
  if (ms <= 3_600_000) return 'hour'
  if (ms < 86_400_000) return `${Math.round(ms / 3_600_000)} hours`
  if (ms === 86_400_000) return '24 hours'
  return `${Math.round(ms / 86_400_000)} days`
}

function showWhatIf(proposed, slower, slowerMax, total) {
  const line = $('#what-if')
  const current = app.settings?.values?.connectTimeoutMs
  line.classList.toggle('warn', slower > 0)
  if (total === 0) {
    fill(line, `What if: no successful connections were recorded in the last ${windowText(app.statsWindowMs)} to compare ${formatNumber(proposed)} ms with.`)
    return
  }
  const n = slowerMax > slower ? `${formatNumber(slower)}–${formatNumber(slowerMax)}` : formatNumber(slower)
  const change = proposed === current ? ' (the value in force)' : ''
  fill(line, `What if: ${n} of the last ${formatNumber(total)} successful connections (last ${windowText(app.statsWindowMs)}) took longer than ${formatNumber(proposed)} ms${change}.`)
}

// ---- saving ----

function message(text, kind = 'ok') {
  const el = $('#settings-message')
  el.dataset.kind = kind
  fill(el, text)
}

function clearErrors() {
  for (const el of $$('#settings-fields .field-error')) fill(el)
  for (const el of $$('#settings-fields .field.invalid')) el.classList.remove('invalid')
}

/**
 * The field messages of a 400 (`{ fields: [{ field, rule, message }] }`) by setting key: `field` is the key or a path
 * ending in it (`values.connectTimeoutMs`); a 400 without such fields whose message names a setting is matched too.
 */
function fieldErrors(body, keys) {
  const out = new Map()
  const add = (key, msg) => out.set(key, out.has(key) ? `${out.get(key)}; ${msg}` : msg)
  for (const { field, message } of body?.fields ?? []) {
    const key = String(field).split(/[/.[\]]/).findLast((p) => keys.includes(p))
    if (key !== undefined) add(key, message)
  }
  if (out.size === 0 && typeof body?.message === 'string') {
    for (const key of keys) if (body.message.includes(key)) add(key, body.message)
  }
  return out
}

async function save() {
  if (!can('operator')) return
  clearErrors()
  const patch = edits()
  if (Object.keys(patch).length === 0) {
    message('Nothing to save: the form shows the values in force.')
    return
  }
  const comment = $('#settings-comment').value.trim()
  const body = { values: patch }
  if (comment) body.comment = comment
  const button = $('#settings-save')
  button.disabled = true
  message('Saving…', 'pending')
  try {
    const headers = app.settings ? { 'if-match': `"${app.settings.version}"` } : {}
    const saved = await api('/api/settings', { method: 'PATCH', body, headers })
    $('#settings-comment').value = ''
    for (const field of $$('#settings-fields .field')) field.classList.remove('changed')
    // no field is marked changed any more, so the 'settings' listener's render puts every saved value in the form
    app.setSettings(saved)
    message(`Saved as version ${saved.version}: in force now (${Object.keys(patch).join(', ')}).`, 'ok')
    loadHistory(true)
    loadSuggestions()
  } catch (err) {
    if (!(err instanceof ApiError)) {
      message(`Not saved: ${err.message}`, 'error')
    } else if (err.status === 400) {
      const errors = fieldErrors(err.body, Object.keys(view.schema))
      for (const [key, msg] of errors) {
        const field = $(`.field[data-field="${key}"]`)
        field?.classList.add('invalid')
        fill($(`#setting-${key}-error`), msg)
      }
      message(errors.size > 0 ? `Not saved: ${errors.size === 1 ? 'one value is' : `${errors.size} values are`} not allowed (see the field${errors.size === 1 ? '' : 's'}).` : `Not saved: ${err.message}`, 'error')
      $('.field.invalid input')?.focus()
    } else if (err.status === 412) {
      await loadCurrent().catch(() => {})
      message(`Not saved: someone else saved version ${app.settings?.version ?? '?'} meanwhile. The "now" values are updated and your edits are kept: check them and save again.`, 'error')
      loadHistory(true)
    } else if (err.status !== 401) {
      message(`Not saved: ${err.message} (HTTP ${err.status}). The broker keeps running on version ${app.settings?.version ?? '?'}.`, 'error')
    }
  } finally {
    markChanged()
  }
}

// ---- suggestions ----

/** The settings GET /api/settings/suggestions proposes values for. */
const SUGGESTED = ['connectTimeoutMs', 'keepaliveMultiplier']

/** Each suggestion (global, then per profile) as a card beside its field; an operator may apply one. */
async function loadSuggestions() {
  let body
  try {
    body = await api('/api/settings/suggestions')
  } catch (err) {
    if (!signedOut(err)) {
      for (const key of SUGGESTED) fill($(`#suggestions-${key}`), h('p', { class: 'muted small' }, `No suggestions: ${err.message}`))
    }
    return
  }
  for (const key of SUGGESTED) {
    const box = $(`#suggestions-${key}`)
    if (box) fill(box, (body[key] ?? []).map((s) => suggestionCard(key, s)))
  }
}

function suggestionCard(key, s) {
  const unit = unitOf(key)
  const value = (v) => `${formatNumber(v)}${unit ? ` ${unit}` : ''}`
  const scope = s.profile === null ? 'global' : `profile “${s.profile}”`
  const e = s.evidence
  const numbers = key === 'connectTimeoutMs'
    ? `${e.window}: ${formatNumber(e.successfulConnects)} connects, p99 ${e.percentileMs === null ? '–' : value(e.percentileMs)}; ` +
      `${formatNumber(e.nearMisses)} near misses${e.largestNearMissMs === null ? '' : `, largest ${value(e.largestNearMissMs)}`}; ` +
      `${formatNumber(e.silentTimeouts)} silent timeouts`
    : `${e.window}: ${formatNumber(e.lateGaps)} late gaps, p99 ${e.percentileRatio === null ? '–' : `${e.percentileRatio} × keepalive`}; ` +
      `${formatNumber(e.dropped)} dropped for keepalive_timeout (${formatNumber(e.keepaliveTimeoutsInLog)} in the log, last 24 h)`
  const applicable = s.suggested !== null && s.suggested !== s.current
  const button = applicable && can('operator')
    ? h('button', { type: 'button', class: 'small-button apply-suggestion', dataset: { key, profile: s.profile ?? '' } }, `Apply ${value(s.suggested)}`)
    : null
  button?.addEventListener('click', () => applySuggestion(key, s, button))
  return h('div', { class: `suggestion${s.suggested === null ? ' thin' : ''}`, dataset: { key, profile: s.profile ?? '' } },
    h('div', { class: 'suggestion-head' },
      h('strong', null, s.suggested === null ? `${scope}: no suggestion` : `${scope}: suggested ${value(s.suggested)}`),
      h('span', { class: 'muted' }, ` now ${value(s.current)}`), button),
    h('p', { class: 'suggestion-summary' }, s.summary),
    h('p', { class: 'muted small', title: e.rule }, numbers))
}

/** Writes a settings version with the suggested value and the comment that names the suggestion. */
async function applySuggestion(key, s, button) {
  if (!can('operator')) return
  button.disabled = true
  try {
    let saved
    if (s.profile === null) {
      saved = await api('/api/settings', { method: 'PATCH', body: { values: { [key]: s.suggested }, comment: s.comment } })
    } else {
      const profiles = (app.settings?.values?.profiles ?? []).map((p) =>
        p.name === s.profile ? { ...p, overrides: { ...p.overrides, [key]: s.suggested } } : p)
      // the whole list is written: only over the version it was read from (412 when someone saved meanwhile)
      const headers = app.settings ? { 'if-match': `"${app.settings.version}"` } : {}
      await api('/api/settings/profiles', { method: 'PUT', body: { profiles, comment: s.comment }, headers })
      saved = await api('/api/settings')
    }
    app.setSettings(saved)
    message(`Applied: version ${saved.version} (${s.comment}).`, 'ok')
    loadHistory(true)
    loadSuggestions()
  } catch (err) {
    button.disabled = false
    if (err instanceof ApiError && err.status === 412) {
      await loadCurrent().catch(() => {})
      loadSuggestions()
      message(`Not applied: someone else saved version ${app.settings?.version ?? '?'} meanwhile; the suggestions are read again.`, 'error')
    } else if (!signedOut(err)) message(`Not applied: ${err.message}`, 'error')
  }
}

// ---- history ----

async function loadHistory(reset) {
  try {
    const params = { limit: 20 }
    if (!reset && view.historyCursor !== null) params.before = view.historyCursor
    const { items, nextCursor } = await api(`/api/settings/history${query(params)}`)
    const list = $('#settings-history')
    if (reset) fill(list)
    for (const item of items) list.append(historyItem(item))
    view.historyCursor = nextCursor
    $('#history-more').hidden = nextCursor === null
  } catch (err) {
    if (!signedOut(err)) fill($('#settings-history'), h('li', { class: 'form-error' }, `Could not load the history: ${err.message}`))
  }
}

function historyItem(item) {
  const isCurrent = app.settings && item.version === app.settings.version
  const changes = item.diff
  const button = isCurrent
    ? h('span', { class: 'badge current-badge' }, 'in force')
    : can('operator')
      ? h('button', { type: 'button', class: 'ghost small-button rollback', dataset: { version: item.version } }, `Roll back to v${item.version}`)
      : null
  if (!isCurrent && button) button.addEventListener('click', () => rollback(item.version, button))
  return h('li', { class: `history-item${isCurrent ? ' is-current' : ''}`, dataset: { version: item.version } },
    h('div', { class: 'history-head' },
      h('strong', null, `v${item.version}`),
      h('span', { class: 'muted' }, `${formatTime(item.updatedAt)} · ${item.updatedBy ?? 'unknown'}`),
      button),
    item.comment ? h('p', { class: 'history-comment' }, item.comment) : null,
    changes.length > 0
      ? h('ul', { class: 'diff' }, changes.map((c) =>
        h('li', null, h('code', null, c.key), ' ', diffValue('del', c.key, c.from), ' → ', diffValue('ins', c.key, c.to))))
      : h('p', { class: 'muted small' }, item.version === 1 ? 'initial values' : 'no change in values'),
  )
}

/** One side of a history diff; the timeout profiles by name (in order), every field in the tooltip. */
function diffValue(tag, key, value) {
  if (key !== 'profiles' || !Array.isArray(value)) return h(tag, null, formatValue(value))
  const names = value.length === 0 ? 'no profiles' : value.map((p) => p.name).join(', ')
  return h(tag, { title: JSON.stringify(value, null, 1) }, `[${names}]`)
}

async function rollback(version, button) {
  // two clicks, no window.confirm(): the second within 5 s does it
  if (view.armedRollback !== button) {
    view.armedRollback = button
    fill(button, `Confirm: roll back to v${version}?`)
    button.classList.add('armed')
    setTimeout(() => {
      if (view.armedRollback === button) {
        view.armedRollback = null
        fill(button, `Roll back to v${version}`)
        button.classList.remove('armed')
      }
    }, 5000)
    return
  }
  view.armedRollback = null
  button.disabled = true
  try {
    const saved = await api('/api/settings/rollback', { method: 'POST', body: { version } })
    app.setSettings(saved)
    renderValues(saved, true)
    message(`Rolled back: version ${saved.version} has the values of v${version} and is in force now.`, 'ok')
    await loadHistory(true)
  } catch (err) {
    button.disabled = false
    fill(button, `Roll back to v${version}`)
    button.classList.remove('armed')
    if (!signedOut(err)) message(`Rollback failed: ${err.message}`, 'error')
  }
}
