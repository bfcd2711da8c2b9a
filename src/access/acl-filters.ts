// MQTT topic filters as text, for the ACL: what makes one valid (a rule's, a topic name, a subscription), the
// `$share/group/` prefix, whether one filter covers another, and client-id globs. Pure.

const DOLLAR = 0x24
const PLUS = 0x2b
const HASH = 0x23
const STAR = 0x2a
const QUESTION = 0x3f

// ---- validity --------------------------------------------------------------------------------------------------

/** What is wrong with a topic filter (null: nothing). Levels split on '/'; `+` and `#` alone on their level. */
function filterProblem(filter: string): string | null {
  if (filter.length === 0) return 'must not be empty'
  if (filter.includes('\u0000')) return 'must not contain U+0000'
  if (Buffer.byteLength(filter) > 65535) return 'must be at most 65535 bytes (UTF-8)'
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return "'#' must be a whole level and the last"
    if (level.includes('+') && level !== '+') return "'+' must be a whole level"
  }
  return null
}

/** What is wrong with a rule's topic (null: nothing): a topic filter in which `%u` and `%c` may stand in a level. */
export function ruleTopicProblem(topic: string): string | null {
  if (topic.startsWith('$share/')) return 'a rule names topics, not a shared subscription: write the filter without $share/group/'
  const levels = topic.split('/')
  if (levels.some((l) => (l.includes('%u') || l.includes('%c')) && (l.includes('+') || l.includes('#')))) {
    return "'%u' and '%c' cannot share a level with a wildcard"
  }
  return filterProblem(topic)
}

/** What is wrong with a topic name (null: nothing). */
export function topicNameProblem(topic: string): string | null {
  if (topic.includes('+') || topic.includes('#')) return "a topic name has no wildcards ('+', '#')"
  return filterProblem(topic)
}

/** `$share/group/filter` -> filter; anything else as it is. */
export function unshared(filter: string): string {
  if (!filter.startsWith('$share/')) return filter
  const slash = filter.indexOf('/', 7)
  return slash < 0 ? filter : filter.slice(slash + 1)
}

/** What is wrong with a subscription filter, `$share/group/filter` included (null: nothing). */
export function subscriptionProblem(filter: string): string | null {
  if (filter.startsWith('$share/')) {
    const slash = filter.indexOf('/', 7)
    const group = slash < 0 ? '' : filter.slice(7, slash)
    if (group === '' || group.includes('+') || group.includes('#')) return 'a shared subscription is $share/{group}/{filter}, the group without wildcards'
  }
  return filterProblem(unshared(filter))
}

// ---- filter against filter -------------------------------------------------------------------------------------

const isWild = (level: string) => level === '+' || level === '#'
const isDollar = (level: string) => level.charCodeAt(0) === DOLLAR

/** Whether filter `r` matches every topic filter `s` can match. */
export function covers(r: readonly string[], s: readonly string[]): boolean {
  // s's topics all start with '$' when its first level does; r then matches none of them if it starts with a wildcard
  if (isWild(r[0]) && isDollar(s[0])) return false
  for (let i = 0; ; i++) {
    if (i < r.length && r[i] === '#') return true
    if (i === s.length) return i === r.length
    if (i === r.length || s[i] === '#') return false
    if (s[i] === '+' ? r[i] !== '+' : r[i] !== '+' && r[i] !== s[i]) return false
  }
}

/** A subscription filter with a wildcard (`+` or `#`), as opposed to a topic name (a delivery, or a plain filter). */
export function hasWildcard(topic: string): boolean {
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i)
    if (c === PLUS || c === HASH) return true
  }
  return false
}

// ---- client-id globs -------------------------------------------------------------------------------------------

/** Glob kinds: how a client-id glob is tested, cheapest first. */
const EXACT = 0
const PREFIX = 1
const GENERAL = 2

/** A client-id glob, compiled: `*` any run, `?` one character (a surrogate pair counts as one), else literal. */
export interface Glob {
  kind: typeof EXACT | typeof PREFIX | typeof GENERAL
  /** EXACT: the id; PREFIX: what the id starts with; GENERAL: the glob */
  text: string
}

/** A glob -> its cheapest test; null for `*` (any id). */
export function compileGlob(glob: string): Glob | null {
  if (glob.includes('?')) return { kind: GENERAL, text: glob }
  const star = glob.indexOf('*')
  if (star < 0) return { kind: EXACT, text: glob }
  if (/^\**$/.test(glob)) return null
  if (star === glob.length - 1) return { kind: PREFIX, text: glob.slice(0, -1) }
  return { kind: GENERAL, text: glob }
}

export function globMatches(g: Glob, s: string): boolean {
  return g.kind === EXACT ? s === g.text : g.kind === PREFIX ? s.startsWith(g.text) : wildcardMatches(g.text, s)
}

/** Width of the character at `i` in UTF-16 units: 2 for a surrogate pair. */
const charWidth = (s: string, i: number): number => {
  const c = s.charCodeAt(i)
  if (c < 0xd800 || c > 0xdbff || i + 1 >= s.length) return 1
  const d = s.charCodeAt(i + 1)
  return d >= 0xdc00 && d <= 0xdfff ? 2 : 1
}

/** Greedy glob matching with one backtrack point: linear for most globs, no regular expression, no allocation. */
function wildcardMatches(glob: string, s: string): boolean {
  let g = 0
  let i = 0
  let starAt = -1
  let resumeAt = 0
  while (i < s.length) {
    if (g < glob.length) {
      const c = glob.charCodeAt(g)
      if (c === STAR) {
        starAt = g++
        resumeAt = i
        continue
      }
      if (c === QUESTION) {
        g++
        i += charWidth(s, i)
        continue
      }
      if (c === s.charCodeAt(i)) {
        g++
        i++
        continue
      }
    }
    if (starAt < 0) return false
    // let the last '*' take one more character and retry from there
    g = starAt + 1
    resumeAt += charWidth(s, resumeAt)
    i = resumeAt
  }
  while (g < glob.length && glob.charCodeAt(g) === STAR) g++
  return g === glob.length
}
