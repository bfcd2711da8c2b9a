// The results table: one row per metric, one column per broker, ratios of ours to each peer, the targets.
import type { PeerName } from '../peers/brokers.ts'

export interface Row {
  label: string
  better: 'higher' | 'lower'
  /** best value per broker over the rounds (missing: not run or failed) */
  values: Partial<Record<PeerName, number>>
  /** per broker: '~' the value comes only from runs disturbed by other processes, '>=' the generator was the limit */
  marks: Partial<Record<PeerName, string>>
  /** ours vs. the target, e.g. ">= 3x aedes" (null when there is none) */
  target: string | null
  met: boolean | null
}

export function fmt(n: number | undefined): string {
  if (n === undefined || n === null || Number.isNaN(n)) return '-' // (NaN arrives as null through IPC and JSON)
  const a = Math.abs(n)
  if (a >= 100) return Math.round(n).toLocaleString('en-US')
  if (a >= 10) return n.toFixed(1)
  return n.toFixed(2)
}

export function ratio(ours: number | undefined, peer: number | undefined): number | undefined {
  if (ours === undefined || peer === undefined || !Number.isFinite(ours) || !Number.isFinite(peer) || peer === 0) return undefined
  return ours / peer
}

function fmtRatio(r: number | undefined): string {
  return r === undefined ? '-' : `${r.toFixed(2)}x`
}

/** A Markdown table of text cells, the first column left-aligned and the rest right-aligned (it reads well in a terminal too). */
export function markdownTable(head: string[], lines: string[][]): string {
  const all = [head, ...lines]
  const widths = head.map((_, i) => Math.max(...all.map((l) => l[i].length)))
  const row = (l: string[]) => '| ' + l.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |'
  const sep = '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|'
  return [row(head), sep, ...lines.map(row)].join('\n')
}

/** The results table: one row per metric, one column per broker (markdownTable). */
export function table(rows: Row[], peers: PeerName[]): string {
  const others = peers.filter((p) => p !== 'ours')
  const head = ['scenario', 'better', ...peers, ...others.map((p) => `ours/${p}`), 'target']
  const lines = rows.map((r) => [
    r.label,
    r.better === 'higher' ? 'higher' : 'lower',
    ...peers.map((p) => (r.marks[p] ?? '') + fmt(r.values[p])),
    ...others.map((p) => fmtRatio(ratio(r.values.ours, r.values[p]))),
    r.target === null ? '' : `${r.target} ${r.met === null ? '?' : r.met ? 'met' : 'NOT met'}`,
  ])
  return markdownTable(head, lines)
}
