// What the views share: the settings version in force, the latest latency histogram, the live-feed state.
// Views listen for 'settings', 'latency', 'failure' and 'stream' events on `app`.
class AppState extends EventTarget {
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
