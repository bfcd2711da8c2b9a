// Alert evaluation: per rule, counters of the matching failures in time buckets (a ring for the window, a coarser one
// for a spike rule's baseline), fed once per failure event without I/O, and judged on a timer. A rule fires when
// its condition becomes true and resolves once it has been false for a whole window (hysteresis). Pure: the caller
// passes the time and stores the transitions.
import type { FailureReason } from '../contracts/failure.ts'
import type { AlertKind, AlertState } from './schema.ts'

/** What the evaluator needs of a rule. */
export interface RuleSpec {
  id: number
  name: string
  enabled: boolean
  reason: FailureReason | null
  profile: string | null
  minBytesReceived: number
  kind: AlertKind
  count: number
  windowSec: number
  factor: number
  baselineSec: number
}

/** What the evaluator needs of a failure event (`profile` is absent in records from before timeout profiles). */
export interface ObservedFailure {
  occurredAt: number
  reason: FailureReason
  bytesReceived: number
  profile?: string | null
}

/** A rule that started or stopped firing. */
export interface Transition {
  rule: RuleSpec
  state: AlertState
  at: number
  /** firing: matching failures in the window; resolved: during the whole episode */
  count: number
  /** spike rules: matching failures in the baseline before the window */
  baselineCount: number | null
  /** the failures behind it: matching ones happened between these (epoch ms) */
  since: number
  until: number
  detail: string
}

/** A rule firing now. */
export interface Firing {
  rule: RuleSpec
  since: number
  /** when the window that made it fire began */
  windowStart: number
  count: number
  detail: string
}

/** Counts per bucket in a ring; a slot holds the count of one bucket number (an older one in it is stale). */
class BucketRing {
  readonly bucketMs: number
  readonly #counts: Int32Array
  readonly #numbers: Float64Array

  constructor(bucketMs: number, spanMs: number) {
    this.bucketMs = bucketMs
    const n = Math.ceil(spanMs / bucketMs) + 2
    this.#counts = new Int32Array(n)
    this.#numbers = new Float64Array(n).fill(-1)
  }

  add(t: number): void {
    const b = Math.floor(t / this.bucketMs)
    const slot = b % this.#counts.length
    if (this.#numbers[slot] !== b) {
      this.#numbers[slot] = b
      this.#counts[slot] = 0
    }
    this.#counts[slot]++
  }

