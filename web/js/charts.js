// Two hand-drawn SVG charts: failures over time stacked by reason, and the connect-latency histogram with the
// connect timeout drawn on it. Labels and tooltips are text nodes (<text>, <title>), like everything else.
import { s, h, fill, formatDuration } from './dom.js'
import { REASONS, reasonInfo } from './reasons.js'

const W = 640
const H = 220
const M = { top: 12, right: 12, bottom: 30, left: 44 }

/** An axis from 0 with 4 or 5 ticks on round numbers (1, 2 or 5 x 10^n), whole numbers for counts. */
function niceAxis(maxValue) {
  const raw = Math.max(maxValue, 1) / 4
  const p = 10 ** Math.floor(Math.log10(raw))
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw))
  const ticks = Math.max(1, Math.ceil(maxValue / step))
  return { max: step * ticks, step }
}

function frame(svgLabel) {
  return s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', 'aria-label': svgLabel })
}

function yAxis(svg, axis) {
  const innerH = H - M.top - M.bottom
  for (let v = 0; v <= axis.max; v += axis.step) {
    const y = M.top + innerH * (1 - v / axis.max)
    svg.append(
      s('line', { x1: M.left, x2: W - M.right, y1: y, y2: y, class: v === 0 ? 'axis' : 'grid' }),
      s('text', { x: M.left - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, v.toLocaleString('en-US')),
    )
  }
}

const pad2 = (n) => String(n).padStart(2, '0')

function timeLabel(ms, spanMs) {
  const d = new Date(ms)
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`
  if (spanMs <= 1.1 * 86_400_000) return hm
  return `${d.getMonth() + 1}/${d.getDate()} ${hm}`
}

function empty(svg, message) {
  svg.append(s('text', { x: W / 2, y: H / 2, class: 'empty-text', 'text-anchor': 'middle' }, message))
}

/**
 * Failures over time. `series` = { bucketMs, buckets: [{ start (epoch ms), counts: { reason: n } }] }.
 * Returns the set of reasons present, for the legend.
 */
export function drawFailuresChart(container, series, legend) {
  const svg = frame('failures over time by reason')
  const { buckets, bucketMs } = series
  const totals = buckets.map((b) => Object.values(b.counts).reduce((a, n) => a + n, 0))
  const axis = niceAxis(Math.max(0, ...totals))
  const max = axis.max
  const innerW = W - M.left - M.right
  const innerH = H - M.top - M.bottom
  yAxis(svg, axis)
  const present = new Set()
  if (buckets.length > 0) {
    const slot = innerW / buckets.length
    const barW = Math.max(1, slot * 0.8)
    const span = buckets.length * bucketMs
    // label the buckets that start on a round local time (every 5 min, 1 h, 6 h...), about 6 of them
    const step = [1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080].map((m) => m * 60_000)
      .find((ms) => ms >= bucketMs && span / ms <= 7) ?? span
    const offset = new Date(buckets[0].start).getTimezoneOffset() * 60_000
    const isRound = (t) => (t - offset) % step === 0
    buckets.forEach((b, i) => {
      const x = M.left + i * slot + (slot - barW) / 2
      let y = M.top + innerH
      const end = b.start + bucketMs
      for (const r of REASONS) {
        const n = b.counts[r.id] ?? 0
        if (n <= 0) continue
        present.add(r.id)
        const hgt = (n / max) * innerH
        y -= hgt
        svg.append(
          s('rect', { x, y, width: barW, height: Math.max(hgt, 0.5), fill: r.color, class: 'bar', dataset: { reason: r.id } },
            s('title', null, `${timeLabel(b.start, span)}–${timeLabel(end, span)} · ${r.label}: ${n}`)),
        )
      }
      // reasons this UI does not know yet still count
      for (const [id, n] of Object.entries(b.counts)) {
        if (REASONS.some((r) => r.id === id) || n <= 0) continue
        present.add(id)
        const hgt = (n / max) * innerH
        y -= hgt
        svg.append(s('rect', { x, y, width: barW, height: hgt, fill: reasonInfo(id).color }, s('title', null, `${id}: ${n}`)))
      }
      if (isRound(b.start)) {
        svg.append(
          s('line', { x1: M.left + i * slot, x2: M.left + i * slot, y1: M.top + innerH, y2: M.top + innerH + 4, class: 'axis' }),
          s('text', { x: M.left + i * slot, y: H - 10, class: 'tick', 'text-anchor': 'middle' }, timeLabel(b.start, span)),
        )
      }
    })
  }
  if (totals.every((n) => n === 0)) empty(svg, 'no failures in this window')
  fill(container, svg)
  if (legend) {
    fill(
      legend,
      REASONS.filter((r) => present.has(r.id)).map((r) =>
        h('span', { class: 'legend-item' }, h('span', { class: 'swatch', style: { background: r.color } }), r.label),
      ),
    )
  }
  return present
}

/** Where a value falls on the categorical latency axis, in [0, buckets.length] (log interpolation inside a bucket). */
function positionOf(buckets, ms) {
  for (let i = 0; i < buckets.length; i++) {
    const { lo, hi } = buckets[i]
    if (ms <= hi || i === buckets.length - 1) {
      if (!Number.isFinite(hi)) return i + 0.5
      const a = Math.log(Math.max(lo, 1))
      const b = Math.log(Math.max(hi, 1))
      const frac = b > a ? (Math.log(Math.max(ms, 1)) - a) / (b - a) : 1
      return i + Math.min(1, Math.max(0, frac))
    }
  }
  return buckets.length
}

function bucketLabel({ lo, hi }) {
  if (!Number.isFinite(hi)) return `>${formatDuration(lo)}`
  return `≤${formatDuration(hi)}`.replace(' ', '')
}

/**
 * The connect-latency histogram: `buckets` = [{ lo, hi, count }] in ms (hi may be Infinity), with vertical lines at
 * `lines` = [{ ms, label, kind: 'current' | 'proposed' }].
 */
export function drawLatencyChart(container, buckets, lines = []) {
  const svg = frame('connect latency histogram')
  const axis = niceAxis(Math.max(0, ...buckets.map((b) => b.count)))
  const max = axis.max
  const innerW = W - M.left - M.right
  const innerH = H - M.top - M.bottom
  yAxis(svg, axis)
  if (buckets.length > 0) {
    const slot = innerW / buckets.length
    const barW = Math.max(1, slot - 2)
    const labelEvery = Math.max(1, Math.ceil(buckets.length / 8))
    buckets.forEach((b, i) => {
      const hgt = (b.count / max) * innerH
      const x = M.left + i * slot + 1
      svg.append(
        s('rect', { x, y: M.top + innerH - hgt, width: barW, height: hgt, class: 'latency-bar' },
          s('title', null, `${Number.isFinite(b.hi) ? `${formatDuration(b.lo)}–${formatDuration(b.hi)}` : `over ${formatDuration(b.lo)}`}: ${b.count} connection${b.count === 1 ? '' : 's'}`)),
      )
      const lastLabel = i === buckets.length - 1 && i % labelEvery >= labelEvery / 2
      if (i % labelEvery === 0 || lastLabel) {
        svg.append(s('text', { x: x + barW / 2, y: H - 10, class: 'tick', 'text-anchor': 'middle' }, bucketLabel(b)))
      }
    })
    for (const line of lines) {
      if (line.ms === null || line.ms === undefined || !Number.isFinite(line.ms)) continue
      const x = M.left + positionOf(buckets, line.ms) * slot
      const anchorEnd = x > W - 160
      svg.append(
        s('g', { class: `marker marker-${line.kind ?? 'current'}` },
          s('line', { x1: x, x2: x, y1: M.top - 4, y2: M.top + innerH }),
          s('text', { x: anchorEnd ? x - 4 : x + 4, y: M.top + 10, 'text-anchor': anchorEnd ? 'end' : 'start' }, line.label),
          s('title', null, line.label)),
      )
    }
  }
  if (buckets.every((b) => b.count === 0)) empty(svg, 'no successful connections recorded yet')
  fill(container, svg)
}

/**
 * The histogram as drawn: the fine buckets the API keeps (18 per decade) trimmed to the range that holds data or one
 * of `keepMs` (the timeout lines), then merged in runs so that at most `maxBars` bars remain.
 */
export function compactBuckets(buckets, keepMs = [], maxBars = 36) {
  if (buckets.length === 0) return []
  const holds = (b, ms) => ms > b.lo && ms <= b.hi
  let first = buckets.findIndex((b) => b.count > 0 || keepMs.some((ms) => holds(b, ms)))
  let last = buckets.findLastIndex((b) => b.count > 0 || keepMs.some((ms) => holds(b, ms)))
  if (first < 0) {
    // nothing recorded and no line to draw: a neutral 1 ms .. 10 s axis
    first = Math.max(0, buckets.findIndex((b) => b.hi >= 1))
    last = Math.max(first, buckets.findIndex((b) => b.hi >= 10_000))
  }
  first = Math.max(0, first - 1)
  last = Math.min(buckets.length - 1, last + 1)
  const range = buckets.slice(first, last + 1)
  const per = Math.max(1, Math.ceil(range.length / maxBars))
  const out = []
  for (let i = 0; i < range.length; i += per) {
    const run = range.slice(i, i + per)
    out.push({ lo: run[0].lo, hi: run[run.length - 1].hi, count: run.reduce((a, b) => a + b.count, 0) })
  }
  return out
}

/**
 * How many recorded connections took longer than `ms`: exact when `ms` is a bucket bound, otherwise a range
 * (the bucket that straddles it may hold some of each).
 */
export function countSlowerThan(buckets, ms) {
  let surely = 0
  let maybe = 0
  let total = 0
  for (const b of buckets) {
    total += b.count
    if (b.lo >= ms) surely += b.count
    else if (b.hi > ms) maybe += b.count
  }
  return { surely, maybe, total }
}
