// The Nodes view: the broker nodes of the cluster (GET /api/nodes; this node alone outside cluster mode), refreshed
// every 2 s while the view is shown. A node that runs an older settings version than the newest is marked behind, a
// node without a heartbeat for 3 s is marked dead. Node ids and addresses are data: only ever text nodes.
import { api, signedOut } from './api.js'
import { h, $, fill, formatAgo, formatNumber, formatTime } from './dom.js'
import { app } from './state.js'

const REFRESH_MS = 2000
const view = { timer: null, loading: null }

export function initNodes() {
  $('#nodes-refresh').addEventListener('click', () => refresh())
  app.addEventListener('tab', (e) => {
    if (e.detail === 'nodes') show()
    else hide()
  })
}

/** Called at sign-out (or a 401). */
export function stopNodes() {
  hide()
  fill($('#nodes-body'))
  fill($('#nodes-summary'))
  fill($('#nodes-error'))
}

function show() {
  if (view.timer !== null) return
  refresh()
  view.timer = setInterval(refresh, REFRESH_MS)
}

function hide() {
  clearInterval(view.timer)
  view.timer = null
  view.loading = null
}

async function refresh() {
  const token = {}
  view.loading = token
  try {
    const answer = await api('/api/nodes')
    if (view.loading !== token) return
    render(answer)
    fill($('#nodes-error'))
  } catch (err) {
    if (view.loading === token && !signedOut(err)) fill($('#nodes-error'), `Could not load the nodes: ${err.message}`)
  }
}

function versionCell(n, newest) {
  const cell = h('td', { class: 'nowrap', dataset: { settingsVersion: n.settingsVersion } }, `v${n.settingsVersion}`)
  if (n.behind) {
    cell.append(' ', h('span', {
      class: 'badge node-behind',
      title: 'this node has not applied the newest settings version yet',
    }, `behind: runs v${n.settingsVersion}, newest v${newest}`))
  }
  return cell
}

function stateCell(n, now) {
  if (n.alive) return h('td', { class: 'nowrap' }, h('span', { class: 'badge node-state node-alive', dataset: { state: 'alive' } }, 'alive'))
  return h('td', { class: 'nowrap' }, h('span', {
    class: 'badge node-state node-dead',
    dataset: { state: 'dead' },
    title: 'no heartbeat for 3 s: a survivor takes up its sessions',
  }, `dead: last heartbeat ${formatAgo(n.lastHeartbeat, now)}`))
}

function render({ newestSettingsVersion: newest, nodes }) {
  const now = Date.now()
  const behind = nodes.filter((n) => n.behind).length
  const dead = nodes.filter((n) => !n.alive).length
  const parts = [`${formatNumber(nodes.length)} node${nodes.length === 1 ? '' : 's'}`, `newest settings v${newest}`]
  if (behind > 0) parts.push(`${formatNumber(behind)} behind`)
  if (dead > 0) parts.push(`${formatNumber(dead)} dead`)
  fill($('#nodes-summary'), `${parts.join(' · ')} · updated ${formatTime(new Date(now).toISOString())}`)
  $('#nodes-empty').hidden = nodes.length > 0
  fill(
    $('#nodes-body'),
    nodes.map((n) =>
      h('tr', {
        class: [n.behind && 'behind', !n.alive && 'dead', n.self && 'self'].filter(Boolean).join(' ') || undefined,
        dataset: { nodeId: n.id, state: n.alive ? 'alive' : 'dead', behind: n.behind },
      },
        h('td', { class: 'node-id' }, h('code', null, n.id), n.self ? [' ', h('span', { class: 'badge node-self', title: 'the node this page talks to' }, 'this node')] : null),
        h('td', { class: 'nowrap' }, n.address || h('span', { class: 'muted' }, '—')),
        h('td', { class: 'nowrap', title: n.upSince }, formatTime(n.upSince)),
        h('td', { class: 'num' }, formatNumber(n.connections)),
        versionCell(n, newest),
        h('td', { class: 'nowrap', title: n.lastHeartbeat }, formatAgo(n.lastHeartbeat, now)),
        stateCell(n, now),
      ),
    ),
  )
}
