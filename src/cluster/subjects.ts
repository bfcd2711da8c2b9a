// MQTT topics and filters as NATS subjects, so that NATS itself carries a message only to the nodes with a matching
// subscriber (a NATS cluster passes subscription interest between its servers). The token after `<cluster>.m` is the
// message's QoS class (0, or 1 for QoS 1 and 2: those JetStream keeps a while, see `kept`), then one topic level is one
// subject token: `a/b` at QoS 1 -> `<cluster>.m.1.a.b`; a filter covers both classes: `a/+` -> `<cluster>.m.*.a.*`;
// `a/#` -> `a.>` and `a` (`#` also matches its parent level); `#` -> `>`. A
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
  /** the subject of a topic's messages at `qos`; a topic too long for one is published on the overflow subject */
  topic(topic: string, qos: number): string
  /** the subjects that cover a filter (without any `$share/group/`); one or two */
  filter(filter: string): string[]
  /** topics too long for a subject, both classes: every node listens here and filters itself */
  readonly overflow: string
  /** the subjects of QoS 1 and 2 messages, which the cluster's stream keeps for a while (./replay.ts) */
  readonly kept: string[]
}

export function subjectsOf(clusterName: string): Subjects {
  const prefix = `${clusterName}.m`
  return {
    prefix,
    overflow: `${clusterName}.x.*`,
    kept: [`${prefix}.1.>`, `${clusterName}.x.1`],
    topic(topic, qos) {
      const q = qos > 0 ? '1' : '0'
      const s = prefix + '.' + q + '.' + topic.split('/').map(escapeLevel).join('.')
      return s.length > MAX_SUBJECT ? `${clusterName}.x.${q}` : s
    },
    filter(filter) {
      const levels = filter.split('/')
      const tokens: string[] = ['*']
      let length = prefix.length + 2
      for (let i = 0; i < levels.length; i++) {
        const l = levels[i]
        const t = l === '+' ? '*' : l === '#' ? '>' : escapeLevel(l)
        length += t.length + 1
        // a filter too long for a subject: everything under its first levels (the receiver matches exactly)
        if (length > MAX_SUBJECT) return [prefix + '.' + [...tokens, '>'].join('.'), ...(tokens.length > 1 ? [prefix + '.' + tokens.join('.')] : [])]
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
