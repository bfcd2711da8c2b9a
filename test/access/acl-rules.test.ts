// The ACL evaluation (src/access/acl-rules.ts), table-driven: one line per question (rules, client, action, topic
// -> decision and the rule that made it). Every line is asked of both isAllowed (the hot path) and evaluate (the
// "try it" path), which must agree. Then the filter validation, the explanations, and 100 rules asked many times.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AclAction, AclSubject } from '../../src/contracts/access.ts'
import { evaluate, isAllowed } from '../../src/access/acl-rules.ts'
import { compileRules, type AclRuleSpec } from '../../src/access/acl-compile.ts'
import { covers, ruleTopicProblem, subscriptionProblem, topicNameProblem } from '../../src/access/acl-filters.ts'

type Opts = Partial<Omit<AclRuleSpec, 'id' | 'position' | 'topic' | 'permission'>>
type Rule = Omit<AclRuleSpec, 'id' | 'position'>
const rule = (permission: 'allow' | 'deny', topic: string, o: Opts = {}): Rule =>
  ({ username: null, clientId: null, anonymous: false, action: 'all', ...o, topic, permission })
const A = (topic: string, o?: Opts) => rule('allow', topic, o)
const D = (topic: string, o?: Opts) => rule('deny', topic, o)
/** rules get id = position = their index + 1 */
const numbered = (rules: Rule[]): AclRuleSpec[] => rules.map((r, i) => ({ ...r, id: i + 1, position: i + 1 }))

const anon = (clientId = 'c1'): AclSubject => ({ username: null, clientId })
const user = (username: string, clientId = 'c1'): AclSubject => ({ username, clientId })
const pub = 'publish' as const
const sub = 'subscribe' as const

/** label, rules, subject, action, topic, expected decision, deciding rule (1-based) or 'default', aclDefault */
type Case = [string, Rule[], AclSubject, AclAction, string, 'allow' | 'deny', number | 'default', ('allow' | 'deny')?]

