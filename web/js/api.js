// Talking to /api/*: the admin token (sessionStorage only, gone when the tab closes), JSON requests, errors, and
// the live failure stream read with fetch() so that the token travels in the Authorization header, not the URL.

const TOKEN_KEY = 'broker-admin-token'

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY)
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value)
    else sessionStorage.removeItem(TOKEN_KEY)
  },
}

/** Fired on `window` when the server answers 401: the UI shows the sign-in again. */
export const UNAUTHORIZED_EVENT = 'admin:unauthorized'

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message)
    this.status = status
    this.body = body
  }
}

/**
 * A failed call whose answer the sign-in already took care of (401: the sign-in is shown again): nothing more to say
 * about it where it was made.
 */
export function signedOut(err) {
  return err instanceof ApiError && err.status === 401
}

/** The server refused the token (401): forget it and tell the UI, which shows the sign-in. */
function tokenRefused(detail) {
  session.token = null
  window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail }))
}

function messageOf(status, body) {
  if (body && typeof body === 'object' && typeof body.message === 'string') return body.message
  if (typeof body === 'string' && body) return body
  return `HTTP ${status}`
}

/** api('/api/settings', { method: 'PATCH', body: {...}, headers: {...} }) -> parsed JSON. */
export async function api(path, opts = {}) {
  const headers = { accept: 'application/json', ...opts.headers }
  if (session.token) headers.authorization = `Bearer ${session.token}`
  let body
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(opts.body)
  }
  const res = await fetch(path, { method: opts.method ?? 'GET', headers, body, signal: opts.signal, cache: 'no-store' })
  const text = await res.text()
  let data = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = text
    }
  }
  if (res.status === 401) tokenRefused(messageOf(401, data))
  if (!res.ok) throw new ApiError(res.status, data, messageOf(res.status, data))
  return data
}

/** Query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue
    q.set(k, String(v))
  }
  const text = q.toString()
  return text ? `?${text}` : ''
}

/**
 * Read a Server-Sent Events response with fetch (EventSource cannot send an Authorization header).
 * Calls onEvent({ event, data, id }) per event and onState('open' | 'closed' | 'error', detail).
 * Reconnects with a growing delay until `stop()` is called or the server says 401, sending Last-Event-ID.
 */
export function openEventStream(path, { onEvent, onState }) {
  let controller = null
  let stopped = false
  let delay = 1000
  let timer = null
  let lastEventId = null
  const handle = (ev) => {
    if (ev.id !== null) lastEventId = ev.id
    onEvent(ev)
  }

  async function connect() {
    controller = new AbortController()
    try {
      const headers = { accept: 'text/event-stream', authorization: `Bearer ${session.token}` }
      // after a reconnect the server replays what was missed
      if (lastEventId !== null) headers['last-event-id'] = lastEventId
      const res = await fetch(path, {
        headers,
        signal: controller.signal,
        cache: 'no-store',
      })
      if (res.status === 401) {
        stopped = true
        onState('error', 'unauthorized')
        tokenRefused('The token was refused.')
        return
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`)
      delay = 1000
      onState('open')
      await readEvents(res.body, handle)
      if (!stopped) onState('closed', 'the server ended the stream')
    } catch (err) {
      if (stopped) return
      onState('error', err instanceof Error ? err.message : String(err))
    }
    if (!stopped) {
      timer = setTimeout(connect, delay)
      delay = Math.min(delay * 2, 15_000)
    }
  }

  connect()
  return {
    stop() {
      stopped = true
      clearTimeout(timer)
      controller?.abort()
    },
  }
}

// The text/event-stream format: events separated by a blank line; `field: value` lines; `:` starts a comment.
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  let event = { event: 'message', data: [], id: null }
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += value
    let nl
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      if (buffer[nl] === '\r' && nl === buffer.length - 1) break // maybe the first half of a CRLF
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + (buffer[nl] === '\r' && buffer[nl + 1] === '\n' ? 2 : 1))
      if (line === '') {
        if (event.data.length > 0) {
          try {
            onEvent({ event: event.event, data: event.data.join('\n'), id: event.id })
          } catch (err) {
            console.error('event handler failed', err)
          }
        }
        event = { event: 'message', data: [], id: null }
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      let value = colon < 0 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (field === 'event') event.event = value
      else if (field === 'data') event.data.push(value)
      else if (field === 'id') event.id = value
    }
  }
}
