// Decorates `readiness` and serves GET /readyz (no token): 200 while every named check passes, 503 naming the failing
// ones otherwise. /healthz stays liveness (the process answers); /readyz says whether this node should get traffic.
// A check is a named function answering { ok, detail }; the database's is built in, cluster mode adds its own (NATS,
// PostgreSQL) with readiness.add(). On shutdown server.ts calls readiness.drain() first: /readyz turns 503 (check
// `shutdown`) for SHUTDOWN_DRAIN_MS while the broker still serves, so a load balancer stops sending before it closes.
import fp from 'fastify-plugin'
import Type from 'typebox'
import type { Database } from 'better-sqlite3'
import type { WriteBehind } from '../state/write-behind.ts'

export interface CheckResult {
  ok: boolean
  /** what was seen, in words (why it fails, for an operator) */
  detail?: string
}

export type ReadinessCheck = () => CheckResult | Promise<CheckResult>

export interface ReadinessReport {
  status: 'ready' | 'not_ready'
  /** the names of the failing checks, in the order they were added */
  failing: string[]
  checks: Record<string, CheckResult>
}

export interface Readiness {
  /** Add a named check (a name is added once); each runs on every /readyz, bounded by CHECK_TIMEOUT_MS. */
  add(name: string, check: ReadinessCheck): void
  /** The server is shutting down: not ready from now on. */
  drain(why?: string): void
  readonly draining: boolean
  /** Run every check now. */
  report(): Promise<ReadinessReport>
}

declare module 'fastify' {
  interface FastifyInstance {
    readiness: Readiness
  }
}

/** A check that has not answered by then fails (a hanging NATS must not hang the probe). */
export const CHECK_TIMEOUT_MS = 2000

const CheckResultSchema = Type.Object({ ok: Type.Boolean(), detail: Type.Optional(Type.String()) })
const ReportSchema = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  failing: Type.Array(Type.String(), { description: 'the names of the failing checks' }),
  checks: Type.Record(Type.String(), CheckResultSchema),
})

const describe = (err: unknown): string => {
  const e = err as { message?: string; code?: string }
  return `${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}`
}

/**
 * The database is writable: the write lock is taken and released at once (BEGIN IMMEDIATE; ROLLBACK: nothing is
 * written, so a flood of probes writes nothing), which fails on a read-only connection or file and on a lock another
 * program holds. With the durable MQTT state, its writer's own transactions (at least one a second: it stamps a one-row
 * table) say whether writes really reach the disk: failing when only failed ones were seen since the last probe, fine
 * again when only committed ones were; when both were seen (or none, probes under a second apart) the verdict stays.
 */
export function databaseCheck(db: Database, writeBehind: WriteBehind | null): ReadinessCheck {
  let seen = writeBehind === null ? null : { errors: writeBehind.stats.errors, flushes: writeBehind.stats.flushes }
  let stateFailing = false
  return () => {
    // better-sqlite3 is synchronous: no other code of this process is inside a transaction now
    try {
      db.exec('BEGIN IMMEDIATE')
      db.exec('ROLLBACK')
    } catch (err) {
      if (db.open && db.inTransaction) db.exec('ROLLBACK')
      return { ok: false, detail: `the database cannot be written: ${describe(err)}` }
    }
    if (writeBehind !== null && seen !== null) {
      const { errors, flushes } = writeBehind.stats
      const failed = errors > seen.errors
      const committed = flushes > seen.flushes
      if (failed !== committed) stateFailing = failed
      seen = { errors, flushes }
      if (stateFailing) {
        return {
          ok: false,
          detail: `writing the MQTT state fails (${errors} failed transactions since start; kept in memory and retried)`,
        }
      }
    }
    return { ok: true }
  }
}

export default fp(
  async (app) => {
    const checks = new Map<string, ReadinessCheck>()
    let drainingWhy: string | null = null

    const withTimeout = async (check: ReadinessCheck): Promise<CheckResult> => {
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<CheckResult>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${CHECK_TIMEOUT_MS} ms` }), CHECK_TIMEOUT_MS)
      })
      try {
        return await Promise.race([Promise.resolve().then(check), late])
      } catch (err) {
        return { ok: false, detail: describe(err) }
      } finally {
        clearTimeout(timer)
      }
    }

    const readiness: Readiness = {
      add(name, check) {
        if (checks.has(name) || name === 'shutdown') throw new Error(`readiness check "${name}" exists already`)
        checks.set(name, check)
      },
      drain(why = 'the server is shutting down') {
        drainingWhy ??= why
      },
      get draining() {
        return drainingWhy !== null
      },
      async report() {
        const names = [...checks.keys()]
        const results = await Promise.all(names.map((name) => withTimeout(checks.get(name)!)))
        const out: Record<string, CheckResult> = {}
        names.forEach((name, i) => (out[name] = results[i]))
        if (drainingWhy !== null) out.shutdown = { ok: false, detail: drainingWhy }
        const failing = Object.keys(out).filter((name) => !out[name].ok)
        return { status: failing.length === 0 ? 'ready' : 'not_ready', failing, checks: out }
      },
    }
    app.decorate('readiness', readiness)
    readiness.add('database', databaseCheck(app.db, app.mqttState.writeBehind))

    let lastFailing = ''
    app.get('/readyz', {
      config: { role: 'public' },
      schema: {
        tags: ['health'],
        summary: 'Readiness: 200 when this node should get traffic, 503 naming the failing checks (and while shutting down)',
        response: { 200: ReportSchema, 503: ReportSchema },
      },
    }, async (_request, reply) => {
      const report = await readiness.report()
      // one log line when the answer changes, not one per probe
      const failing = report.failing.join(',')
      if (failing !== lastFailing) {
        if (failing === '') app.log.info('ready again: every readiness check passes')
        else app.log.warn({ failing: report.failing, checks: report.checks }, `not ready: ${failing}`)
        lastFailing = failing
      }
      reply.header('cache-control', 'no-store')
      return reply.code(report.status === 'ready' ? 200 : 503).send(report)
    })
  },
  { name: 'readiness', dependencies: ['database', 'mqtt-state'] },
)
