// GET /api/settings/suggestions: values for connectTimeoutMs and keepaliveMultiplier, globally and per timeout
// profile, computed from evidence (the connect-latency histogram and near misses in the failure log; the broker's
// late-gap histogram and its clients dropped for keepalive_timeout), with the evidence and a what-if. Read only:
// a suggestion is applied by an operator through PATCH /api/settings (or PUT /api/settings/profiles).
// The rules are documented in the README ("Suggestions"). The maths stays here, beside its one reader: it needs
// both the failure log and the core's stats, which no store may import together.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { SettingsValues } from '../settings/schema.ts'
import { adminApi } from '../api.ts'
import { GAP_RATIO_BUCKETS, emptyCounts, type GapCounts } from '../mqtt/gaps.ts'
import type { FailureRecord } from '../failures/schema.ts'
import { iso } from '../failures/time.ts'
import type { SettingsValues as Values } from '../contracts/settings.ts'

/** The window of the failure log and latency evidence. */
export const SUGGESTION_WINDOW_MS = 24 * 3600_000
/** Fewer successful connects than this (and no near miss) is too thin to suggest a connectTimeoutMs. */
export const MIN_CONNECTS = 20
/** Fewer late gaps than this (and no client dropped for keepalive_timeout) is too thin for a keepaliveMultiplier. */
export const MIN_LATE_GAPS = 20
/** Near-miss records read at most (newest first). */
const MAX_NEAR_MISSES = 5000
/** [MQTT-3.1.2-24] the spec's 1.5 x keepalive: never suggest less. */
const SPEC_MULTIPLIER = 1.5

const range = (key: 'connectTimeoutMs' | 'keepaliveMultiplier') => {
  const s = SettingsValues.properties[key] as unknown as { minimum: number; maximum: number }
  return { min: s.minimum, max: s.maximum }
}
const clamp = (v: number, { min, max }: { min: number; max: number }) => Math.min(max, Math.max(min, v))

/** Rounded up to a round number of ms: 100 ms steps below 1 s, 500 ms below 10 s, 1 s below 60 s, 5 s above. */
export function roundUpMs(ms: number): number {
  const step = ms <= 1000 ? 100 : ms <= 10_000 ? 500 : ms <= 60_000 ? 1000 : 5000
  return Math.ceil(ms / step) * step
}

/** Rounded up to a quarter. */
export const roundUpQuarter = (x: number): number => Math.ceil(x * 4 - 1e-9) / 4

const Num = Type.Union([Type.Number(), Type.Null()])
const Str = Type.Union([Type.String(), Type.Null()])

const Common = {
  profile: Str,
  current: Type.Number({ description: 'in force now for this scope' }),
  suggested: Type.Union([Type.Number(), Type.Null()], { description: 'null: the evidence is too thin' }),
  comment: Type.Union([Type.String(), Type.Null()], { description: 'the settings comment that names this suggestion (for apply)' }),
  summary: Type.String({ description: 'the evidence and the what-if, in words' }),
}

const ConnectSuggestion = Type.Object({
  ...Common,
  evidence: Type.Object({
    window: Type.String(),
    since: Type.String({ format: 'date-time' }),
    until: Type.String({ format: 'date-time' }),
    rule: Type.String(),
    latencyScope: Type.String({ description: 'the latency histogram is kept for all connections, not per profile' }),
    successfulConnects: Type.Integer(),
    percentile: Type.Literal('p99'),
    percentileMs: Num,
    nearMisses: Type.Integer({ description: 'connect_timeout records that had received part of their CONNECT' }),
    largestNearMissMs: Num,
    nearMissesServed: Type.Integer({ description: 'of the near misses, those the suggested value gives 1.2 x the time they had' }),
    silentTimeouts: Type.Integer({ description: 'connect_timeout records that received nothing' }),
    silentHeldMs: Type.Number({ description: 'how long a silent socket is held with the suggested value (the current one without a suggestion)' }),
    connectsSlowerThanSuggested: Type.Integer({ description: 'successful connects in the window slower than the suggested value (at most)' }),
  }),
})

