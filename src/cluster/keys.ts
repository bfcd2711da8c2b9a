// The keys of the cluster's JetStream KV buckets. A KV key allows only `[-/_=.a-zA-Z0-9]` (dots separate its
// tokens), while MQTT topics and client ids may hold any UTF-8: each one is encoded as one token, base64url without
// padding. `=` never occurs in that encoding, so it marks the two special tokens: `=` alone for the empty string, and
// `=` + the SHA-256 (base64url) of a string whose encoding would make a key longer than NATS takes in a subject.
// The layout:
//   retained bucket  t.<topic>            the retained message of a topic
//   sessions bucket  s.<client id>        one session: expiry, Will, QoS 2 ids, counters, subscriptions
//                    e.<client id>.<seq>  one queued or in-flight entry of it (seq in decimal)
import { createHash } from 'node:crypto'

/** The longest token written as is; a NATS subject must fit in one protocol line (4 KiB by default). */
export const MAX_TOKEN = 1024

/** One key token for any string. */
export function encodeToken(s: string): string {
  if (s === '') return '='
  const token = Buffer.from(s, 'utf8').toString('base64url')
  if (token.length <= MAX_TOKEN) return token
  return '=' + createHash('sha256').update(s, 'utf8').digest('base64url')
}

/** The string a token stands for; undefined for a hashed one (its record holds the string). */
export function decodeToken(token: string): string | undefined {
  if (token === '=') return ''
  if (token.startsWith('=')) return undefined
  return Buffer.from(token, 'base64url').toString('utf8')
}

export const retainedKey = (topic: string): string => `t.${encodeToken(topic)}`

/** The topic of a retained key, undefined when it was hashed (read the value's topic). */
export function topicOfRetainedKey(key: string): string | undefined {
  return key.startsWith('t.') ? decodeToken(key.slice(2)) : undefined
}

export const sessionKey = (clientId: string): string => `s.${encodeToken(clientId)}`

export const entryKey = (clientId: string, seq: number): string => `e.${encodeToken(clientId)}.${seq}`

/** Every entry key of one client (a KV filter: `*` is one token). */
export const entriesFilter = (clientId: string): string => `e.${encodeToken(clientId)}.*`

/** The seq of an entry key; NaN when the key is not one. */
export function seqOfEntryKey(key: string): number {
  const dot = key.lastIndexOf('.')
  return key.startsWith('e.') && dot > 2 ? Number(key.slice(dot + 1)) : NaN
}
