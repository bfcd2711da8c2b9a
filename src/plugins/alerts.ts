// Decorates `alerts`: the alert rules and history (src/alerts/), the evaluator fed by the broker's failure events,
// judged every second off the failure path, and the webhook sender. A transition (firing, resolved) is written to
// the history, logged, and queued for the rule's webhook. Nothing here can slow or stop the broker: a failure event
// only bumps counters, and a store or webhook error is logged.
import fp from 'fastify-plugin'
import { createAlertRuleStore, type AlertRuleStore, type StoredRule } from '../alerts/rules.ts'
import { createAlertHistory, failuresQuery, type AlertHistory } from '../alerts/history.ts'
import { AlertEvaluator, type RuleSpec, type Transition } from '../alerts/evaluator.ts'
import type { ActiveAlert, AlertRule } from '../alerts/schema.ts'
import type { FailureEvent } from '../contracts/failure.ts'
import { WebhookSender, type WebhookStats, type WebhookTuning } from './alerts-webhook.ts'

export interface AlertTuning extends WebhookTuning {
  /** ms between evaluations (default 1000) */
  evaluateEveryMs: number
}

export interface Alerts {
  rules: AlertRuleStore
  history: AlertHistory
  /** the rules with whether each fires now */
  list(): AlertRule[]
  get(id: number): AlertRule | null
  view(rule: StoredRule): AlertRule
  /** the rules firing now */
  active(): ActiveAlert[]
  webhookStats(): WebhookStats & { queued: number; inFlight: number }
  /** evaluation and delivery timings (tests make them short) */
  tune(t: Partial<AlertTuning>): void
  /** evaluates at once (tests; the timer does it otherwise) */
  evaluateNow(): void
}

declare module 'fastify' {
  interface FastifyInstance {
    alerts: Alerts
  }
}

const spec = (r: StoredRule): RuleSpec => ({
  id: r.id, name: r.name, enabled: r.enabled, reason: r.reason, profile: r.profile, minBytesReceived: r.minBytesReceived,
  kind: r.kind, count: r.count, windowSec: r.windowSec, factor: r.factor, baselineSec: r.baselineSec,
})