const KeepaliveSuggestion = Type.Object({
  ...Common,
  evidence: Type.Object({
    window: Type.String(),
    since: Type.String({ format: 'date-time' }),
    rule: Type.String(),
    lateGaps: Type.Integer({ description: 'silences of connected clients longer than keepalive / 2' }),
    buckets: Type.Array(Type.Object({ le: Num, count: Type.Integer() }), { description: 'late gaps by silence / keepalive' }),
    percentile: Type.Literal('p99'),
    percentileRatio: Num,
    dropped: Type.Integer({ description: 'clients dropped for keepalive_timeout since the broker started' }),
    droppedKept: Type.Integer({ description: 'of those, the ones whose longest earlier late gap was within the suggested multiplier' }),
    droppedNeverLate: Type.Integer({ description: 'of those, the ones never silent for more than keepalive / 2 before' }),
    keepaliveTimeoutsInLog: Type.Integer({ description: 'keepalive_timeout records in the failure log, last 24 h' }),
    lateGapsBeyondSuggested: Type.Integer({ description: 'late gaps at or over the suggested multiplier (they would be dropped)' }),
    largestKeepaliveSec: Type.Integer({ description: 'the largest keepalive of the connected clients and of the gaps counted' }),
    deadHeldMaxSec: Num,
  }),
})

const Suggestions = Type.Object({
  generatedAt: Type.String({ format: 'date-time' }),
  connectTimeoutMs: Type.Array(ConnectSuggestion, { description: 'the global values first, then each timeout profile' }),
  keepaliveMultiplier: Type.Array(KeepaliveSuggestion, { description: 'the global values first, then each timeout profile' }),
})

const scopeName = (profile: string | null) => (profile === null ? '' : `profile "${profile}" `)
const fmtRatio = (x: number) => String(Math.round(x * 100) / 100)

interface ConnectEvidenceIn {
  profile: string | null
  current: number
  since: number
  until: number
  successes: number
  p99Ms: number | null
  slowerThan: (ms: number) => number
  timeouts: FailureRecord[]
}

function suggestConnectTimeout(e: ConnectEvidenceIn) {
  const near = e.timeouts.filter((r) => r.bytesReceived > 0)
  const silent = e.timeouts.length - near.length
  const largest = near.length ? Math.max(...near.map((r) => r.durationMs)) : null
  const thin = e.successes < MIN_CONNECTS && near.length === 0
  const fromLatency = e.successes >= MIN_CONNECTS && e.p99Ms !== null ? e.p99Ms * 1.5 : 0
  const fromNear = largest !== null ? largest * 1.2 : 0
  const suggested = thin ? null : clamp(roundUpMs(Math.max(fromLatency, fromNear)), range('connectTimeoutMs'))
  const served = suggested === null ? 0 : near.filter((r) => r.durationMs * 1.2 <= suggested).length
  const scope = scopeName(e.profile)
  // (one read of the latency history, for the summary and the evidence)
  const slower = suggested === null ? 0 : e.slowerThan(suggested)
  const why = [
    e.successes >= MIN_CONNECTS && e.p99Ms !== null ? `p99 ${e.p99Ms} ms x 1.5 of ${e.successes} connects` : null,
    largest !== null ? `${near.length} near misses, largest ${largest} ms x 1.2` : null,
  ].filter(Boolean).join('; ')
  const summary = suggested === null
    ? `Too little evidence in the last 24 h: ${e.successes} successful connects (fewer than ${MIN_CONNECTS}) and no near miss.`
    : `${scope}connectTimeoutMs ${suggested} (now ${e.current}): from ${why}. ` +
      `It would have served ${served} of the ${near.length} near misses of the last 24 h; ` +
      `a silent socket would be held ${suggested} ms (${silent} silent timeouts in the window); ` +
      `${slower} successful connects took longer.`
  return {
    profile: e.profile,
    current: e.current,
    suggested,
    comment: suggested === null ? null : `suggestion: ${scope}connectTimeoutMs ${suggested} (${why}; last 24 h)`,
    summary,
    evidence: {
      window: 'last 24 h',
      since: iso(e.since),
      until: iso(e.until),
      rule: `max(p99 of successful connect latencies x 1.5 (with at least ${MIN_CONNECTS} connects), largest near miss x 1.2), ` +
        'rounded up (100 ms steps below 1 s, 500 ms below 10 s, 1 s below 60 s, 5 s above), within 100..600000',
      latencyScope: 'all connections',
      successfulConnects: e.successes,
      percentile: 'p99' as const,
      percentileMs: e.p99Ms,
      nearMisses: near.length,
      largestNearMissMs: largest,
      nearMissesServed: served,
      silentTimeouts: silent,
      silentHeldMs: suggested ?? e.current,
      connectsSlowerThanSuggested: slower,
    },
  }
}