const CASES: Case[] = [
  // ---- first match wins; no match -> aclDefault
  ['no rules, default allow', [], anon(), pub, 'a/b', 'allow', 'default'],
  ['no rules, default deny', [], anon(), pub, 'a/b', 'deny', 'default', 'deny'],
  ['first of two matching rules decides (allow)', [A('a/#'), D('a/#')], anon(), pub, 'a/b', 'allow', 1],
  ['first of two matching rules decides (deny)', [D('a/b'), A('a/#')], anon(), pub, 'a/b', 'deny', 1],
  ['a later rule when the first does not match', [D('a/b'), A('a/#')], anon(), pub, 'a/c', 'allow', 2, 'deny'],
  ['no rule matches: default deny', [A('a/#')], anon(), pub, 'b', 'deny', 'default', 'deny'],
  ['a subscribe rule says nothing of publish', [D('a/#', { action: 'subscribe' })], anon(), pub, 'a/b', 'allow', 'default'],
  ['a subscribe rule applies to subscribe', [D('a/#', { action: 'subscribe' })], anon(), sub, 'a/b', 'deny', 1],
  ['a publish rule says nothing of subscribe', [D('a/#', { action: 'publish' })], anon(), sub, 'a/#', 'allow', 'default'],
  // ---- username, anonymous
  ['rule for a user: that user', [A('x', { username: 'bob' })], user('bob'), pub, 'x', 'allow', 1, 'deny'],
  ['rule for a user: another user', [A('x', { username: 'bob' })], user('alice'), pub, 'x', 'deny', 'default', 'deny'],
  ['rule for a user never matches anonymous', [A('x', { username: 'bob' })], anon(), pub, 'x', 'deny', 'default', 'deny'],
  ['username is case-sensitive', [A('x', { username: 'bob' })], user('Bob'), pub, 'x', 'deny', 'default', 'deny'],
  ['anonymous rule: anonymous client', [D('#', { anonymous: true })], anon(), pub, 'a', 'deny', 1],
  ['anonymous rule: a user', [D('#', { anonymous: true })], user('bob'), pub, 'a', 'allow', 'default'],
  ['rule for any client: anonymous too', [D('#')], anon(), pub, 'a', 'deny', 1],
  // ---- client id globs
  ['glob *: prefix', [A('x', { clientId: 'sensor-*' })], anon('sensor-12'), pub, 'x', 'allow', 1, 'deny'],
  ['glob *: empty run', [A('x', { clientId: 'sensor-*' })], anon('sensor-'), pub, 'x', 'allow', 1, 'deny'],
  ['glob *: too short', [A('x', { clientId: 'sensor-*' })], anon('sens'), pub, 'x', 'deny', 'default', 'deny'],
  ['glob is anchored at the start', [A('x', { clientId: 'sensor-*' })], anon('xsensor-1'), pub, 'x', 'deny', 'default', 'deny'],
  ['glob without wildcards: exact', [A('x', { clientId: 'dev1' })], anon('dev10'), pub, 'x', 'deny', 'default', 'deny'],
  ['glob ?: one character', [A('x', { clientId: 'dev-??' })], anon('dev-01'), pub, 'x', 'allow', 1, 'deny'],
  ['glob ?: too few', [A('x', { clientId: 'dev-??' })], anon('dev-1'), pub, 'x', 'deny', 'default', 'deny'],
  ['glob ?: too many', [A('x', { clientId: 'dev-??' })], anon('dev-001'), pub, 'x', 'deny', 'default', 'deny'],
  ['glob ?: a surrogate pair is one character', [A('x', { clientId: 'dev-??' })], anon('dev-\u{1F600}1'), pub, 'x', 'allow', 1, 'deny'],
  ['glob * in the middle, backtracking', [A('x', { clientId: 'a*b*c' })], anon('abcbc'), pub, 'x', 'allow', 1, 'deny'],
  ['glob * in the middle, no match', [A('x', { clientId: 'a*b*c' })], anon('acb'), pub, 'x', 'deny', 'default', 'deny'],
  ['glob: regex characters are literal', [A('x', { clientId: 'a.b' })], anon('axb'), pub, 'x', 'deny', 'default', 'deny'],
  ['glob: regex characters are literal (match)', [A('x', { clientId: '(.*)[a]' })], anon('(.*)[a]'), pub, 'x', 'allow', 1, 'deny'],
  ['glob: regex class is literal', [A('x', { clientId: '[a]*' })], anon('abc'), pub, 'x', 'deny', 'default', 'deny'],
  // ---- %u and %c
  ['%u: own subtree', [A('users/%u/#')], user('bob'), pub, 'users/bob/x', 'allow', 1, 'deny'],
  ["%u: another user's subtree", [A('users/%u/#')], user('bob'), pub, 'users/alice/x', 'deny', 'default', 'deny'],
  ['%u never matches anonymous', [A('users/%u/#')], anon(), pub, 'users//x', 'deny', 'default', 'deny'],
  ['%u: a username with + does not widen', [A('users/%u/#')], user('+'), pub, 'users/bob/x', 'deny', 'default', 'deny'],
  ['%c: own subtree', [A('devices/%c/#')], anon('d1'), pub, 'devices/d1/t', 'allow', 1, 'deny'],
  ["%c: another device's subtree", [A('devices/%c/#')], anon('d1'), pub, 'devices/d2/t', 'deny', 'default', 'deny'],
  ['%c: client id a/# does not widen (publish)', [A('devices/%c/#')], anon('a/#'), pub, 'devices/a/b', 'deny', 'default', 'deny'],
  ['%c: client id a/# does not widen (subscribe)', [A('devices/%c/#')], anon('a/#'), sub, 'devices/a/#', 'deny', 'default', 'deny'],
  ['%c: client id + does not widen', [A('devices/%c/#')], anon('+'), pub, 'devices/d2/t', 'deny', 'default', 'deny'],
  ['%c: client id # does not widen a subscription', [A('devices/%c/#')], anon('#'), sub, 'devices/#', 'deny', 'default', 'deny'],
  ['%c: a client id with / does not add levels', [A('devices/%c/#')], anon('a/b'), pub, 'devices/a/b/x', 'deny', 'default', 'deny'],
  ['%c: a deny rule does not match a widening id either', [D('devices/%c/#')], anon('+'), pub, 'devices/x/y', 'allow', 'default'],
  ['%c inside a level', [A('devices/dev-%c/#')], anon('x'), pub, 'devices/dev-x/1', 'allow', 1, 'deny'],
  ['%c inside a level, other id', [A('devices/dev-%c/#')], anon('x'), pub, 'devices/dev-y/1', 'deny', 'default', 'deny'],
  ['%u and %c in one filter', [A('%u/%c')], user('bob', 'phone'), pub, 'bob/phone', 'allow', 1, 'deny'],
  ['%c at the start: an id starting with $ does not reach $ topics', [A('%c/#')], anon('$SYS'), pub, '$SYS/x', 'deny', 'default', 'deny'],
  ['%c at the start: an ordinary id', [A('%c/#')], anon('me'), pub, 'me/x', 'allow', 1, 'deny'],
  ['%c: allow covering a subscription', [A('devices/%c/#')], anon('d1'), sub, 'devices/d1/+', 'allow', 1, 'deny'],
  // ---- publish: matching, $ topics
  ['# matches everything ordinary', [A('#')], anon(), pub, 'a/b/c', 'allow', 1, 'deny'],
  ['# does not match $ topics', [A('#')], anon(), pub, '$SYS/x', 'deny', 'default', 'deny'],
  ['+ first does not match $ topics', [A('+/x')], anon(), pub, '$SYS/x', 'deny', 'default', 'deny'],
  ['a literal $ level matches', [A('$SYS/#')], anon(), pub, '$SYS/x', 'allow', 1, 'deny'],
  ['deny # does not touch $ topics', [D('#')], anon(), pub, '$SYS/x', 'allow', 'default'],
  ['a/# matches the parent a', [A('a/#')], anon(), pub, 'a', 'allow', 1, 'deny'],
  ['a/+ does not match a', [A('a/+')], anon(), pub, 'a', 'deny', 'default', 'deny'],
  ['a/+ matches an empty level', [A('a/+')], anon(), pub, 'a/', 'allow', 1, 'deny'],
  ['a does not match a/', [A('a')], anon(), pub, 'a/', 'deny', 'default', 'deny'],
  ['+ matches one level only', [A('a/+')], anon(), pub, 'a/b/c', 'deny', 'default', 'deny'],
  ['literal levels compare whole', [A('a/bc')], anon(), pub, 'a/b', 'deny', 'default', 'deny'],
  ['a leading empty level', [A('/a')], anon(), pub, '/a', 'allow', 1, 'deny'],
  // ---- subscribe: allow must cover the whole filter
  ['allow sensors/# covers sensors/+/temp', [A('sensors/#')], anon(), sub, 'sensors/+/temp', 'allow', 1, 'deny'],
  ['allow sensors/# covers sensors/#', [A('sensors/#')], anon(), sub, 'sensors/#', 'allow', 1, 'deny'],
  ['allow sensors/# covers sensors (parent)', [A('sensors/#')], anon(), sub, 'sensors', 'allow', 1, 'deny'],
  ['allow sensors/# does not cover #', [A('sensors/#')], anon(), sub, '#', 'deny', 'default', 'deny'],
  ['allow sensors/# does not cover +/temp', [A('sensors/#')], anon(), sub, '+/temp', 'deny', 'default', 'deny'],
  ['allow sensors/+ does not cover sensors/#', [A('sensors/+')], anon(), sub, 'sensors/#', 'deny', 'default', 'deny'],
  ['allow sensors/+ covers sensors/+', [A('sensors/+')], anon(), sub, 'sensors/+', 'allow', 1, 'deny'],
  ['allow a/+/c covers a/+/c', [A('a/+/c')], anon(), sub, 'a/+/c', 'allow', 1, 'deny'],
  ['allow a/b/c does not cover a/+/c', [A('a/b/c')], anon(), sub, 'a/+/c', 'deny', 'default', 'deny'],
  ['allow # does not cover $SYS/#', [A('#')], anon(), sub, '$SYS/#', 'deny', 'default', 'deny'],
  ['allow # covers +/x', [A('#')], anon(), sub, '+/x', 'allow', 1, 'deny'],
  // ---- subscribe: a deny rule refuses a filter it covers; one it only overlaps is granted (deliveries are checked)
  ['deny secret/# lets # through (its secret/x messages are held back at delivery)', [D('secret/#')], anon(), sub, '#', 'allow', 'default'],
  ['deny secret/# lets +/x through', [D('secret/#')], anon(), sub, '+/x', 'allow', 'default'],
  ['deny secret/# refuses secret/#', [D('secret/#')], anon(), sub, 'secret/#', 'deny', 1],
  ['deny secret/# refuses secret/+/y', [D('secret/#')], anon(), sub, 'secret/+/y', 'deny', 1],
  ['deny secret/# leaves public/#', [D('secret/#')], anon(), sub, 'public/#', 'allow', 'default'],
  ['deny a/+/c refuses a/b/c', [D('a/+/c')], anon(), sub, 'a/b/c', 'deny', 1],
  ['deny a/+/c refuses a/+/c', [D('a/+/c')], anon(), sub, 'a/+/c', 'deny', 1],
  ['deny a/+/c lets a/# through', [D('a/+/c')], anon(), sub, 'a/#', 'allow', 'default'],
  ['deny a/+/c leaves a/+/d', [D('a/+/c')], anon(), sub, 'a/+/d', 'allow', 'default'],
  ['deny $SYS/# leaves # (no $ topic matches #)', [D('$SYS/#')], anon(), sub, '#', 'allow', 'default'],
  ['deny $SYS/# refuses $SYS/+', [D('$SYS/#')], anon(), sub, '$SYS/+', 'deny', 1],
  ['deny test/nosubscribe refuses it, lets # through', [D('test/nosubscribe')], anon(), sub, 'test/nosubscribe', 'deny', 1],
  ['deny test/nosubscribe: its messages are not delivered to #', [D('test/nosubscribe')], anon(), sub, 'test/nosubscribe', 'deny', 1],
  ['first match: allow # before deny secret/#', [A('#'), D('secret/#')], anon(), sub, '#', 'allow', 1],
  ['first match: deny secret/# before allow #: the deny does not cover #', [D('secret/#'), A('#')], anon(), sub, '#', 'allow', 2],
  ['first match: deny secret/# before allow #, a secret/x delivery', [D('secret/#'), A('#')], anon(), sub, 'secret/x', 'deny', 1],
  ['first match: allow # after a deny that does not overlap', [D('secret/#'), A('#')], anon(), sub, 'public/#', 'allow', 2, 'deny'],
  // ---- shared subscriptions: judged on the filter
  ['shared: deny applies to the inner filter', [D('secret/#')], anon(), sub, '$share/g/secret/x', 'deny', 1],
  ['shared: inner filter with wildcard, only overlapping', [D('secret/#')], anon(), sub, '$share/g/#', 'allow', 'default'],
  ['shared: inner filter covered', [D('secret/#')], anon(), sub, '$share/g/secret/+', 'deny', 1],
  ['shared: not denied', [D('secret/#')], anon(), sub, '$share/g/public/#', 'allow', 'default'],
  ['shared: allow covers the inner filter', [A('sensors/#')], anon(), sub, '$share/g/sensors/+', 'allow', 1, 'deny'],
  ['shared: the group is not a level', [A('g/#')], anon(), sub, '$share/g/x', 'deny', 'default', 'deny'],
  // ---- deliveries: a subscribe question with the topic name
  ['delivery of a denied topic', [D('secret/#')], anon(), sub, 'secret/x', 'deny', 1],
  ['delivery of an allowed topic', [A('a/+')], anon(), sub, 'a/b', 'allow', 1, 'deny'],
  ['delivery of a $ topic under a wildcard allow', [A('#')], anon(), sub, '$SYS/x', 'deny', 'default', 'deny'],
]