export default fp(
  async (app) => {
    const log = app.log.child({ component: 'alerts' })
    const rules = createAlertRuleStore(app.db)
    const history = createAlertHistory(app.db)
    const evaluator = new AlertEvaluator()
    const sender = new WebhookSender(log)
    /** the history id of each firing rule's firing event */
    const firingEvent = new Map<number, number>()
    let evaluateEveryMs = 1000

    // The rules as they were before the latest change: a rule deleted, disabled or changed while firing resolves
    // to the webhook, signed with the secret, that its firing went to.
    let known = new Map<number, { rule: StoredRule; secret: string | null }>()
    const remember = () => {
      known = new Map(rules.list().map((r) => [r.id, { rule: r, secret: rules.secretOf(r.id) }]))
    }
    remember()

    const handle = (transitions: Transition[]) => {
      for (const t of transitions) {
        try {
          const event = history.record({
            ruleId: t.rule.id, ruleName: t.rule.name, state: t.state, at: t.at, count: t.count, baselineCount: t.baselineCount,
            windowSec: t.rule.windowSec, reason: t.rule.reason, profile: t.rule.profile, since: t.since, until: t.until, detail: t.detail,
          })
          if (t.state === 'firing') firingEvent.set(t.rule.id, event.id)
          else firingEvent.delete(t.rule.id)
          const line = { rule: t.rule.name, ruleId: t.rule.id, state: t.state, count: t.count, historyId: event.id }
          if (t.state === 'firing') log.warn(line, `alert ${t.rule.name} firing: ${t.detail}`)
          else log.info(line, `alert ${t.rule.name} ${t.detail}`)
          const stored = known.get(t.rule.id)?.rule ?? rules.get(t.rule.id)
          const url = stored?.webhookUrl ?? null
          if (url === null || stored == null) continue
          const { failures } = event
          const body = JSON.stringify({
            event: 'alert',
            state: t.state,
            at: event.at,
            rule: {
              id: stored.id, name: stored.name, builtIn: stored.builtIn, reason: stored.reason, profile: stored.profile,
              minBytesReceived: stored.minBytesReceived, kind: stored.kind, count: stored.count, windowSec: stored.windowSec,
              factor: stored.factor, baselineSec: stored.baselineSec,
            },
            count: t.count,
            baselineCount: t.baselineCount,
            windowSec: t.rule.windowSec,
            detail: t.detail,
            historyId: event.id,
            failures: {
              query: failures,
              api: `/api/failures?${new URLSearchParams(failures as Record<string, string>).toString()}`,
              ui: '/admin/#alerts',
            },
          })
          const secret = known.has(stored.id) ? known.get(stored.id)!.secret : rules.secretOf(stored.id)
          sender.enqueue({ id: String(event.id), ruleName: stored.name, url, body, secret })
        } catch (err) {
          log.error({ err, rule: t.rule.name, state: t.state }, 'an alert event could not be recorded')
        }
      }
    }

    // A rule that fired when the broker stopped (or crashed) is resolved now: its counters are gone, and a webhook
    // receiver would otherwise keep an incident open for good. It fires again if the failures go on.
    const started = Date.now()
    handle(history.unresolved().map((f): Transition => {
      const stored = rules.get(f.ruleId)
      const rule: RuleSpec = stored !== null ? spec(stored) : {
        id: f.ruleId, name: f.ruleName, enabled: false, reason: f.reason, profile: f.profile, minBytesReceived: 0,
        kind: 'threshold', count: 1, windowSec: f.windowSec, factor: 3, baselineSec: 3600,
      }
      return {
        rule, state: 'resolved', at: started, count: f.count, baselineCount: null, since: f.since, until: started,
        detail: 'resolved: the broker restarted (its counters start afresh; the rule fires again if the failures go on)',
      }
    }))
    const syncRules = () => {
      handle(evaluator.setRules(rules.list().map(spec), Date.now()))
      remember()
    }
    syncRules()
    rules.on('change', syncRules)

    const evaluate = () => {
      try {
        handle(evaluator.evaluate(Date.now()))
      } catch (err) {
        log.error({ err }, 'alert evaluation failed')
      }
    }
    let timer = setInterval(evaluate, evaluateEveryMs).unref()

    // the failure path: counters only
    const onFailure = (e: FailureEvent) => evaluator.observe(e)
    app.broker.on('failure', onFailure)

    const firingIds = () => new Set(evaluator.firing().map((f) => f.rule.id))
    const view = (r: StoredRule, firing = firingIds()): AlertRule => ({ ...r, firing: firing.has(r.id) })

    app.decorate('alerts', {
      rules,
      history,
      list() {
        const firing = firingIds()
        return rules.list().map((r) => view(r, firing))
      },
      get(id) {
        const r = rules.get(id)
        return r === null ? null : view(r)
      },
      view: (r) => view(r),
      active: () => evaluator.firing().map((f): ActiveAlert => {
        const r = rules.get(f.rule.id)
        return {
          ruleId: f.rule.id, ruleName: f.rule.name, builtIn: r?.builtIn ?? false, notifyUi: r?.notifyUi ?? true,
          since: new Date(f.since).toISOString(), count: f.count, windowSec: f.rule.windowSec, detail: f.detail,
          historyId: firingEvent.get(f.rule.id) ?? null,
          failures: failuresQuery(f.rule.reason, f.rule.profile, f.windowStart, Date.now()),
        }
      }),
      webhookStats: () => ({ ...sender.stats, queued: sender.queued, inFlight: sender.inFlight }),
      tune(t) {
        const { evaluateEveryMs: every, ...webhook } = t
        sender.tune(webhook)
        if (every !== undefined) {
          evaluateEveryMs = every
          clearInterval(timer)
          timer = setInterval(evaluate, evaluateEveryMs).unref()
        }
      },
      evaluateNow: evaluate,
    } satisfies Alerts)

    app.addHook('onClose', async () => {
      clearInterval(timer)
      app.broker.off('failure', onFailure)
      sender.close()
    })
  },
  { name: 'alerts', dependencies: ['database', 'broker'] },
)
