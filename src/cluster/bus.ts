// The message bus between nodes on core NATS (the ClusterLink of src/contracts/cluster.ts). A node publishes each
// message it routed once, on the subject of its topic (./subjects.ts); it subscribes to the subjects of the filters its
// own clients hold (one NATS subscription per distinct filter, made on the first local subscriber and dropped with the
// last), so NATS carries a message only to the nodes that want it. Local subscribers were already served by the
// publishing node: the `main` connection has no echo. A shared subscription is a NATS queue group on the `shared`
// connection (echo on), so exactly one node of the cluster, perhaps the publisher's, gets each message for it.
// Ordering per publisher is kept: one connection, one sequence; a message matching two filters of a node arrives twice
// on that connection, one after the other, and the second copy is dropped by its sequence.
import { randomBytes } from 'node:crypto'
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import type { ClusterLink, ClusterPeer } from '../contracts/cluster.ts'
import type { Message } from '../contracts/state.ts'
import type { Logger } from '../contracts/logger.ts'
import { decodeEnvelope, encodeEnvelope, MAX_FRAME_MESSAGES, sizeOf } from './envelope.ts'
import { queueOf, subjectsOf, type Subjects } from './subjects.ts'
import { maxPayloadOf, type NatsLinks } from './connect.ts'

export interface BusStats {
  /** messages handed to NATS for the other nodes */
  sent: number
  /** messages from other nodes routed here */
  received: number
  /** second copies of a message dropped (it matched two filters of this node) */
  duplicates: number
  /** frames that were no envelope of this build */
  unreadable: number
  /** NATS subscriptions held for local filters */
  subscriptions: number
  /** messages larger than the NATS servers take (max_payload): served on this node only */
  tooLarge: number
  /** NATS messages sent: each a run of messages to one subject (./envelope.ts) */
  frames: number
}

const SHARE = /^\$share\/([^/]+)\/(.*)$/
/** a run is sent once it holds this much (far below any NATS max_payload) */
const RUN_MAX_BYTES = 64 * 1024
/** topics whose subjects are remembered (all forgotten past it) */
const SUBJECT_CACHE_MAX = 10_000

export class NatsBus implements ClusterLink {
  readonly nodeId: string
  readonly stats: BusStats = { sent: 0, received: 0, duplicates: 0, unreadable: 0, subscriptions: 0, tooLarge: 0, frames: 0 }
  readonly #main: NatsConnection
  readonly #shared: NatsConnection
  readonly #subjects: Subjects
  readonly #logger: Logger | undefined
  /** this boot of this node: a restarted node starts a new sequence */
  readonly #origin: string
  #seq = 0
  /** the last sequence routed per origin */
  readonly #lastSeq = new Map<string, number>()
  readonly #subs = new Map<string, Subscription[]>()
  readonly #subjectCache = new Map<string, [string, string]>()
  /** consecutive messages to one subject, sent as one frame at the end of the turn or when the subject changes */
  #run: { subject: string; first: number; messages: ReturnType<typeof sizeOf>[]; bytes: number } | null = null
  #sendQueued = false
  #peer: ClusterPeer | null = null
  /** messages that arrived before the broker was attached are dropped (it has no subscriber yet) */

  constructor(links: NatsLinks, opts: { nodeId: string; clusterName: string; logger?: Logger }) {
    this.nodeId = opts.nodeId
    this.#main = links.main
    this.#shared = links.shared
    this.#subjects = subjectsOf(opts.clusterName)
    this.#logger = opts.logger
    this.#origin = `${opts.nodeId}#${randomBytes(4).toString('hex')}`
  }

  /** The broker that serves what arrives; topics too long for a subject arrive on the overflow subject. */
  attach(peer: ClusterPeer): void {
    this.#peer = peer
    this.#main.subscribe(this.#subjects.overflow, { callback: (err, msg) => { if (err === null) this.#remote(msg.data) } })
  }

  publish(msg: Message): void {
    this.#seq = (this.#seq + 1) >>> 0
    // (before the broker routes it here: the entries queued for it carry the same id as on the other nodes)
    msg.id = `${this.#origin}/${this.#seq}`
    const subject = this.#subjectOf(msg.topic, msg.qos)
    const sized = sizeOf(msg)
    const run = this.#run
    if (run !== null && run.subject === subject && run.bytes + sized.size <= RUN_MAX_BYTES && run.messages.length < MAX_FRAME_MESSAGES) {
      run.messages.push(sized)
      run.bytes += sized.size
      return
    }
    // another subject: what was gathered goes first (the order of this node's messages is kept)
    this.#send()
    this.#run = { subject, first: this.#seq, messages: [sized], bytes: sized.size }
    if (!this.#sendQueued) {
      this.#sendQueued = true
      queueMicrotask(this.#sendAtEnd)
    }
  }

  /** At the end of the current turn (after a chunk's packets were all handled): the run goes. */
  readonly #sendAtEnd = (): void => {
    this.#sendQueued = false
    this.#send()
  }

