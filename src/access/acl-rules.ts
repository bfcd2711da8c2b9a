// Topic ACL rules evaluated per PUBLISH, SUBSCRIBE and delivery, on the form src/access/acl-compile.ts compiles them
// to (filter text: src/access/acl-filters.ts). No I/O; the only state is one scratch buffer (see `levelEnds`).
//
// How a question "may this client publish to / subscribe to this topic?" is answered:
// - Rules are checked in `position` order and the first rule that matches decides (allow or deny). When none
//   matches, the setting aclDefault ('allow' | 'deny') decides.
// - A rule applies to a client when its `username` is null or equals the client's username (a rule naming a user
//   never matches an anonymous client), its `clientId` glob is null or matches the client id (`*` any run of
//   characters, `?` one character, everything else literal), and, when `anonymous` is set, the client has no
//   username. Its action is the one asked or 'all'.
// - In the rule's topic filter `%u` stands for the username and `%c` for the client id. A rule using `%u` never
//   matches an anonymous client. A value containing `/`, `+` or `#` would widen the filter, so a client whose
//   username or client id contains one of them is not matched by a rule that substitutes it (nor is a value
//   starting with `$` at the very start of the filter: it would reach the broker's `$` topics).
// - Publish: the topic name must match the rule's filter (`+` one level, `#` any levels incl. the parent, and a
//   filter starting with a wildcard does not match a topic starting with `$`, MQTT 4.7.2).
// - Subscribe: a rule matches a subscription filter only when its filter matches every topic the subscription can
//   match (`sensors/#` covers `sensors/+/temp`, not `#` nor `+/temp`), for allow and deny alike. A deny rule that
//   only overlaps a filter does not refuse the subscription: every delivery is asked too (as a subscribe to the
//   message's topic name), so denying `secret/#` lets a client subscribe to `#` and never sends it `secret/x`
//   (as Mosquitto does). `$share/group/filter` is judged on `filter`.
import type { AclAction, AclSubject } from '../contracts/access.ts'
import type { AclPermission } from './acl-schema.ts'
import {
  ANY_REST, CLIENT, compileRules, levelHash, LITERAL, TEMPLATE, USER,
  type AclRuleSpec, type CompiledRule, type CompiledRules, type Placeholder,
} from './acl-compile.ts'
import { covers, globMatches, hasWildcard, unshared } from './acl-filters.ts'

const SLASH = 0x2f
const PLUS = 0x2b
const HASH = 0x23
const DOLLAR = 0x24

export interface AclDecision<R extends AclRuleSpec = AclRuleSpec> {
  allowed: boolean
  /** the rule that decided, or 'default' when none matched */
  decidedBy: { id: number; position: number } | 'default'
  rule: R | null
  /** why, in words: for the "try it" box and the UI */
  explanation: string
}

// ---- evaluation ------------------------------------------------------------------------------------------------

/** Bits of a subject that decide which substituting rules may match it (computed once per question). */
const USER_OK = 1
const CLIENT_OK = 2
const USER_DOLLAR = 4
const CLIENT_DOLLAR = 8

/** A value that may stand for %u / %c: no '/', '+' or '#' (it would add levels or wildcards). */
function substitutable(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i)
    if (c === SLASH || c === PLUS || c === HASH) return false
  }
  return true
}

function subjectBits(subject: AclSubject): number {
  let bits = 0
  const u = subject.username
  if (u !== null && substitutable(u)) bits |= USER_OK
  if (substitutable(subject.clientId)) bits |= CLIENT_OK
  if (u !== null && u.charCodeAt(0) === DOLLAR) bits |= USER_DOLLAR
  if (subject.clientId.charCodeAt(0) === DOLLAR) bits |= CLIENT_DOLLAR
  return bits
}

/** Why a rule does not apply to a subject: a code, so that the hot path builds no string. */
const APPLIES = 0
const OTHER_USER = 1
const NAMED_USER_ANONYMOUS = 2
const ANONYMOUS_ONLY = 3
const CLIENT_ID = 4
const USER_SUBSTITUTION = 5
const CLIENT_SUBSTITUTION = 6
const LEADING_DOLLAR = 7

function notApplying(c: CompiledRule<AclRuleSpec>, subject: AclSubject, bits: number): number {
  if (c.anyClient) return APPLIES
  if (c.username !== null && c.username !== subject.username) return subject.username === null ? NAMED_USER_ANONYMOUS : OTHER_USER
  if (c.anonymousOnly && subject.username !== null) return ANONYMOUS_ONLY
  if (c.clientId !== null && !globMatches(c.clientId, subject.clientId)) return CLIENT_ID
  if (c.usesUser && (bits & USER_OK) === 0) return USER_SUBSTITUTION
  if (c.usesClient && (bits & CLIENT_OK) === 0) return CLIENT_SUBSTITUTION
  if ((c.leading === USER && (bits & USER_DOLLAR) !== 0) || (c.leading === CLIENT && (bits & CLIENT_DOLLAR) !== 0)) return LEADING_DOLLAR
  return APPLIES
}

