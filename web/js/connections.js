// The Connections view: live clients with the keepalive in force, refreshed every few seconds.
import { api, signedOut } from './api.js'
import { h, $, fill, formatAddress, formatAgo, formatNumber, formatProtocol, formatDuration, formatTime } from './dom.js'
import { app } from './state.js'

const REFRESH_MS = 3000
const view = { timer: null, items: [], total: 0 }

export function initConnections() {
  $('#connections-refresh').addEventListener('click', () => refresh())
}

export function startConnections() {
  refresh()
  view.timer = setInterval(refresh, REFRESH_MS)
}

export function stopConnections() {
  clearInterval(view.timer)
}

export async function refresh() {
  try {
    const { items, total } = await api('/api/connections')
    view.items = items
    view.total = total
    render()
    fill($('#connections-error'))
  } catch (err) {
    if (!signedOut(err)) fill($('#connections-error'), `Could not load connections: ${err.message}`)
  }
}

function keepaliveText(c) {
  const inForce = c.keepaliveSec === 0 ? 'none (0)' : `${c.keepaliveSec} s`
  if (c.requestedKeepaliveSec !== undefined && c.requestedKeepaliveSec !== c.keepaliveSec) {
    return `${inForce} (asked ${c.requestedKeepaliveSec} s)`
  }
  return inForce
}

/** What the ACL refused this connection: PUBLISHes / SUBSCRIBE filters / deliveries; marked when any. */
function aclDeniedCell(denied) {
  if (!denied) return h('td', { class: 'num muted' }, '—')
  const { publish, subscribe, deliver } = denied
  const any = publish + subscribe + deliver > 0
  return h('td', {
    class: `num nowrap acl-denied${any ? ' some' : ' muted'}`,
    dataset: { aclPublish: publish, aclSubscribe: subscribe, aclDeliver: deliver },
    title: `ACL refused: ${formatNumber(publish)} PUBLISH, ${formatNumber(subscribe)} SUBSCRIBE filter${subscribe === 1 ? '' : 's'}, ${formatNumber(deliver)} deliver${deliver === 1 ? 'y' : 'ies'}`,
  }, `${formatNumber(publish)} / ${formatNumber(subscribe)} / ${formatNumber(deliver)}`)
}

function render() {
  const now = Date.now()
  const items = view.items
  fill($('#tab-connections-count'), formatNumber(view.total))
  fill($('#status-clients'), formatNumber(view.total))
  $('#connections-empty').hidden = items.length > 0
  const shown = view.total > items.length ? `first ${formatNumber(items.length)} of ${formatNumber(view.total)} · ` : ''
  fill($('#connections-updated'), `${shown}updated ${formatTime(new Date(now).toISOString())}`)
  fill(
    $('#connections-body'),
    items.map((c) =>
      h('tr', { dataset: { clientId: c.clientId } },
        h('td', { class: 'client-id' }, h('code', null, c.clientId)),
        h('td', null, c.username ?? h('span', { class: 'muted' }, '—')),
        h('td', { class: 'nowrap' }, formatAddress(c.remoteAddress, c.remotePort)),
        h('td', { class: 'nowrap' }, `${formatProtocol(c.protocolVersion)} · ${c.transport}`),
        h('td', { class: 'num nowrap', dataset: { keepalive: c.keepaliveSec } }, keepaliveText(c)),
        h('td', { class: 'num nowrap' }, c.keepaliveTimeoutMs === null || c.keepaliveTimeoutMs === undefined ? 'never' : formatDuration(c.keepaliveTimeoutMs)),
        h('td', { class: 'nowrap', title: c.connectedAt }, formatAgo(c.connectedAt, now)),
        h('td', { class: 'nowrap', title: c.lastPacketAt }, formatAgo(c.lastPacketAt, now)),
        h('td', { class: 'num nowrap' }, `${formatNumber(c.packetsReceived)} / ${formatNumber(c.packetsSent)}`),
        h('td', { class: 'num' }, formatNumber(c.subscriptions)),
        aclDeniedCell(c.aclDenied),
        h('td', { class: 'user-agent', title: c.userAgent ?? '' }, c.userAgent ?? h('span', { class: 'muted' }, '—')),
      ),
    ),
  )
}

app.addEventListener('settings', () => {
  // a new keepaliveMultiplier re-arms every live connection: show the new deadlines soon
  if (view.timer) setTimeout(refresh, 300)
})
