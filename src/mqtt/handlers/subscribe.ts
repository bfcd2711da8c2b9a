// SUBSCRIBE: add each subscription (or refuse its filter), SUBACK, then the retained messages it asks for.
import type { ISubscribePacket } from 'mqtt-packet'
import type { Session } from '../session.ts'
import type { Match, Subscription } from '../router.ts'
import { isValidTopicFilter, parseSharedFilter } from '../topics.ts'
import { Fanout } from '../outgoing.ts'
import { RC, V3_SUBACK_FAILURE } from '../codes.ts'

const NO_IDS: number[] = []

export function handleSubscribe(s: Session, p: ISubscribePacket): void {
  // [MQTT-3.8.3-3] at least one filter
  if (p.subscriptions.length === 0) return s.protocolError('SUBSCRIBE without any topic filter')
  const v5 = s.protocolVersion === 5
  const subId = v5 ? p.properties?.subscriptionIdentifier : undefined
  if (subId !== undefined && (typeof subId !== 'number' || subId === 0)) {
    return s.protocolError('SUBSCRIBE with an invalid Subscription Identifier') // v5 3.8.2.1.2
  }
  const st = s.state!
  const granted: number[] = []
  const withRetained: Subscription[] = []
  for (const r of p.subscriptions) {
    const shared = parseSharedFilter(r.topic)
    const valid = shared === undefined ? false : shared === null ? isValidTopicFilter(r.topic) : true
    if (!valid) {
      granted.push(v5 ? RC.topicFilterInvalid : V3_SUBACK_FAILURE) // [MQTT-3.8.4-?] refuse the filter, not the packet
      continue
    }
    if (shared && v5 && r.nl) return s.protocolError('No Local set on a shared subscription') // [MQTT-3.8.3-4]
    const sub: Subscription = {
      clientId: st.clientId,
      filter: r.topic,
      qos: r.qos,
      noLocal: v5 && r.nl === true,
      retainAsPublished: v5 && r.rap === true,
      retainHandling: v5 ? (r.rh ?? 0) : 0,
      subscriptionIds: subId === undefined ? NO_IDS : [subId],
    }
    const isNew = s.broker.subscribe(st, sub)
    granted.push(r.qos) // [MQTT-3.9.3-1] one code per filter, in order
    // Retain Handling 0: send retained, 1: only for a new subscription, 2: never; never to shared subscriptions
    if (shared === null && (sub.retainHandling === 0 || (sub.retainHandling === 1 && isNew))) withRetained.push(sub)
  }
  s.write({ cmd: 'suback', messageId: p.messageId, granted })
  if (withRetained.length === 0) return
  const now = Date.now()
  for (const sub of withRetained) {
    const m: Match = { ...sub, noLocal: false, retainAsPublished: true }
    // [MQTT-3.3.1-6] retained messages matching a new subscription are sent with RETAIN set
    for (const msg of s.broker.retained.match(sub.filter, now)) s.deliver(new Fanout(msg, now), m, true)
  }
}
