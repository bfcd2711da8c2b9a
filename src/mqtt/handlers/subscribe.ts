// SUBSCRIBE: add each subscription (or refuse its filter), SUBACK, then the retained messages it asks for.
import type { ISubscribePacket } from 'mqtt-packet'
import type { Connection } from '../connection.ts'
import type { Match, Subscription } from '../router.ts'
import { isValidTopicFilter, parseSharedFilter } from '../topics.ts'
import { Fanout, NO_IDS } from '../outgoing.ts'
import { deliver } from '../delivery.ts'
import { maySubscribe } from '../access.ts'
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
  const granted: number[] = []
  const withRetained: Subscription[] = []
  for (const r of p.subscriptions) {
    const shared = parseSharedFilter(r.topic)
    const valid = shared === undefined ? false : shared === null ? isValidTopicFilter(r.topic) : true
    if (!valid) {
      granted.push(v5 ? RC.topicFilterInvalid : V3_SUBACK_FAILURE) // [MQTT-3.8.4-5] each filter as its own SUBSCRIBE: refuse the filter, not the packet
      continue
    }
    if (shared && v5 && r.nl) return c.protocolError('No Local set on a shared subscription') // [MQTT-3.8.3-4]
    if (!maySubscribe(c, shared ? shared.filter : r.topic)) {
      granted.push(v5 ? RC.notAuthorized : V3_SUBACK_FAILURE) // refused by the ACL: this filter only
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
  c.write({ cmd: 'suback', messageId: p.messageId, granted })
  if (withRetained.length === 0) return
  const now = Date.now()
  for (const sub of withRetained) {
    const m: Match = { ...sub, noLocal: false, retainAsPublished: true }
    // [MQTT-3.3.1-6] retained messages matching a new subscription are sent with RETAIN set
    for (const msg of c.broker.retained.match(sub.filter, now)) deliver(c, new Fanout(msg, now), m, true)
  }
}
