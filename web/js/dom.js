// The one way this UI builds DOM. Strings always become text nodes, never markup: client ids, usernames, user
// agents, topics and bytes come from the network, and `<img src=x onerror=...>` must show as those characters.
// Nothing in web/ assigns innerHTML or outerHTML, or calls insertAdjacentHTML or document.write.

const SVG_NS = 'http://www.w3.org/2000/svg'

/**
 * h('tr', { class: 'row', dataset: { id: 3 }, onclick: fn }, 'text', otherNode, [more, children])
 * Attribute values are set with setAttribute (never parsed as markup); `on*` keys take functions only.
 */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children)
}

/** The same for SVG elements (charts). */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children)
}

function build(el, attrs, children) {
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue
      if (key.startsWith('on')) {
        if (typeof value !== 'function') throw new TypeError(`${key} must be a function`)
        el.addEventListener(key.slice(2), value)
      } else if (key === 'dataset') {
        for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v)
      } else if (key === 'style') {
        // CSSOM properties (allowed by the page's CSP, unlike a style="" attribute)
        for (const [k, v] of Object.entries(value)) el.style.setProperty(k, String(v))
      } else if (key === 'text') {
        el.textContent = String(value)
      } else {
        el.setAttribute(key, value === true ? '' : String(value))
      }
    }
  }
  append(el, children)
  return el
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue
    if (Array.isArray(child)) append(el, child)
    else if (child instanceof Node) el.appendChild(child)
    else el.appendChild(document.createTextNode(String(child)))
  }
}

/** Replace an element's children (text or nodes) in one go. */
export function fill(el, ...children) {
  el.replaceChildren()
  append(el, children)
  return el
}

export const $ = (selector, root = document) => root.querySelector(selector)
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)]

// ---- formatting (every function returns plain strings; callers put them in text nodes) ----

const pad = (n, w = 2) => String(n).padStart(w, '0')

export function formatTime(iso) {
  if (iso === null || iso === undefined) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return String(iso)
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  const today = new Date()
  if (d.toDateString() === today.toDateString()) return time
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—'
  if (ms < 1000) return `${Math.round(ms)} ms`
  // 1.5 s, 2 s, 12.3 s: no trailing zeros
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(ms < 10_000 ? 2 : 1))} s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`
}

export function formatAgo(iso, now = Date.now()) {
  if (!iso) return '—'
  const ms = now - new Date(iso).getTime()
  if (!Number.isFinite(ms)) return String(iso)
  if (ms < 1500) return 'just now'
  return `${formatDuration(ms < 60_000 ? Math.round(ms / 1000) * 1000 : ms)} ago`
}

export function formatNumber(n) {
  if (n === null || n === undefined) return '—'
  return Number(n).toLocaleString('en-US')
}

/** A peer's address as `host:port` (the port when known), or an em dash. */
export const formatAddress = (address, port) => (address === null ? '—' : port ? `${address}:${port}` : address)

const PROTOCOLS = { 3: 'MQTT 3.1', 4: 'MQTT 3.1.1', 5: 'MQTT 5.0' }
export const formatProtocol = (v) => (v === null || v === undefined ? '—' : PROTOCOLS[v] ?? `v${v}`)

/** A value from a record as a line of text: null shows as an em dash, objects as JSON. */
export function formatValue(v) {
  if (v === null || v === undefined) return '—'
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}

/** A byte count for people: 512 B, 1.5 KiB, 2.3 MiB. */
export function formatBytes(n) {
  if (n === null || n === undefined) return '—'
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${Number(v.toFixed(v < 10 ? 1 : 0))} ${units[i]}`
}
