// SUBSCRIBE: add each subscription (or refuse its filter: invalid, over the topic limits, forbidden by the ACL, over
// maxSubscriptionsPerClient), SUBACK, then the retained messages it asks for, paced by the connection's output.
import type { ISubscribePacket } from 'mqtt-packet'
import type { Connection } from '../connection.ts'
import type { Match, Subscription } from '../router.ts'
import type { Message } from '../message.ts'
import { isValidTopicFilter, parseSharedFilter, topicOverLimits } from '../topics.ts'
import { NO_IDS } from '../outgoing.ts'
import { sendRetained, type RetainedDelivery } from '../delivery.ts'
import { denialCode, maySubscribe } from '../access.ts'
import { RC, V3_SUBACK_FAILURE } from '../codes.ts'

export function handleSubscribe(c: Connection, p: ISubscribePacket): void {
  // [MQTT-3.8.3-3] at least one filter
  if (p.subscriptions.length === 0) return c.protocolError('SUBSCRIBE without any topic filter')
  const v5 = c.protocolVersion === 5
  const subId = v5 ? p.properties?.subscriptionIdentifier : undefined
  if (subId !== undefined && (typeof subId !== 'number' || subId === 0)) {
    return c.protocolError('SUBSCRIBE with an invalid Subscription Identifier') // v5 3.8.2.1.2
  }
  const session = c.session!
  const limits = c.values
  const list = p.subscriptions
  // a filter repeated in one SUBSCRIBE is one subscription, taken where it first appears with the options of its
  // last entry (each replaces the one before it [MQTT-3.8.4-3])
  const first = new Map<string, number>()
  const last = new Map<string, number>()
  for (let i = 0; i < list.length; i++) {
    if (!first.has(list[i].topic)) first.set(list[i].topic, i)
    last.set(list[i].topic, i)
  }
  const granted: number[] = []
  const withRetained: Subscription[] = []
  for (let i = 0; i < list.length; i++) {
    if (first.get(list[i].topic) !== i) {
      granted.push(-1) // a repeat: the same code as where it first appears
      continue
    }
    const r = list[last.get(list[i].topic)!]
    const shared = parseSharedFilter(r.topic)
    const valid = shared === undefined ? false : shared === null ? isValidTopicFilter(r.topic) : true
    if (!valid || topicOverLimits(r.topic, limits) !== null) {
      granted.push(v5 ? RC.topicFilterInvalid : V3_SUBACK_FAILURE) // [MQTT-3.8.4-5] each filter as its own SUBSCRIBE: refuse the filter, not the packet
      continue
    }
    if (shared && v5 && r.nl) return c.protocolError('No Local set on a shared subscription') // [MQTT-3.8.3-4]
    if (!maySubscribe(c, shared ? shared.filter : r.topic)) {
      granted.push(v5 ? denialCode(c) : V3_SUBACK_FAILURE) // refused by the ACL: this filter only
      continue
    }
    if (!session.subscriptions.has(r.topic) && session.subscriptions.size >= limits.maxSubscriptionsPerClient) {
      granted.push(v5 ? RC.quotaExceeded : V3_SUBACK_FAILURE) // maxSubscriptionsPerClient: this filter only
      continue
    }
    const sub: Subscription = {
      clientId: session.clientId,
      filter: r.topic,
      qos: r.qos,
      noLocal: v5 && r.nl === true,
      retainAsPublished: v5 && r.rap === true,
      retainHandling: v5 ? (r.rh ?? 0) : 0,
      subscriptionIds: subId === undefined ? NO_IDS : [subId],
    }
    const isNew = c.broker.subscribe(session, sub)
    granted.push(r.qos) // [MQTT-3.9.3-1] one code per filter, in order
    // Retain Handling 0: send retained, 1: only for a new subscription, 2: never; never to shared subscriptions
    if (shared === null && (sub.retainHandling === 0 || (sub.retainHandling === 1 && isNew))) withRetained.push(sub)
  }
  for (let i = 0; i < granted.length; i++) if (granted[i] === -1) granted[i] = granted[first.get(list[i].topic)!]
  c.write({ cmd: 'suback', messageId: p.messageId, granted })
  if (withRetained.length === 0) return
  // found through the retained store's index, then sent as the connection's output takes them; a store read that
  // waits holds the packets after this SUBSCRIBE, so a PUBLISH that follows never overtakes its retained messages
  const now = Date.now()
  const found = withRetained.map((sub) => c.broker.retainedFor(sub.filter, now))
  if (!found.some((f) => f instanceof Promise)) return sendRetained(c, dueFor(withRetained, found as Message[][]))
  c.inbound.hold()
  Promise.all(found).then(
    (lists) => c.inbound.release(() => sendRetained(c, dueFor(withRetained, lists))),
    (err: unknown) => c.inbound.release(() =>
      c.broker.logger?.error({ err, clientId: c.clientId }, 'reading retained messages failed: none sent for this SUBSCRIBE')),
  )
}

function dueFor(subs: Subscription[], lists: Message[][]): RetainedDelivery[] {
  const due: RetainedDelivery[] = []
  for (let i = 0; i < subs.length; i++) {
    const match: Match = { ...subs[i], noLocal: false, retainAsPublished: true }
    for (const message of lists[i]) due.push({ message, match })
  }
  return due
}
