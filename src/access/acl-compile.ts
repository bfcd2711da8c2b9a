// ACL rules compiled for evaluation (src/access/acl-rules.ts): sorted by position, split by action, filters split
// into levels (literal, '+', '#', or a template with %u/%c), client-id globs reduced to their cheapest test, and an
// index by first level so that a topic name is compared with the few rules that can match it. Pure.
import type { AclPermission, AclRuleAction } from './acl-schema.ts'
import { compileGlob, type Glob } from './acl-filters.ts'

/** What the evaluation reads of a rule (the store's rules carry more: comment, timestamps). */
export interface AclRuleSpec {
  id: number
  position: number
  username: string | null
  clientId: string | null
  anonymous: boolean
  topic: string
  action: AclRuleAction
  permission: AclPermission
}

/** A placeholder in a template level. */
export const USER = 0
export const CLIENT = 1
export type Placeholder = typeof USER | typeof CLIENT

/** Level kinds */
export const LITERAL = 0
export const ANY_ONE = 1
export const ANY_REST = 2
export const TEMPLATE = 3

export interface Level {
  kind: typeof LITERAL | typeof ANY_ONE | typeof ANY_REST | typeof TEMPLATE
  /** the level as written */
  text: string
  /** Literal: its first character code (-1 when empty), a cheap first test */
  first: number
  /** Template: literal pieces and placeholders, in order */
  parts: readonly (string | Placeholder)[]
}

export interface CompiledRule<R extends AclRuleSpec> {
  rule: R
  /** its index in position order */
  order: number
  username: string | null
  anonymousOnly: boolean
  /** null: any client id */
  clientId: Glob | null
  deny: boolean
  levels: readonly Level[]
  usesUser: boolean
  usesClient: boolean
  /** the placeholder the filter starts with, if any: its value must not start with '$' */
  leading: Placeholder | null
  /** the first level is '+' or '#': the rule never matches a topic starting with '$' */
  wildFirst: boolean
  /** for any client: no username, not anonymous-only, no client-id glob, no %u/%c */
  anyClient: boolean
}

/**
 * Rules of one action, and the same by their filter's first level: for a topic name only the rules whose first
 * level is that literal, or not a literal, can match, so a question reads those two short lists, not every rule.
 */
export interface ActionRules<R extends AclRuleSpec> {
  /** in position order */
  all: readonly CompiledRule<R>[]
  /** rules whose first level is a literal, by `levelHash` of it (a bucket may hold other literals: rules still check) */
  byFirstLevel: Map<number, readonly CompiledRule<R>[]>
  /** rules whose first level is '+', '#' or uses %u/%c, in position order */
  otherFirstLevel: readonly CompiledRule<R>[]
}

export interface CompiledRules<R extends AclRuleSpec = AclRuleSpec> {
  /** the rules about publishing ('publish' or 'all') */
  readonly publish: ActionRules<R>
  /** the rules about subscribing ('subscribe' or 'all') */
  readonly subscribe: ActionRules<R>
  /** how many rules deny */
  readonly denies: number
  /** some rule substitutes %u or %c */
  readonly substitutes: boolean
}

function compileLevel(text: string): Level {
  if (text === '+') return { kind: ANY_ONE, text, first: -1, parts: [] }
  if (text === '#') return { kind: ANY_REST, text, first: -1, parts: [] }
  const parts: (string | Placeholder)[] = []
  let literal = ''
  for (let i = 0; i < text.length; i++) {
    const next = text.charCodeAt(i + 1)
    if (text.charCodeAt(i) === 0x25 /* % */ && (next === 0x75 /* u */ || next === 0x63 /* c */)) {
      if (literal !== '') parts.push(literal)
      literal = ''
      parts.push(next === 0x75 ? USER : CLIENT)
      i++
    } else {
      literal += text[i]
    }
  }
  if (parts.length === 0) return { kind: LITERAL, text, first: text.length > 0 ? text.charCodeAt(0) : -1, parts }
  if (literal !== '') parts.push(literal)
  return { kind: TEMPLATE, text, first: -1, parts }
}

function compileRule<R extends AclRuleSpec>(rule: R, order: number): CompiledRule<R> {
  const levels = rule.topic.split('/').map(compileLevel)
  const placeholders = levels.flatMap((l) => l.parts.filter((p): p is Placeholder => typeof p === 'number'))
  const firstPart = levels[0].parts[0]
  const clientId = rule.clientId === null ? null : compileGlob(rule.clientId)
  return {
    rule,
    order,
    username: rule.username,
    anonymousOnly: rule.anonymous,
    clientId,
    deny: rule.permission === 'deny',
    levels,
    usesUser: placeholders.includes(USER),
    usesClient: placeholders.includes(CLIENT),
    leading: levels[0].kind === TEMPLATE && typeof firstPart === 'number' ? firstPart : null,
    wildFirst: levels[0].kind === ANY_ONE || levels[0].kind === ANY_REST,
    anyClient: rule.username === null && !rule.anonymous && clientId === null && placeholders.length === 0,
  }
}

/** A hash of s[from, to) that is always a small integer (a Map key that allocates nothing). */
export function levelHash(s: string, from: number, to: number): number {
  let h = 0
  for (let i = from; i < to; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) & 0x3fffffff
  return h
}

function indexed<R extends AclRuleSpec>(all: CompiledRule<R>[]): ActionRules<R> {
  const byFirstLevel = new Map<number, CompiledRule<R>[]>()
  const otherFirstLevel: CompiledRule<R>[] = []
  for (const c of all) {
    if (c.levels[0].kind !== LITERAL) {
      otherFirstLevel.push(c)
      continue
    }
    const key = levelHash(c.levels[0].text, 0, c.levels[0].text.length)
    const bucket = byFirstLevel.get(key)
    if (bucket === undefined) byFirstLevel.set(key, [c])
    else bucket.push(c)
  }
  return { all, byFirstLevel, otherFirstLevel }
}

/** Rules (any order) -> the form evaluation reads: sorted by position, filters split, globs reduced, indexed. */
export function compileRules<R extends AclRuleSpec>(rules: readonly R[]): CompiledRules<R> {
  const all = [...rules].sort((a, b) => a.position - b.position).map((r, i) => compileRule(r, i))
  return {
    publish: indexed(all.filter((c) => c.rule.action !== 'subscribe')),
    subscribe: indexed(all.filter((c) => c.rule.action !== 'publish')),
    denies: all.filter((c) => c.deny).length,
    substitutes: all.some((c) => c.usesUser || c.usesClient),
  }
}
