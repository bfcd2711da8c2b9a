// Timeout profiles, compiled once per settings version: which profile applies to a connection, and the values it
// then runs on (the global values with the profile's overrides, one frozen object per profile and version).
// Two stages: when the socket opens (transport, address, Origin, User-Agent, subprotocol, path: decides
// connectTimeoutMs; a profile with clientId or username conditions is skipped here), and at CONNECT (the same plus
// client id and username: decides the keepalive values and the quotas). First match in the listed order wins; no
// match = the global values. Matching is a few Set lookups, a BlockList check and bounded glob scans per profile.
import { BlockList, isIPv4 } from 'node:net'
import type { ConnectionMeta } from '../contracts/connection.ts'
import type { SettingsValues, TimeoutProfile } from '../contracts/settings.ts'
import { parseCidr } from '../contracts/cidr.ts'

/** The profile a connection runs under (null = none, the global values) and its effective values. */
export interface Resolved {
  readonly profile: string | null
  readonly values: Readonly<SettingsValues>
}

/** Who a client is at CONNECT: its client id and the username authentication accepted (null = anonymous). */
export interface ConnectIdentity {
  clientId: string
  username: string | null
}

type Condition = (meta: ConnectionMeta, who: ConnectIdentity | null) => boolean

interface Compiled extends Resolved {
  readonly profile: string
  /** no clientId or username condition: the profile can apply before CONNECT */
  readonly beforeConnect: boolean
  readonly conditions: readonly Condition[]
}

export class ProfileSet {
  readonly global: Resolved
  /** the largest connectTimeoutMs any connection may get before its headers are read (the HTTP upgrade's bound) */
  readonly largestConnectTimeoutMs: number
  /** the largest maxPacketSize any connection may get (a transport's own message limit) */
  readonly largestMaxPacketSize: number
  readonly #profiles: readonly Compiled[]
  readonly #byName: ReadonlyMap<string, Resolved>

  constructor(values: Readonly<SettingsValues>) {
    this.global = { profile: null, values }
    this.#profiles = values.profiles.map((p) => compile(p, values))
    this.#byName = new Map(this.#profiles.map((p) => [p.profile, p]))
    this.largestConnectTimeoutMs = Math.max(values.connectTimeoutMs,
      ...this.#profiles.filter((p) => p.beforeConnect).map((p) => p.values.connectTimeoutMs))
    this.largestMaxPacketSize = Math.max(values.maxPacketSize, ...this.#profiles.map((p) => p.values.maxPacketSize))
  }

  /** Stage 1, when the socket opens: only what the transport knows. */
  beforeConnect(meta: ConnectionMeta): Resolved {
    for (const p of this.#profiles) if (p.beforeConnect && holds(p, meta, null)) return p
    return this.global
  }

  /** Stage 2, at CONNECT: the client id and the authenticated username too. */
  atConnect(meta: ConnectionMeta, who: ConnectIdentity): Resolved {
    for (const p of this.#profiles) if (holds(p, meta, who)) return p
    return this.global
  }

  /** A profile by name (an offline session's last one); the global values when there is none of that name now. */
  named(name: string | null): Resolved {
    return name === null ? this.global : (this.#byName.get(name) ?? this.global)
  }
}

function holds(p: Compiled, meta: ConnectionMeta, who: ConnectIdentity | null): boolean {
  for (const c of p.conditions) if (!c(meta, who)) return false
  return true
}

function compile(p: TimeoutProfile, global: Readonly<SettingsValues>): Compiled {
  const m = p.match
  const conditions: Condition[] = []
  if (m.transport !== undefined) {
    const kinds = new Set<string>(m.transport)
    conditions.push((meta) => kinds.has(meta.transport))
  }
  if (m.cidr !== undefined) {
    const blocks = addressBlocks(m.cidr)
    conditions.push((meta) => meta.remoteAddress !== null && inBlocks(blocks, meta.remoteAddress))
  }
  if (m.origin !== undefined) {
    const test = globs(m.origin, true)
    conditions.push((meta) => meta.origin !== null && test(meta.origin))
  }
  if (m.userAgent !== undefined) {
    const test = globs(m.userAgent)
    conditions.push((meta) => meta.userAgent !== null && test(meta.userAgent))
  }
  if (m.subprotocol !== undefined) {
    const test = globs(m.subprotocol)
    conditions.push((meta) => meta.subprotocol !== null && test(meta.subprotocol))
  }
  if (m.path !== undefined) {
    const test = globs(m.path)
    conditions.push((meta) => meta.path != null && test(meta.path))
  }
  if (m.clientId !== undefined) {
    const test = globs(m.clientId)
    conditions.push((_meta, who) => who !== null && test(who.clientId))
  }
  if (m.username !== undefined) {
    const test = globs(m.username)
    conditions.push((_meta, who) => who !== null && who.username !== null && test(who.username))
  }
  return {
    profile: p.name,
    values: Object.freeze({ ...global, ...p.overrides }),
    beforeConnect: m.clientId === undefined && m.username === undefined,
    conditions,
  }
}

// ---- addresses ---------------------------------------------------------------------------------------------------

function addressBlocks(cidrs: readonly string[]): BlockList {
  const list = new BlockList()
  for (const text of cidrs) {
    const c = parseCidr(text) // the store refused any that is not a block; one that slipped through matches nothing
    if (c !== null) list.addSubnet(c.address, c.prefix, c.family)
  }
  return list
}

const MAPPED_V4 = '::ffff:'

/** An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d: it is checked as the IPv4 address it is. */
function inBlocks(list: BlockList, address: string): boolean {
  if (isIPv4(address)) return list.check(address, 'ipv4')
  if (address.toLowerCase().startsWith(MAPPED_V4)) {
    const v4 = address.slice(MAPPED_V4.length)
    if (isIPv4(v4) && list.check(v4, 'ipv4')) return true
  }
  try {
    return list.check(address, 'ipv6')
  } catch {
    return false // not an address (a transport that knows none)
  }
}

// ---- globs -------------------------------------------------------------------------------------------------------

/** A test for "any of these patterns": exact ones by a Set lookup, globs (* and ?) by a scan. */
function globs(patterns: readonly string[], ignoreCase = false): (text: string) => boolean {
  const norm = (s: string) => (ignoreCase ? s.toLowerCase() : s)
  const exact = new Set<string>()
  const wild: string[] = []
  for (const p of patterns) {
    if (/[*?]/.test(p)) wild.push(norm(p))
    else exact.add(norm(p))
  }
  return (text) => {
    const t = norm(text)
    if (exact.has(t)) return true
    for (const p of wild) if (globMatch(p, t)) return true
    return false
  }
}

/**
 * `*` any run of characters, `?` one character, everything else itself. No regular expression: the classic scan that
 * backtracks only to the last `*`, at most pattern length x text length steps, however the pattern is written.
 */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0
  let t = 0
  let star = -1
  let mark = 0
  while (t < text.length) {
    const c = pattern[p]
    if (c === '*') {
      star = p++
      mark = t
    } else if (p < pattern.length && (c === '?' || c === text[t])) {
      p++
      t++
    } else if (star !== -1) {
      p = star + 1
      t = ++mark
    } else {
      return false
    }
  }
  while (pattern[p] === '*') p++
  return p === pattern.length
}