/** A substitution refusal in words (they look like matches to whoever wrote the rule, so `evaluate` names them). */
function substitutionRefusal(code: number, subject: AclSubject): string | null {
  switch (code) {
    case USER_SUBSTITUTION:
      return subject.username === null ? 'it uses %u and the client is anonymous' : "it uses %u and the username contains '/', '+' or '#'"
    case CLIENT_SUBSTITUTION: return "it uses %c and the client id contains '/', '+' or '#'"
    case LEADING_DOLLAR: return "its filter starts with %u or %c and the value starts with '$'"
    default: return null
  }
}

const valueOf = (p: Placeholder, subject: AclSubject): string => (p === USER ? subject.username! : subject.clientId)

/** Whether the template level equals topic[from, to) once %u/%c are substituted (without building the string). */
function templateMatches(parts: readonly (string | Placeholder)[], topic: string, from: number, to: number, subject: AclSubject): boolean {
  let at = from
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]
    const s = typeof p === 'string' ? p : valueOf(p, subject)
    // no part contains '/', so a match cannot run past the level's end
    if (!topic.startsWith(s, at)) return false
    at += s.length
  }
  return at === to
}

/**
 * Where each level of the topic being asked about ends (the index of its '/', or the topic's length): filled once
 * per question by `splitTopic`, read by `matchesName` for every rule. Module scratch space, so that a question
 * allocates nothing; evaluation is synchronous and calls nothing outside this file, so two questions never overlap.
 */
let levelEnds = new Int32Array(64)

/** Fills `levelEnds` for `topic`; returns its number of levels. */
function splitTopic(topic: string): number {
  let count = 0
  for (let i = 0; i < topic.length; i++) {
    if (topic.charCodeAt(i) !== SLASH) continue
    if (count === levelEnds.length - 1) levelEnds = grow(levelEnds)
    levelEnds[count++] = i
  }
  if (count === levelEnds.length) levelEnds = grow(levelEnds)
  levelEnds[count++] = topic.length
  return count
}

const grow = (a: Int32Array) => {
  const bigger = new Int32Array(a.length * 2)
  bigger.set(a)
  return bigger
}

/** Whether the rule's filter matches the topic name `splitTopic` just split into `count` levels. */
function matchesName(c: CompiledRule<AclRuleSpec>, topic: string, count: number, subject: AclSubject): boolean {
  if (c.wildFirst && topic.charCodeAt(0) === DOLLAR) return false // [MQTT-4.7.2-1]
  const levels = c.levels
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]
    if (level.kind === ANY_REST) return true // also the parent level: 'a/#' matches 'a'
    if (i === count) return false // the topic has fewer levels
    const from = i === 0 ? 0 : levelEnds[i - 1] + 1
    const to = levelEnds[i]
    if (level.kind === LITERAL) {
      const text = level.text
      if (to - from !== text.length) return false
      for (let k = 0; k < text.length; k++) if (text.charCodeAt(k) !== topic.charCodeAt(from + k)) return false
    } else if (level.kind === TEMPLATE) {
      if (!templateMatches(level.parts, topic, from, to, subject)) return false
    }
  }
  return levels.length === count
}

/** The rule's filter levels with %u/%c substituted (for filter-vs-filter questions, which may allocate). */
function substituted(c: CompiledRule<AclRuleSpec>, subject: AclSubject): string[] {
  return c.levels.map((l) => (l.kind === TEMPLATE ? l.parts.map((p) => (typeof p === 'string' ? p : valueOf(p, subject))).join('') : l.text))
}

/** One question, prepared: the topic as a name, or as a filter's levels. */
interface Question {
  rules: readonly CompiledRule<AclRuleSpec>[]
  bits: number
  /** the topic name to match, or null when `levels` holds a subscription filter with wildcards */
  name: string | null
  /** the name's number of levels (`splitTopic` has filled `levelEnds` for it) */
  count: number
  levels: string[] | null
}

function prepare(compiled: CompiledRules, subject: AclSubject, action: AclAction, topic: string): Question {
  const rules = (action === 'publish' ? compiled.publish : compiled.subscribe).all
  const bits = compiled.substitutes ? subjectBits(subject) : 0
  const name = action === 'publish' ? topic : unshared(topic)
  if (action === 'subscribe' && hasWildcard(name)) return { rules, bits, name: null, count: 0, levels: name.split('/') }
  return { rules, bits, name, count: splitTopic(name), levels: null }
}

