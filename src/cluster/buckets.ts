// The JetStream KV buckets of one cluster, created or opened by name: `${clusterName}_retained` (the retained
// message of every topic) and `${clusterName}_sessions` (MQTT sessions written behind by the node that holds each),
// file storage, history 1 (only the newest value of a key is kept). Keys are in ./keys.ts; a value is a JSON head and
// the raw payload after it (packValue), so that a payload is never base64-encoded.
// Deleting a key: the retained bucket writes a delete marker (the other nodes' watches must see the clear); the
// sessions bucket purges the key's messages from the stream (no marker), as nobody watches it and its entry keys
// are used once each. The values of both buckets are encoded and decoded here.
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import { isOutgoing, newSession, type Message, type QoS, type Session, type SessionEntry } from '../contracts/state.ts'
import { propertiesFromJson, propertiesToJson, willFromJson, willToJson } from '../state/codec.ts'

export interface BucketNames {
  retained: string
  sessions: string
}

export const bucketNames = (clusterName: string): BucketNames => ({
  retained: `${clusterName}_retained`,
  sessions: `${clusterName}_sessions`,
})

export interface BucketOptions {
  /** JetStream replicas of each bucket (1, 3 or 5; default 1) */
  replicas?: number
}

/** The opened buckets of one cluster and the JetStream handles their stores write through. */
export interface ClusterBuckets {
  readonly clusterName: string
  readonly names: BucketNames
  readonly retained: KV
  readonly sessions: KV
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
}

/** Create the buckets of a cluster, or open them when they exist. */
export async function openBuckets(nc: NatsConnection, clusterName: string, opts: BucketOptions = {}): Promise<ClusterBuckets> {
  const names = bucketNames(clusterName)
  const kvm = new Kvm(nc)
  const common = { history: 1, storage: 'file' as const, replicas: opts.replicas ?? 1 }
  const [retained, sessions] = await Promise.all([
    kvm.create(names.retained, { ...common, description: `MQTT retained messages of cluster ${clusterName}` }),
    // reads at CONNECT must see the last write of the node that held the session: from the stream leader
    kvm.create(names.sessions, { ...common, allow_direct: false, description: `MQTT sessions of cluster ${clusterName}` }),
  ])
  return { clusterName, names, retained, sessions, js: jetstream(nc), jsm: await jetstreamManager(nc) }
}

/**
 * Delete every bucket and stream of a cluster and everything in them (tests, benchmarks; taking a cluster down for
 * good): the streams named `KV_<cluster>_...` (its KV buckets) and `<cluster>_...`. How many were deleted.
 */
export async function destroyBuckets(nc: NatsConnection, clusterName: string): Promise<number> {
  const jsm = await jetstreamManager(nc)
  const names: string[] = []
  for await (const si of jsm.streams.list()) {
    const n = si.config.name
    if (n.startsWith(`${streamOf(clusterName)}_`) || n.startsWith(`${clusterName}_`)) names.push(n)
  }
  for (const n of names) {
    try {
      await jsm.streams.delete(n)
    } catch (err) {
      if (!/not found/i.test(String(err))) throw err
    }
  }
  return names.length
}

/** The stream that holds a bucket. */
export const streamOf = (bucket: string): string => `KV_${bucket}`

/** The subject a key of a bucket is written on (a wildcard key gives a filter). */
export const subjectOf = (bucket: string, key: string): string => `$KV.${bucket}.${key}`

/** Remove every message of a key (or of a wildcard of keys) from a bucket's stream, leaving no delete marker. */
export async function purgeKey(b: ClusterBuckets, bucket: string, key: string): Promise<number> {
  const r = await b.jsm.streams.purge(streamOf(bucket), { filter: subjectOf(bucket, key) })
  return r.purged
}

/** A value: 4 bytes of head length, the head as JSON, then the payload as is. */
export function packValue(head: object, payload: Uint8Array = EMPTY): Uint8Array {
  const json = Buffer.from(JSON.stringify(head), 'utf8')
  const out = Buffer.allocUnsafe(4 + json.length + payload.length)
  out.writeUInt32BE(json.length, 0)
  json.copy(out, 4)
  out.set(payload, 4 + json.length)
  return out
}

export function unpackValue<T>(value: Uint8Array): { head: T; payload: Buffer } {
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (buf.length < 4) throw new Error('not a packed value: shorter than its head length')
  const n = buf.readUInt32BE(0)
  if (4 + n > buf.length) throw new Error('not a packed value: the head runs past the end')
  const head = JSON.parse(buf.subarray(4, 4 + n).toString('utf8')) as T
  // a copy: the payload outlives the message buffer it came in
  return { head, payload: Buffer.from(buf.subarray(4 + n)) }
}

const EMPTY = new Uint8Array(0)

// ---- the values -------------------------------------------------------------------------------------------------------

