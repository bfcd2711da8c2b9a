// MQTT topics and filters as NATS subjects, so that NATS itself carries a message only to the nodes with a matching
// subscriber (a NATS cluster passes subscription interest between its servers). One topic level is one subject token:
// `a/b` -> `<cluster>.m.a.b`; `+` -> `*`; `a/#` -> `a.>` and `a` (`#` also matches its parent level); `#` -> `>`. A
// level that is not a plain token is escaped so the mapping stays one-to-one per level: `%` and anything outside
// printable ASCII, `.`, `*`, `>` become %XX (UTF-8 bytes), an empty level is a lone `%`. The receiving node matches
// the exact topic (carried in the message) with its own router, so a subject that is broader than its filter is safe.

/** NATS refuses a control line over 4 KiB (PUB/SUB with its subject): longer subjects are cut down. */
const MAX_SUBJECT = 2048

/** the common level, kept as it is */
const PLAIN = /^[A-Za-z0-9_-]+$/

export function escapeLevel(level: string): string {
  if (level === '') return '%'
  if (PLAIN.test(level)) return level
  let out = ''
  for (const byte of Buffer.from(level, 'utf8')) {
    const ch = String.fromCharCode(byte)
    out += byte > 0x20 && byte < 0x7f && ch !== '.' && ch !== '*' && ch !== '>' && ch !== '%'
      ? ch
      : '%' + byte.toString(16).toUpperCase().padStart(2, '0')
  }
  return out
}

export interface Subjects {
  /** every message of the cluster is published under `<prefix>.` */
  readonly prefix: string
  /** the subject of a topic's messages; a topic too long for one is published on `overflow` */
  topic(topic: string): string
  /** the subjects that cover a filter (without any `$share/group/`); one or two */
  filter(filter: string): string[]
  /** topics too long for a subject: every node listens here and filters itself */
  readonly overflow: string
}

export function subjectsOf(clusterName: string): Subjects {
  const prefix = `${clusterName}.m`
  const overflow = `${clusterName}.x`
  return {
    prefix,
    overflow,
    topic(topic) {
      const s = prefix + '.' + topic.split('/').map(escapeLevel).join('.')
      return s.length > MAX_SUBJECT ? overflow : s
    },
    filter(filter) {
      const levels = filter.split('/')
      const tokens: string[] = []
      let length = prefix.length
      for (let i = 0; i < levels.length; i++) {
        const l = levels[i]
        const t = l === '+' ? '*' : l === '#' ? '>' : escapeLevel(l)
        length += t.length + 1
        // a filter too long for a subject: everything under its first levels (the receiver matches exactly)
        if (length > MAX_SUBJECT) return [prefix + '.' + [...tokens, '>'].join('.'), ...(tokens.length > 0 ? [prefix + '.' + tokens.join('.')] : [])]
        tokens.push(t)
      }
      const s = prefix + '.' + tokens.join('.')
      if (levels[levels.length - 1] !== '#' || levels.length === 1) return [s]
      // `a/#` also matches `a` [MQTT-4.7.1-2]
      return [s, prefix + '.' + tokens.slice(0, -1).join('.')]
    },
  }
}

/** A NATS queue group name for a shared subscription's group (one token, escaped like a level). */
export const queueOf = (group: string): string => 'g' + escapeLevel(group)