test('ACL decisions, one line per case: isAllowed and evaluate agree', () => {
  for (const [label, rules, subject, action, topic, expected, decidedBy, def = 'allow'] of CASES) {
    const specs = numbered(rules)
    const compiled = compileRules(specs)
    const d = evaluate(compiled, subject, action, topic, def)
    const at = `${label}: ${action} '${topic}' by ${JSON.stringify(subject)}`
    assert.equal(d.allowed, expected === 'allow', `${at} (evaluate: ${d.explanation})`)
    assert.equal(isAllowed(compiled, subject, action, topic, def), expected === 'allow', `${at} (isAllowed)`)
    assert.deepEqual(d.decidedBy, decidedBy === 'default' ? 'default' : { id: decidedBy, position: decidedBy }, at)
    assert.equal(d.rule, decidedBy === 'default' ? null : specs[decidedBy - 1], at)
  }
})

test('evaluate takes plain rules too, in any order: position decides', () => {
  const rules: AclRuleSpec[] = [
    { ...A('#'), id: 7, position: 2 },
    { ...D('secret/#'), id: 9, position: 1 },
  ]
  assert.deepEqual(evaluate(rules, anon(), pub, 'secret/x', 'allow').decidedBy, { id: 9, position: 1 })
})

test('explanations say which rule decided and why, in words', () => {
  const compiled = compileRules(numbered([D('secret/#', { username: 'bob' }), A('devices/%c/#'), A('sensors/#', { clientId: 's-*' })]))
  const deny = evaluate(compiled, user('bob'), sub, 'secret/+', 'allow')
  assert.match(deny.explanation, /^rule 1 \(position 1\) denies subscribe: it applies to user 'bob' and its filter 'secret\/#' covers every topic the subscription 'secret\/\+' can match/)
  const own = evaluate(compiled, anon('d1'), pub, 'devices/d1/x', 'deny')
  assert.match(own.explanation, /rule 2 .* allows publish: it applies to any client and its filter 'devices\/%c\/#' \(here 'devices\/d1\/#'\) matches the topic 'devices\/d1\/x'/)
  const cover = evaluate(compiled, anon('s-1'), sub, 'sensors/+', 'deny')
  assert.match(cover.explanation, /with a client id matching 's-\*' and its filter 'sensors\/#' covers every topic the subscription 'sensors\/\+' can match/)
  const none = evaluate(compiled, anon('a/#'), pub, 'devices/a/b', 'deny')
  assert.equal(none.decidedBy, 'default')
  assert.match(none.explanation, /no rule matched: 0 of the 3 rules about publish apply to this client.*default policy \(aclDefault\) is deny/)
  assert.match(none.explanation, /rule 2 \(position 2\) was skipped: it uses %c and the client id contains '\/', '\+' or '#'/)
  assert.match(evaluate([], anon(), pub, 'x', 'allow').explanation, /no rule is about publish; the default policy \(aclDefault\) is allow/)
})