/** The head of a retained value (t.<topic>); the payload follows it. */
interface RetainedHead {
  topic: string
  qos: QoS
  properties: string | null
  expiresAt: number
  from: string | null
  /** the node that set it */
  node: string | null
}

export function encodeRetained(m: Message, node: string | null): Uint8Array {
  const head: RetainedHead = {
    topic: m.topic, qos: m.qos, properties: propertiesToJson(m.properties), expiresAt: m.expiresAt, from: m.from, node,
  }
  return packValue(head, m.payload)
}

export function decodeRetained(value: Uint8Array): Message {
  const { head, payload } = unpackValue<RetainedHead>(value)
  return {
    topic: head.topic, payload, qos: head.qos, retain: true, properties: propertiesFromJson(head.properties),
    expiresAt: head.expiresAt, from: head.from,
  }
}

/** The value of a session record (s.<id>), all head. */
export interface SessionRecord {
  clientId: string
  /** the node that wrote it */
  node: string | null
  writtenAt: number
  expirySec: number
  disconnectedAt: number | null
  /** src/state/codec.ts willToJson */
  will: string | null
  qos2: number[]
  nextPacketId: number
  nextSeq: number
  subscriptions: Array<{ filter: string; qos: QoS; noLocal: boolean; retainAsPublished: boolean; retainHandling: number;
    subscriptionIds: number[] }>
}

/** A session's record; its subscriptions only when it outlives its connection (else only its Will is kept). */
export function encodeSessionRecord(s: Session, node: string | null, now: number): Uint8Array {
  const record: SessionRecord = {
    clientId: s.clientId,
    node,
    writtenAt: now,
    expirySec: s.expiryIntervalSec,
    disconnectedAt: s.disconnectedAt,
    will: willToJson(s.will),
    qos2: s.incomingQos2 === null ? [] : [...s.incomingQos2],
    nextPacketId: s.nextPacketId,
    nextSeq: s.nextSeq,
    subscriptions: s.expiryIntervalSec === 0 ? [] : [...s.subscriptions.values()].map((x) => ({
      filter: x.filter, qos: x.qos, noLocal: x.noLocal, retainAsPublished: x.retainAsPublished,
      retainHandling: x.retainHandling, subscriptionIds: x.subscriptionIds,
    })),
  }
  return packValue(record)
}

export const decodeSessionRecord = (value: Uint8Array): SessionRecord => unpackValue<SessionRecord>(value).head

/** The session of a record, without its entries. */
export function sessionOfRecord(r: SessionRecord): Session {
  const s = newSession(r.clientId, r.expirySec)
  s.disconnectedAt = r.disconnectedAt
  s.will = willFromJson(r.will)
  if (r.qos2.length > 0) s.incomingQos2 = new Set(r.qos2)
  s.nextPacketId = r.nextPacketId
  s.nextSeq = r.nextSeq
  for (const x of r.subscriptions) s.subscriptions.set(x.filter, { clientId: r.clientId, ...x })
  return s
}

/** The head of an entry value (e.<id>.<seq>); the message payload follows it. */
interface EntryHead {
  seq: number
  /** null: queued; otherwise in flight under this packet id */
  packetId: number | null
  stage: 'publish' | 'pubrel' | null
  dup: boolean
  qos: QoS
  retain: boolean
  subscriptionIds: number[]
  topic: string
  /** Message.id (cluster mode) */
  id?: string
  messageQos: QoS
  messageRetain: boolean
  properties: string | null
  expiresAt: number
  from: string | null
}

export function encodeEntry(e: SessionEntry): Uint8Array {
  const m = e.message
  const out = isOutgoing(e) ? e : null
  const head: EntryHead = {
    seq: e.seq, packetId: out?.packetId ?? null, stage: out?.stage ?? null, dup: out?.dup ?? false, qos: e.qos,
    retain: e.retain, subscriptionIds: e.subscriptionIds, topic: m.topic, messageQos: m.qos, messageRetain: m.retain,
    properties: propertiesToJson(m.properties), expiresAt: m.expiresAt, from: m.from, ...(m.id !== undefined && { id: m.id }),
  }
  return packValue(head, m.payload)
}

/** A queued entry (no packet id) or an in-flight one. */
export function decodeEntry(value: Uint8Array): SessionEntry {
  const { head: h, payload } = unpackValue<EntryHead>(value)
  const message: Message = {
    topic: h.topic, payload, qos: h.messageQos, retain: h.messageRetain, properties: propertiesFromJson(h.properties),
    expiresAt: h.expiresAt, from: h.from, ...(h.id !== undefined && { id: h.id }),
  }
  if (h.packetId === null) return { seq: h.seq, message, qos: h.qos, retain: h.retain, subscriptionIds: h.subscriptionIds }
  return {
    seq: h.seq, packetId: h.packetId, message, qos: h.qos as 1 | 2, retain: h.retain, dup: h.dup,
    subscriptionIds: h.subscriptionIds, stage: h.stage === 'pubrel' ? 'pubrel' : 'publish', unsent: false,
  }
}