function topicMatches(c: CompiledRule<AclRuleSpec>, q: Question, subject: AclSubject): boolean {
  if (q.name !== null) return matchesName(c, q.name, q.count, subject)
  return covers(substituted(c, subject), q.levels!)
}

/**
 * The hot path: may `subject` do `action` on `topic`? Publish: `topic` is a topic name. Subscribe: a filter
 * (`$share/group/filter` too) or, for a delivery, the message's topic name. Allocates nothing for a topic name.
 */
export function isAllowed(
  compiled: CompiledRules, subject: AclSubject, action: AclAction, topic: string, defaultPermission: AclPermission,
): boolean {
  const rules = action === 'publish' ? compiled.publish : compiled.subscribe
  if (rules.all.length === 0) return defaultPermission === 'allow'
  // a subscription filter with a wildcard: every rule, filter against filter
  if (action === 'subscribe' && (topic.startsWith('$share/') || hasWildcard(topic))) {
    const q = prepare(compiled, subject, action, topic)
    for (const c of q.rules) {
      if (notApplying(c, subject, q.bits) === APPLIES && topicMatches(c, q, subject)) return !c.deny
    }
    return defaultPermission === 'allow'
  }
  // a topic name (every publish, every delivery): the rules that can match its first level, in position order
  const bits = compiled.substitutes ? subjectBits(subject) : 0
  const count = splitTopic(topic)
  const literal = rules.byFirstLevel.get(levelHash(topic, 0, levelEnds[0])) ?? NONE
  const other = rules.otherFirstLevel
  let i = 0
  let j = 0
  while (i < literal.length || j < other.length) {
    const c = j === other.length || (i < literal.length && literal[i].order < other[j].order) ? literal[i++] : other[j++]
    if (notApplying(c, subject, bits) === APPLIES && matchesName(c, topic, count, subject)) return !c.deny
  }
  return defaultPermission === 'allow'
}

const NONE: readonly CompiledRule<AclRuleSpec>[] = []

const quote = (s: string) => `'${s}'`

function describeWho(rule: AclRuleSpec): string {
  const who = rule.username !== null ? `user ${quote(rule.username)}` : rule.anonymous ? 'anonymous clients' : 'any client'
  return rule.clientId === null ? who : `${who} with a client id matching ${quote(rule.clientId)}`
}

function describeMatch(c: CompiledRule<AclRuleSpec>, q: Question, topic: string, subject: AclSubject): string {
  const shown = c.usesUser || c.usesClient ? `${quote(c.rule.topic)} (here ${quote(substituted(c, subject).join('/'))})` : quote(c.rule.topic)
  if (q.name !== null) return `its filter ${shown} matches the topic ${quote(topic)}`
  return `its filter ${shown} covers every topic the subscription ${quote(topic)} can match`
}

/**
 * The decision with the rule that made it and why, for the "try it" box and the UI. Same answer as `isAllowed`,
 * slower: it also says, when no rule matched, which rules applied to the client and why others did not.
 */
export function evaluate<R extends AclRuleSpec>(
  rules: CompiledRules<R> | readonly R[],
  subject: AclSubject,
  action: AclAction,
  topic: string,
  defaultPermission: AclPermission,
): AclDecision<R> {
  const compiled: CompiledRules<R> = Array.isArray(rules) ? compileRules(rules as readonly R[]) : (rules as CompiledRules<R>)
  const q = prepare(compiled, subject, action, topic)
  let applied = 0
  const skipped: string[] = []
  for (const c of q.rules as readonly CompiledRule<R>[]) {
    const code = notApplying(c, subject, q.bits)
    if (code !== APPLIES) {
      const why = substitutionRefusal(code, subject)
      if (why !== null) skipped.push(`rule ${c.rule.id} (position ${c.rule.position}) was skipped: ${why}`)
      continue
    }
    applied++
    if (!topicMatches(c, q, subject)) continue
    const verb = c.deny ? 'denies' : 'allows'
    return {
      allowed: !c.deny,
      decidedBy: { id: c.rule.id, position: c.rule.position },
      rule: c.rule,
      explanation: `rule ${c.rule.id} (position ${c.rule.position}) ${verb} ${action}: it applies to ${describeWho(c.rule)} ` +
        `and ${describeMatch(c, q, topic, subject)}`,
    }
  }
  const total = q.rules.length
  const none = total === 0
    ? `no rule is about ${action}`
    : `no rule matched: ${applied} of the ${total} rules about ${action} apply to this client, none with a filter that ` +
      (q.name !== null ? `matches ${quote(topic)}` : `covers ${quote(topic)}`)
  return {
    allowed: defaultPermission === 'allow',
    decidedBy: 'default',
    rule: null,
    explanation: `${none}; the default policy (aclDefault) is ${defaultPermission}${skipped.length > 0 ? `. ${skipped.join('; ')}` : ''}`,
  }
}