test('covers, level by level', () => {
  const L = (f: string) => f.split('/')
  const table: [string, string, boolean][] = [
    // rule filter, subscription filter, covers
    ['a/#', 'a/b/c', true],
    ['a/b/c', 'a/#', false],
    ['a', 'a/#', false],
    ['a/+', 'a/#', false],
    ['+/+', 'a/b', true],
    ['a/b', 'c/#', false],
    ['a/+/c', 'a/b/d', false],
    ['#', '#', true],
    ['$SYS/#', '#', false],
    ['#', '$SYS/#', false],
    ['+/#', '+', true],
  ]
  for (const [r, s, c] of table) assert.equal(covers(L(r), L(s)), c, `${r} covers ${s}`)
})

test('a rule topic is a topic filter where %u and %c may stand in a level', () => {
  for (const ok of ['a/b', '#', '+/x/#', 'users/%u/#', 'devices/dev-%c', '%u/%c', '$SYS/#', '/a/', 'a%b']) {
    assert.equal(ruleTopicProblem(ok), null, ok)
  }
  const bad: [string, RegExp][] = [
    ['a/#/b', /'#' must be a whole level and the last/],
    ['a#', /'#' must be a whole level/],
    ['a/b+', /'\+' must be a whole level/],
    ['%u+', /'%u' and '%c' cannot share a level with a wildcard/],
    ['', /must not be empty/],
    ['a\u0000b', /U\+0000/],
    ['$share/g/a', /not a shared subscription/],
    ['x'.repeat(65536), /65535 bytes/],
  ]
  for (const [topic, problem] of bad) assert.match(ruleTopicProblem(topic) ?? 'valid', problem, topic.slice(0, 20))
  assert.match(topicNameProblem('a/+') ?? '', /no wildcards/)
  assert.equal(topicNameProblem('a/b'), null)
  assert.equal(subscriptionProblem('$share/g/a/#'), null)
  assert.match(subscriptionProblem('$share//a') ?? '', /shared subscription/)
  assert.match(subscriptionProblem('$share/g+/a') ?? '', /shared subscription/)
  assert.match(subscriptionProblem('a/#/b') ?? '', /'#'/)
})