const sum = (a: number[]) => a.reduce((x, y) => x + y, 0)
/** The upper edge of bucket i; null for the overflow bucket. */
const edge = (i: number): number | null => (i < GAP_RATIO_BUCKETS.length ? GAP_RATIO_BUCKETS[i] : null)
const lowerEdge = (i: number): number => (i === 0 ? 0 : GAP_RATIO_BUCKETS[i - 1])

interface KeepaliveEvidenceIn {
  profile: string | null
  current: number
  startedAt: number
  gaps: GapCounts | undefined
  dropped: GapCounts | undefined
  keepaliveTimeoutsInLog: number
  liveMaxKeepaliveSec: number
}

function suggestKeepaliveMultiplier(e: KeepaliveEvidenceIn) {
  const counts = (e.gaps ?? emptyCounts()).counts
  const droppedCounts = (e.dropped ?? emptyCounts()).counts
  const total = sum(counts)
  const dropped = sum(droppedCounts)
  let p99: number | null = null
  if (total > 0) {
    const rank = Math.ceil(0.99 * total)
    let seen = 0
    for (let i = 0; i < counts.length && p99 === null; i++) {
      seen += counts[i]
      if (seen >= rank) p99 = edge(i) ?? GAP_RATIO_BUCKETS[GAP_RATIO_BUCKETS.length - 1]
    }
  }
  const thin = total < MIN_LATE_GAPS && dropped === 0
  const suggested = thin
    ? null
    : clamp(roundUpQuarter(Math.max(SPEC_MULTIPLIER, (p99 ?? 0) * 1.25)), range('keepaliveMultiplier'))
  // a dropped client is kept when it had come back from a late silence before, and its longest was within m
  const kept = suggested === null ? 0 : sum(droppedCounts.map((n, i) => (i > 0 && (edge(i) ?? Infinity) <= suggested ? n : 0)))
  const beyond = suggested === null ? 0 : sum(counts.map((n, i) => (lowerEdge(i) >= suggested ? n : 0)))
  const largestKeepalive = Math.max(e.liveMaxKeepaliveSec, e.gaps?.maxKeepaliveSec ?? 0, e.dropped?.maxKeepaliveSec ?? 0)
  const multiplier = suggested ?? e.current
  const deadHeldMaxSec = largestKeepalive > 0 ? Math.round(largestKeepalive * multiplier) : null
  const scope = scopeName(e.profile)
  const why = `p99 late gap ${p99 === null ? '-' : fmtRatio(p99)} x keepalive x 1.25 of ${total} late gaps, at least ${SPEC_MULTIPLIER}`
  const summary = suggested === null
    ? `Too little evidence since the broker started: ${total} late gaps (fewer than ${MIN_LATE_GAPS}) and no client dropped for keepalive_timeout.`
    : `${scope}keepaliveMultiplier ${suggested} (now ${e.current}): from ${why}. ` +
      `It would have kept ${kept} of the ${dropped} clients dropped for keepalive_timeout since the broker started ` +
      `(those whose longest silence before was over keepalive / 2 and within ${suggested} x keepalive); ` +
      `${beyond} of the late gaps seen were at least ${suggested} x keepalive; ` +
      (deadHeldMaxSec === null ? 'no client with a keepalive is connected.' : `no dead client would live longer than ${deadHeldMaxSec} s (keepalive ${largestKeepalive} s x ${multiplier}).`)
  return {
    profile: e.profile,
    current: e.current,
    suggested,
    comment: suggested === null ? null : `suggestion: ${scope}keepaliveMultiplier ${suggested} (${why}; keeps ${kept} of ${dropped} dropped)`,
    summary,
    evidence: {
      window: 'since the broker started',
      since: iso(e.startedAt),
      rule: `max(${SPEC_MULTIPLIER}, p99 of late-gap ratios (bucket upper edge) x 1.25), rounded up to a quarter, within 1..5; ` +
        'a dropped client counts as kept when its longest earlier late gap was within the suggestion',
      lateGaps: total,
      buckets: counts.map((count, i) => ({ le: edge(i), count })),
      percentile: 'p99' as const,
      percentileRatio: p99,
      dropped,
      droppedKept: kept,
      droppedNeverLate: droppedCounts[0],
      keepaliveTimeoutsInLog: e.keepaliveTimeoutsInLog,
      lateGapsBeyondSuggested: beyond,
      largestKeepaliveSec: largestKeepalive,
      deadHeldMaxSec,
    },
  }
}