  /** Failures in the buckets holding (from, to]. */
  sum(from: number, to: number): number {
    const first = Math.floor(from / this.bucketMs) + 1
    const last = Math.floor(to / this.bucketMs)
    let total = 0
    for (let b = Math.max(first, last - this.#counts.length + 1); b <= last; b++) {
      const slot = b % this.#counts.length
      if (this.#numbers[slot] === b) total += this.#counts[slot]
    }
    return total
  }
}

/** Window buckets: 1/20 of the window, at least 100 ms. */
const WINDOW_BUCKETS = 20
/** Baseline buckets: at most this many over the baseline, never finer than the window's. */
const BASELINE_BUCKETS = 720

interface RuleState {
  spec: RuleSpec
  window: BucketRing
  baseline: BucketRing | null
  /** when counting began (a spike needs a baseline it has seen) */
  countingSince: number
  firing: { since: number; windowStart: number; episode: number; count: number; detail: string } | null
  /** since when the condition of a firing rule has been false */
  falseSince: number | null
}

const sameCondition = (a: RuleSpec, b: RuleSpec) =>
  a.enabled === b.enabled && a.reason === b.reason && a.profile === b.profile && a.minBytesReceived === b.minBytesReceived &&
  a.kind === b.kind && a.count === b.count && a.windowSec === b.windowSec && a.factor === b.factor && a.baselineSec === b.baselineSec

/** Whether the failure counts for the rule. */
export function matches(rule: RuleSpec, e: ObservedFailure): boolean {
  if (rule.reason !== null && e.reason !== rule.reason) return false
  if (e.bytesReceived < rule.minBytesReceived) return false
  if (rule.profile !== null && (e.profile ?? null) !== rule.profile) return false
  return true
}

/** The failures a rule counts, in words: "connect_timeout failures of clients that had sent part of a CONNECT". */
export function describeMatch(rule: Pick<RuleSpec, 'reason' | 'profile' | 'minBytesReceived'>): string {
  const parts = [rule.reason === null ? 'failures' : `${rule.reason} failures`]
  if (rule.minBytesReceived === 1) parts.push('of clients that had sent part of their CONNECT')
  else if (rule.minBytesReceived > 1) parts.push(`of clients that had sent at least ${rule.minBytesReceived} bytes`)
  if (rule.profile !== null) parts.push(`under the timeout profile '${rule.profile}'`)
  return parts.join(' ')
}

export class AlertEvaluator {
  readonly #rules = new Map<number, RuleState>()

  /**
   * The rules in force. A new or changed rule starts counting afresh; a firing rule that is gone, disabled or
   * changed resolves (the transitions are returned).
   */
  setRules(specs: readonly RuleSpec[], now: number): Transition[] {
    const out: Transition[] = []
    const next = new Map(specs.map((s) => [s.id, s]))
    for (const [id, st] of this.#rules) {
      const spec = next.get(id)
      if (spec !== undefined && sameCondition(spec, st.spec)) {
        st.spec = spec // a new name, webhook or comment: same counters
        continue
      }
      if (st.firing !== null) {
        const why = spec === undefined ? 'the rule was deleted' : !spec.enabled ? 'the rule was disabled' : 'the rule was changed'
        out.push(this.#resolve(st, now, why))
      }
      this.#rules.delete(id)
    }
    for (const spec of specs) {
      if (spec.enabled && !this.#rules.has(spec.id)) this.#rules.set(spec.id, this.#fresh(spec, now))
    }
    return out
  }

  #fresh(spec: RuleSpec, now: number): RuleState {
    const windowMs = spec.windowSec * 1000
    const windowBucket = Math.max(100, Math.floor(windowMs / WINDOW_BUCKETS))
    const baselineMs = spec.baselineSec * 1000
    return {
      spec,
      window: new BucketRing(windowBucket, windowMs),
      baseline: spec.kind === 'spike'
        ? new BucketRing(Math.max(windowBucket, Math.ceil(baselineMs / BASELINE_BUCKETS)), baselineMs + windowMs)
        : null,
      countingSince: now,
      firing: null,
      falseSince: null,
    }
  }

  /** One failure event: counted by every rule it matches. No I/O, no allocation. */
  observe(e: ObservedFailure): void {
    for (const st of this.#rules.values()) {
      if (!matches(st.spec, e)) continue
      st.window.add(e.occurredAt)
      st.baseline?.add(e.occurredAt)
      if (st.firing !== null) st.firing.episode++
    }
  }

  /** Judges every rule at `now`; returns what started or stopped firing. */
  evaluate(now: number): Transition[] {
    const out: Transition[] = []
    for (const st of this.#rules.values()) {
      const { holds, count, baselineCount, detail } = this.#condition(st, now)
      const windowMs = st.spec.windowSec * 1000
      if (st.firing === null) {
        if (!holds) continue
        st.firing = { since: now, windowStart: now - windowMs, episode: count, count, detail }
        st.falseSince = null
        out.push({ rule: st.spec, state: 'firing', at: now, count, baselineCount, since: now - windowMs, until: now, detail })
        continue
      }
      st.firing.count = count
      if (holds) {
        st.firing.detail = detail
        st.falseSince = null
        continue
      }
      st.falseSince ??= now
      if (now - st.falseSince >= windowMs) {
        out.push(this.#resolve(st, now, `the condition has been false for ${st.spec.windowSec} s`))
      }
    }
    return out
  }

  /** The rules firing now. */
  firing(): Firing[] {
    const out: Firing[] = []
    for (const st of this.#rules.values()) {
      if (st.firing !== null) {
        out.push({ rule: st.spec, since: st.firing.since, windowStart: st.firing.windowStart, count: st.firing.count, detail: st.firing.detail })
      }
    }
    return out
  }

  #resolve(st: RuleState, now: number, why: string): Transition {
    const f = st.firing!
    st.firing = null
    st.falseSince = null
    return {
      rule: st.spec, state: 'resolved', at: now, count: f.episode, baselineCount: null, since: f.windowStart, until: now,
      detail: `resolved: ${why}; ${f.episode} ${describeMatch(st.spec)} while it fired (${Math.round((now - f.since) / 1000)} s)`,
    }
  }

  #condition(st: RuleState, now: number): { holds: boolean; count: number; baselineCount: number | null; detail: string } {
    const spec = st.spec
    const windowMs = spec.windowSec * 1000
    const count = st.window.sum(now - windowMs, now)
    const what = describeMatch(spec)
    if (spec.kind === 'threshold') {
      return {
        holds: count >= spec.count, count, baselineCount: null,
        detail: `${count} ${what} in the last ${spec.windowSec} s (threshold ${spec.count})`,
      }
    }
    // spike: the baseline is the time before the window that was counted, at most baselineSec; without a whole
    // window of it there is nothing to compare with, and no spike
    const windowStart = now - windowMs
    const baselineMs = Math.min(spec.baselineSec * 1000, windowStart - st.countingSince)
    const baselineCount = baselineMs > 0 ? st.baseline!.sum(windowStart - baselineMs, windowStart) : 0
    if (baselineMs < windowMs) {
      return { holds: false, count, baselineCount, detail: `${count} ${what} in the last ${spec.windowSec} s; no baseline yet` }
    }
    const rate = count / windowMs
    const baseRate = baselineCount / baselineMs
    const holds = count >= spec.count && rate > spec.factor * baseRate
    const times = baseRate === 0 ? 'none before' : `${(rate / baseRate).toFixed(1)}x the baseline rate`
    return {
      holds, count, baselineCount,
      detail: `${count} ${what} in the last ${spec.windowSec} s, ${times} (${baselineCount} in the ${Math.round(baselineMs / 1000)} s before; spike at ${spec.factor}x, at least ${spec.count})`,
    }
  }
}