test('100 rules of the usual kinds: questions that reach deep into them are decided right, every time', () => {
  // 100 rules of the usual kinds; the questions reach deep into them (the deciding rule late, or none)
  const rules = numbered([
    ...Array.from({ length: 40 }, (_, i) => A(`site/${i}/+/temp`, { clientId: 'dev-*' })),
    ...Array.from({ length: 30 }, (_, i) => A(`users/user${i}/#`, { username: `user${i}` })),
    ...Array.from({ length: 25 }, (_, i) => D(`secret/${i}/#`)),
    D('#', { anonymous: true }), A('devices/%c/#'), A('users/%u/inbox/+', { action: 'subscribe' }), A('+/status'), D('$SYS/#'),
  ])
  assert.equal(rules.length, 100)
  const compiled = compileRules(rules)
  const subject = user('user29', 'dev-7')
  const questions: [AclAction, string, boolean][] = [
    [pub, 'site/39/room/temp', true], // the 40th rule of its first level
    [sub, 'users/user29/inbox/a', true], // a delivery, decided by rule 30 of its first level
    [pub, 'devices/dev-7/state', true], // %c
    [pub, 'secret/24/x', false], // the last deny of its first level
    [sub, 'site/3/room/humidity', false], // no rule: the default
  ]
  for (const [action, topic, expected] of questions) {
    assert.equal(isAllowed(compiled, subject, action, topic, 'deny'), expected, `${action} ${topic}`)
  }
  // the same answers asked many times over (a compiled rule set keeps no state between questions); their speed is
  // measured by the benchmark (npm run bench -- --acl=100), never by a timed test
  let allowed = 0
  for (let i = 0; i < 5_000; i++) {
    const [action, topic] = questions[i % questions.length]
    if (isAllowed(compiled, subject, action, topic, 'deny')) allowed++
  }
  assert.equal(allowed, 5_000 * 3 / 5)
})
