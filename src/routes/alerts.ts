// /api/alerts*: the alert rules (list, create, read, update, delete), the alert history (newest first, paged) and the
// rules firing now (the UI's banner). Thin handlers over app.alerts (src/plugins/alerts.ts, src/alerts/). Reading
// needs a viewer token, changing a rule an operator's; each change is one audit entry with the rule before and after,
// never its webhook secret (write-only: a rule shows only `hasSecret`).
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import {
  ActiveAlerts, AlertHistoryPage, AlertRule, AlertRuleInput, AlertRuleList, AlertRulePatch,
} from '../alerts/schema.ts'
import { ruleBodyProblems } from '../alerts/rules.ts'
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from '../alerts/history.ts'
import { adminApi, errorResponses, storeCheckedBody } from '../api.ts'
import { NotFoundError } from '../contracts/errors.ts'

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) })

const HistoryQuery = Type.Object(
  {
    ruleId: Type.Optional(Type.Integer({ minimum: 1, description: 'only this rule' })),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'cursor: `nextCursor` of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: HISTORY_MAX_LIMIT, default: HISTORY_DEFAULT_LIMIT })),
  },
  { additionalProperties: false },
)

/** A rule body is checked by the store's own rules (schema, an http(s) webhook URL): every bad field named at once. */
const ruleBody = (kind: 'create' | 'update') => storeCheckedBody((input) => ruleBodyProblems(input, kind))

export default async function alertRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const alerts = app.alerts
  adminApi(app)
  const tags = ['alerts']

  app.get('/api/alerts/rules', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'The alert rules, the built-in one first, each with whether it fires now',
      response: { 200: AlertRuleList, ...errorResponses(401) },
    },
  }, async () => ({ items: alerts.list() }))

  app.post('/api/alerts/rules', {
    config: { role: 'operator' },
    validatorCompiler: ruleBody('create'),
    schema: {
      tags,
      summary: 'Add a rule',
      description: 'Counted from now on. `secret` is write-only: it signs webhook deliveries (X-Broker-Signature) and is never answered.',
      body: AlertRuleInput,
      response: { 201: AlertRule, ...errorResponses(400, 401, 409) },
    },
  }, async (request, reply) => {
    const rule = alerts.view(alerts.rules.create(request.body))
    request.audit({ action: 'alert-rule.create', target: rule.name, after: rule })
    return reply.code(201).send(rule)
  })

  app.get('/api/alerts/rules/:id', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'One rule',
      params: IdParams,
      response: { 200: AlertRule, ...errorResponses(400, 401, 404) },
    },
  }, async (request) => {
    const rule = alerts.get(request.params.id)
    if (rule === null) throw new NotFoundError(`there is no alert rule ${request.params.id}`)
    return rule
  })

  app.patch('/api/alerts/rules/:id', {
    config: { role: 'operator' },
    validatorCompiler: ruleBody('update'),
    schema: {
      tags,
      summary: 'Change a rule (the built-in one too, but not its name)',
      description: 'Any field; `secret: null` removes the secret. A firing rule whose condition changes resolves, and counts afresh.',
      params: IdParams,
      body: AlertRulePatch,
      response: { 200: AlertRule, ...errorResponses(400, 401, 404, 409) },
    },
  }, async (request) => {
    const before = alerts.get(request.params.id)
    const after = alerts.view(alerts.rules.update(request.params.id, request.body))
    request.audit({ action: 'alert-rule.update', target: after.name, before, after })
    return after
  })

  app.delete('/api/alerts/rules/:id', {
    config: { role: 'operator' },
    schema: {
      tags,
      summary: 'Delete a rule (not the built-in one: disable it instead)',
      params: IdParams,
      response: { 204: Type.Null(), ...errorResponses(400, 401, 404, 409) },
    },
  }, async (request, reply) => {
    const before = alerts.get(request.params.id)
    alerts.rules.delete(request.params.id)
    request.audit({ action: 'alert-rule.delete', target: before?.name ?? String(request.params.id), before })
    return reply.code(204).send(null)
  })

  app.get('/api/alerts/history', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'What fired and resolved, newest first',
      description: 'Each event carries `failures`: the GET /api/failures query (reason, since, until) that lists the failures behind it.',
      querystring: HistoryQuery,
      response: { 200: AlertHistoryPage, ...errorResponses(400, 401) },
    },
  }, async (request) => alerts.history.list(request.query))

  app.get('/api/alerts/active', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'The rules firing now (the admin UI shows them in a banner)',
      response: { 200: ActiveAlerts, ...errorResponses(401) },
    },
  }, async () => ({ items: alerts.active() }))
}
