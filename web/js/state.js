// What the views share: who is signed in (the token's name and role), the settings version in force, the latest
// latency histogram, the live-feed state. Views listen for 'settings', 'latency', 'failure' and 'stream' events on `app`.
const RANK = { viewer: 0, operator: 1, admin: 2 }

class AppState extends EventTarget {
  /** the signed-in token: { name, role } (GET /api/whoami), null while signed out */
  whoami = null
  /** the current settings version: { version, updatedAt, updatedBy, comment, values } */
  settings = null
  /** connect-latency histogram: [{ lo, hi, count }] in ms */
  latency = []
  /** the stats answer's exact count for one threshold: { thresholdMs, total, slower, slowerMax } */
  whatIf = null
  /** the window the charts and the what-if line cover, ms back from now */
  statsWindowMs = 86_400_000
  stream = { state: 'unknown', detail: null }

  setSettings(v) {
    this.settings = v
    this.dispatchEvent(new CustomEvent('settings'))
  }

  setStreamState(state, detail = null) {
    this.stream = { state, detail }
    this.dispatchEvent(new CustomEvent('stream'))
  }
}

export const app = new AppState()

/**
 * May the signed-in token do what needs `role`? The views ask before offering an action, so that a click never meets
 * a 403; the page's CSS hides `.needs-operator` and `.needs-admin` elements by the same rule (body[data-role]).
 */
export const can = (role) => app.whoami !== null && RANK[app.whoami.role] >= RANK[role]
