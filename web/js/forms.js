// What the Users and ACL forms share: the API's 400 (`{ fields: [{ field, rule, message }] }`) shown next to each
// field, a status line, and a delete button that asks for a second click instead of window.confirm().
import { $, $$, fill } from './dom.js'

/** A form's status line (`.form-message`): kind 'ok' | 'error' | 'pending'. */
export function say(el, text, kind = 'ok') {
  el.dataset.kind = kind
  fill(el, text)
}

/** Removes every field message and `.invalid` mark inside `root`. */
export function clearFieldErrors(root) {
  for (const el of $$('.field-error', root)) fill(el)
  for (const el of $$('.invalid', root)) el.classList.remove('invalid')
}

/**
 * Puts each message of an error body next to its field: the `.form-field[data-field=NAME]` inside `root`, NAME being
 * the API's field (or a path ending in it, `body.topic`) mapped through `alias` ({ anonymous: 'who' }).
 * Returns the messages no field of the form shows (for the form's status line) and how many fields were marked.
 */
export function showFieldErrors(root, body, alias = {}) {
  const byField = new Map()
  const loose = []
  for (const { field, message } of Array.isArray(body?.fields) ? body.fields : []) {
    const parts = String(field).split(/[/.[\]]/).filter((p) => p !== '')
    const name = parts.map((p) => alias[p] ?? p).findLast((p) => $(`.form-field[data-field="${CSS.escape(p)}"]`, root))
    if (name === undefined) loose.push(`${field} ${message}`)
    else byField.set(name, byField.has(name) ? `${byField.get(name)}; ${message}` : message)
  }
  for (const [name, message] of byField) {
    const wrap = $(`.form-field[data-field="${CSS.escape(name)}"]`, root)
    wrap.classList.add('invalid')
    fill($('.field-error', wrap), message)
  }
  $('.form-field.invalid input:not([type=checkbox]), .form-field.invalid select', root)?.focus()
  return { marked: byField.size, loose }
}

/** Marks one field with a message of the UI's own (a check made before asking the API). */
export function markField(root, name, message) {
  const wrap = $(`.form-field[data-field="${CSS.escape(name)}"]`, root)
  wrap.classList.add('invalid')
  fill($('.field-error', wrap), message)
  $('input, select', wrap)?.focus()
}

/** The status line's words for a 400 that `showFieldErrors` placed. */
export function notSavedText(marked, loose, fallback) {
  if (marked === 0 && loose.length === 0) return `Not saved: ${fallback}`
  const parts = []
  if (marked > 0) parts.push(`${marked === 1 ? 'one field is' : `${marked} fields are`} not accepted (see the field${marked === 1 ? '' : 's'})`)
  if (loose.length > 0) parts.push(loose.join('; '))
  return `Not saved: ${parts.join('; ')}.`
}

let armed = null

/**
 * A destructive button that acts on its second click within 5 s: the first one turns it into "Confirm …?".
 * Returns true when the click should act.
 */
export function confirmed(button, confirmText) {
  if (armed?.button === button) {
    clearTimeout(armed.timer)
    armed = null
    button.classList.remove('armed')
    return true
  }
  disarm()
  const label = button.textContent
  button.classList.add('armed')
  fill(button, confirmText)
  armed = {
    button,
    label,
    timer: setTimeout(disarm, 5000),
  }
  return false
}

/** Puts an armed button back as it was (another one was clicked, or time ran out). */
export function disarm() {
  if (!armed) return
  clearTimeout(armed.timer)
  armed.button.classList.remove('armed')
  fill(armed.button, armed.label)
  armed = null
}
