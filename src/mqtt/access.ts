// The ACL as one connection meets it: may it publish to a topic, subscribe to a filter, be sent a message? Asked of
// the Authorizer (src/contracts/access.ts) with the identity authentication gave the connection. When the ACL can
// deny nothing, no question is asked. Answers per topic are cached on the connection (bounded) and dropped when the
// rules change, so a rule added later stops a subscription it forbids at its next message. Denials are counted and
// logged as a summary per connection, at most one line per LOG_EVERY_MS, never one line per packet.
import { isSysTopic } from './topics.ts'
import type { AclAction, AclSubject } from '../contracts/access.ts'
import type { Connection } from './connection.ts'
import { RC } from './codes.ts'

/** Topics whose answer one connection keeps per action; past it the cache starts over. */
const CACHE_MAX = 256
const LOG_EVERY_MS = 10_000

/** The ACL state of one connection, created at its first question. */
export class ConnectionAcl {
  readonly subject: AclSubject
  #version = -1
  #publish: Map<string, boolean> | null = null
  #receive: Map<string, boolean> | null = null
  #denied = { publish: 0, subscribe: 0, deliver: 0 }
  #lastLogAt = 0
  #unlogged = 0

  constructor(subject: AclSubject) {
    this.subject = subject
  }

  /** Per-action denial counts of this connection (shown in /api/connections). */
  get denied(): Readonly<{ publish: number; subscribe: number; deliver: number }> {
    return this.#denied
  }

  /** The cache of answers for `action` under the authorizer's current version. */
  cache(action: 'publish' | 'deliver', version: number): Map<string, boolean> {
    if (version !== this.#version) {
      this.#version = version
      this.#publish = null
      this.#receive = null
    }
    if (action === 'publish') return (this.#publish ??= new Map())
    return (this.#receive ??= new Map())
  }

  /** Count a denial; returns the summary to log now, or null while within LOG_EVERY_MS of the last line. */
  deny(what: 'publish' | 'subscribe' | 'deliver', now: number): Record<string, number> | null {
    this.#denied[what]++
    this.#unlogged++
    if (now - this.#lastLogAt < LOG_EVERY_MS) return null
    this.#lastLogAt = now
    const summary = { ...this.#denied, sinceLastLine: this.#unlogged }
    this.#unlogged = 0
    return summary
  }
}

/** The MQTT 5 reason code of an ACL refusal: Not authorized, or Unspecified error when aclRevealDenials is false. */
export function denialCode(c: Connection): number {
  return c.broker.settings.values.aclRevealDenials ? RC.notAuthorized : RC.unspecifiedError
}

/** May the connection publish to `topic`? Refusals are counted. */
export function mayPublish(c: Connection, topic: string): boolean {
  // the `$SYS/` tree is the broker's own: no client writes to it, whatever the ACL says (as in Mosquitto)
  if (topic.charCodeAt(0) === 0x24 && isSysTopic(topic)) return false
  return cached(c, 'publish', topic)
}

/** May the connection be sent a message on `topic` (through any of its subscriptions)? */
export function mayReceive(c: Connection, topic: string): boolean {
  return cached(c, 'deliver', topic)
}

/** May the connection subscribe to `filter` (a shared subscription is judged on its filter)? Not cached. */
export function maySubscribe(c: Connection, filter: string): boolean {
  const authorizer = c.broker.authorizer
  if (authorizer.allowsEverything) return true
  if (ask(c, 'subscribe', filter)) return true
  denied(c, 'subscribe', filter)
  return false
}

function cached(c: Connection, what: 'publish' | 'deliver', topic: string): boolean {
  const authorizer = c.broker.authorizer
  if (authorizer.allowsEverything) return true
  const cache = acl(c).cache(what, authorizer.version)
  let ok = cache.get(topic)
  if (ok === undefined) {
    ok = ask(c, what === 'publish' ? 'publish' : 'subscribe', topic)
    if (cache.size >= CACHE_MAX) cache.clear()
    cache.set(topic, ok)
  }
  if (!ok) denied(c, what, topic)
  return ok
}

function ask(c: Connection, action: AclAction, topic: string): boolean {
  try {
    return c.broker.authorizer.allowed(acl(c).subject, action, topic)
  } catch (err) {
    // a broken rule set must not let everything through: the question is refused, and said so
    c.broker.logger?.error({ err, clientId: c.clientId, action, topic }, 'the ACL could not answer: refused')
    return false
  }
}

function acl(c: Connection): ConnectionAcl {
  return (c.acl ??= new ConnectionAcl({ username: c.identity, clientId: c.clientId ?? '' }))
}

function denied(c: Connection, what: 'publish' | 'subscribe' | 'deliver', topic: string): void {
  const stats = c.broker.stats
  if (what === 'publish') stats.aclDeniedPublish++
  else if (what === 'subscribe') stats.aclDeniedSubscribe++
  else stats.aclDeniedDeliver++
  const summary = acl(c).deny(what, Date.now())
  if (summary !== null) {
    c.broker.logger?.info({ clientId: c.clientId, username: c.identity, action: what, topic: topic.slice(0, 200), denied: summary },
      `ACL denied ${what} of "${topic.slice(0, 200)}" for client "${c.clientId}" (denials so far: ${summary.publish} publish, ${summary.subscribe} subscribe, ${summary.deliver} deliver)`)
  }
}
