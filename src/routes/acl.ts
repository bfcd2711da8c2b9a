// /api/acl*: the topic ACL rules (list, create, read, update incl. move, delete) and the "try it" check that answers
// as the broker would, naming the rule that decided. Thin handlers over app.acl (src/access/acl.ts). Bodies are
// checked by TypeBox as sent (no coercion); every bad field is named in the 400. Reading and "try it" need a viewer
// token, changing an operator's; each change is one audit entry with the rule before and after.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import {
  AclCheckInput, AclCheckResult, AclRule, AclRuleInput, AclRuleList, AclRulePatch,
} from '../access/acl-schema.ts'
import { subscriptionProblem, topicNameProblem } from '../access/acl-filters.ts'
import { ruleBodyProblems } from '../access/acl.ts'
import { adminApi, errorResponses, storeCheckedBody } from '../api.ts'
import { InvalidInputError, NotFoundError } from '../contracts/errors.ts'

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) })

/** A rule body is checked by the store's own rules (schema, topic filter, anonymous with a username): all named at once. */
const ruleBody = (kind: 'create' | 'update') => storeCheckedBody((input) => ruleBodyProblems(input, kind))

export default async function aclRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const acl = app.acl
  // changes go through the control plane: the store itself on one node, PostgreSQL first in cluster mode
  const writer = app.controlPlane.acl
  adminApi(app)
  const tags = ['acl']

  app.get('/api/acl', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'The ACL rules in the order they are checked, and the default policy',
      description: 'The first rule (by position) that matches a publish or subscribe decides; when none does, `aclDefault` does.',
      response: { 200: AclRuleList, ...errorResponses(401) },
    },
  }, async () => ({ items: acl.list(), aclDefault: acl.defaultPermission(), version: acl.version }))

  app.post('/api/acl', {
    config: { role: 'operator' },
    validatorCompiler: ruleBody('create'),
    schema: {
      tags,
      summary: 'Add a rule',
      description: 'After the last rule, or at `position` (the rule there and those after it move down one). In force before the answer.',
      body: AclRuleInput,
      response: { 201: AclRule, ...errorResponses(400, 401) },
    },
  }, async (request, reply) => {
    const rule = await writer.create(request.body)
    request.audit({ action: 'acl.create', target: String(rule.id), after: rule })
    return reply.code(201).send(rule)
  })

  app.get('/api/acl/:id', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'One rule',
      params: IdParams,
      response: { 200: AclRule, ...errorResponses(400, 401, 404) },
    },
  }, async (request) => {
    const rule = acl.get(request.params.id)
    if (rule === null) throw new NotFoundError(`there is no ACL rule ${request.params.id}`)
    return rule
  })

  app.patch('/api/acl/:id', {
    config: { role: 'operator' },
    validatorCompiler: ruleBody('update'),
    schema: {
      tags,
      summary: 'Change a rule, or move it',
      description: 'Any field. A new `position` moves the rule there; the rules between shift by one. In force before the answer.',
      params: IdParams,
      body: AclRulePatch,
      response: { 200: AclRule, ...errorResponses(400, 401, 404) },
    },
  }, async (request) => {
    const before = acl.get(request.params.id)
    const after = await writer.update(request.params.id, request.body)
    request.audit({ action: 'acl.update', target: String(after.id), before, after })
    return after
  })

  app.delete('/api/acl/:id', {
    config: { role: 'operator' },
    schema: {
      tags,
      summary: 'Delete a rule',
      description: 'The rules after it move up one.',
      params: IdParams,
      response: { 204: Type.Null(), ...errorResponses(400, 401, 404) },
    },
  }, async (request, reply) => {
    const before = acl.get(request.params.id)
    await writer.delete(request.params.id)
    request.audit({ action: 'acl.delete', target: String(request.params.id), before })
    return reply.code(204).send(null)
  })

  app.post('/api/acl/check', {
    config: { role: 'viewer' },
    schema: {
      tags,
      summary: 'Try it: would this client be allowed?',
      description:
        'Answers as the broker does now, with the rule that decided (or `default`) and why. Publish: `topic` is a topic name. ' +
        'Subscribe: a topic filter (`$share/group/filter` is judged on `filter`), or a topic name as for each delivered message.',
      body: AclCheckInput,
      response: { 200: AclCheckResult, ...errorResponses(400, 401) },
    },
  }, async (request) => {
    const { username = null, clientId, action, topic } = request.body
    const problem = action === 'publish' ? topicNameProblem(topic) : subscriptionProblem(topic)
    if (problem !== null) {
      throw new InvalidInputError([{ field: 'topic', rule: action === 'publish' ? 'an MQTT topic name' : 'an MQTT topic filter', message: problem }])
    }
    const { rule, ...decision } = acl.check({ username, clientId }, action, topic)
    return rule === null ? decision : { ...decision, rule }
  })
}