  /** The run gathered so far as one frame on its subject. */
  #send(): void {
    const run = this.#run
    if (run === null) return
    this.#run = null
    try {
      const frame = encodeEnvelope(this.#origin, run.first, run.messages)
      if (frame.length > maxPayloadOf(this.#main)) {
        // (one message alone over max_payload: runs stay far below it. The first one and then one in a thousand is
        // logged: a flood of them must not flood the log)
        if (this.stats.tooLarge++ % 1000 === 0) {
          this.#logger?.warn({ topic: run.messages[0].m.topic, bytes: frame.length, maxPayload: maxPayloadOf(this.#main), count: this.stats.tooLarge },
            `a message of ${frame.length} bytes is over the NATS max_payload: delivered on this node only (raise max_payload in the NATS servers' config, or lower maxPacketSize)`)
        }
        return
      }
      this.#main.publish(run.subject, frame)
      this.stats.sent += run.messages.length
      this.stats.frames++
    } catch (err) {
      // closed or draining (shutdown): the local subscribers were served; nothing else to do
      this.#logger?.debug({ err }, 'messages could not be handed to NATS')
    }
  }

  /** The subject of a topic at a QoS, remembered for the topics published lately (a publisher repeats its topics). */
  #subjectOf(topic: string, qos: number): string {
    let pair = this.#subjectCache.get(topic)
    if (pair === undefined) {
      if (this.#subjectCache.size >= SUBJECT_CACHE_MAX) this.#subjectCache.clear()
      pair = [this.#subjects.topic(topic, 0), this.#subjects.topic(topic, 1)]
      this.#subjectCache.set(topic, pair)
    }
    return pair[qos > 0 ? 1 : 0]
  }

  interest(filter: string, present: boolean): void {
    // `$SYS/` stays per node: no node sends its own to NATS, so nothing is asked for
    if (filter.startsWith('$SYS')) return
    if (!present) {
      const subs = this.#subs.get(filter)
      if (subs === undefined) return
      this.#subs.delete(filter)
      for (const s of subs) s.unsubscribe()
      this.stats.subscriptions -= subs.length
      return
    }
    if (this.#subs.has(filter)) return
    const share = SHARE.exec(filter)
    const subs = share === null
      ? this.#subjects.filter(filter).map((subject) =>
        this.#main.subscribe(subject, { callback: (err, msg) => { if (err === null) this.#remote(msg.data) } }))
      : this.#subjects.filter(share[2]).map((subject) =>
        this.#shared.subscribe(subject, { queue: queueOf(share[1]), callback: (err, msg) => { if (err === null) this.#sharedIn(filter, msg.data) } }))
    this.#subs.set(filter, subs)
    this.stats.subscriptions += subs.length
  }

  /** Resolves once NATS has every message and subscription made so far (tests; a node's start; a take-up). */
  async flush(): Promise<void> {
    this.#send()
    await Promise.all([this.#main.flush(), this.#shared.flush()])
  }

  #remote(data: Uint8Array): void {
    const e = decodeEnvelope(data)
    if (e === null) {
      this.stats.unreadable++
      return
    }
    if (this.#lastSeq.get(e.origin) === e.seq) {
      this.stats.duplicates++
      return
    }
    this.#lastSeq.set(e.origin, e.seq)
    this.stats.received += e.messages.length
    for (const m of e.messages) {
      try {
        this.#peer?.routeRemote(m)
      } catch (err) {
        this.#logger?.error({ err, topic: m.topic }, 'routing a message from another node failed')
      }
    }
  }

  #sharedIn(filter: string, data: Uint8Array): void {
    const e = decodeEnvelope(data)
    if (e === null) {
      this.stats.unreadable++
      return
    }
    this.stats.received += e.messages.length
    for (const m of e.messages) {
      try {
        this.#peer?.routeShared(filter, m)
      } catch (err) {
        this.#logger?.error({ err, topic: m.topic }, 'routing a shared message failed')
      }
    }
  }
}