export default async function suggestionRoutes(app: FastifyInstance) {
  adminApi(app)
  const r = app.withTypeProvider<TypeBoxTypeProvider>()
  const startedAt = Date.now()

  /** Records of one reason in the window, newest first, at most MAX_NEAR_MISSES. */
  const records = (reason: 'connect_timeout' | 'keepalive_timeout', since: number, until: number): FailureRecord[] => {
    const out: FailureRecord[] = []
    let before: number | undefined
    do {
      const page = app.failureLog.list({ reason, since, until, before, limit: 1000 })
      out.push(...page.items)
      before = page.nextCursor ?? undefined
    } while (before !== undefined && out.length < MAX_NEAR_MISSES)
    return out
  }

  r.get('/api/settings/suggestions', {
    config: { role: 'viewer' },
    schema: {
      tags: ['settings'],
      summary: 'Suggested connectTimeoutMs and keepaliveMultiplier, from evidence',
      description: 'Globally and per timeout profile: a suggested value (or none when the evidence is thin), the evidence, ' +
        'a what-if, and the comment that names the suggestion. Nothing is applied: an operator applies one with ' +
        '`PATCH /api/settings` (or `PUT /api/settings/profiles`). The rules are in the README, section "Suggestions".',
      response: { 200: Suggestions },
    },
  }, async () => {
    app.failureLog.flush()
    const until = Date.now()
    const since = until - SUGGESTION_WINDOW_MS
    const values: Values = app.settingsStore.current().values
    const { latency } = app.failureLog.latency({ since, until }, values.connectTimeoutMs)
    const slowerThan = (ms: number) => app.failureLog.latency({ since, until }, ms).whatIf.slower
    const timeouts = records('connect_timeout', since, until)
    const keepaliveTimeouts = records('keepalive_timeout', since, until)
    const gaps = app.broker.stats.keepaliveGaps
    // the largest keepalive of the live clients, of all (key undefined) and per profile, in one pass
    const liveMaxKeepalive = new Map<string | null | undefined, number>([[undefined, 0]])
    for (const c of app.broker.connections()) {
      liveMaxKeepalive.set(undefined, Math.max(liveMaxKeepalive.get(undefined)!, c.keepaliveSec))
      liveMaxKeepalive.set(c.profile, Math.max(liveMaxKeepalive.get(c.profile) ?? 0, c.keepaliveSec))
    }

    const scopes: (string | null)[] = [null, ...values.profiles.map((p) => p.name)]
    const ofProfile = (profile: string | null) => values.profiles.find((p) => p.name === profile)?.overrides
    return {
      generatedAt: iso(until),
      connectTimeoutMs: scopes.map((profile) => suggestConnectTimeout({
        profile,
        current: ofProfile(profile)?.connectTimeoutMs ?? values.connectTimeoutMs,
        since,
        until,
        successes: latency.count,
        p99Ms: latency.p99Ms,
        slowerThan,
        timeouts: profile === null ? timeouts : timeouts.filter((t) => t.profile === profile),
      })),
      keepaliveMultiplier: scopes.map((profile) => suggestKeepaliveMultiplier({
        profile,
        current: ofProfile(profile)?.keepaliveMultiplier ?? values.keepaliveMultiplier,
        startedAt,
        gaps: profile === null ? gaps.all : gaps.byProfile.get(profile),
        dropped: profile === null ? gaps.dropped : gaps.droppedByProfile.get(profile),
        keepaliveTimeoutsInLog: profile === null ? keepaliveTimeouts.length : keepaliveTimeouts.filter((t) => t.profile === profile).length,
        liveMaxKeepaliveSec: liveMaxKeepalive.get(profile === null ? undefined : profile) ?? 0,
      })),
    }
  })
}
