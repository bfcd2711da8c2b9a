// PUBLISH from a client: topic alias, validity, then QoS 0 / 1 (PUBACK) / 2 (PUBREC, routed once per packet id).
import type { IPublishPacket } from 'mqtt-packet'
import type { Connection } from '../connection.ts'
import { expiryFrom, forwardedProperties, propertyProblem, type Message } from '../message.ts'
import { isValidTopicName, topicOverLimits } from '../topics.ts'
import { RC } from '../codes.ts'
import { encodeAck } from '../outgoing.ts'
import { denialCode, mayPublish } from '../access.ts'
import { RECEIVE_MAXIMUM, TOPIC_ALIAS_MAXIMUM } from '../limits.ts'

export function handlePublish(c: Connection, p: IPublishPacket): void {
  const v5 = c.protocolVersion === 5
  const props = v5 ? p.properties : undefined
  let topic = p.topic
  if (props !== undefined) {
    // repeated or unreadable properties would make encoding for subscribers throw (see propertyProblem)
    const bad = propertyProblem(props as Record<string, unknown>)
    if (bad !== null) return c.protocolError(`PUBLISH with ${bad.detail}`, bad.code)
  }
  if (props?.topicAlias !== undefined) {
    const alias = props.topicAlias
    // [MQTT-3.3.2-8] [MQTT-3.3.2-9] an alias of 0 or above the advertised maximum
    if (alias === 0 || alias > TOPIC_ALIAS_MAXIMUM) {
      return c.protocolError(`PUBLISH with topic alias ${alias}, outside 1..${TOPIC_ALIAS_MAXIMUM}`, RC.topicAliasInvalid)
    }
    if (topic.length === 0) {
      const known = c.topicAliases?.get(alias)
      if (known === undefined) return c.protocolError(`PUBLISH with topic alias ${alias}, which was never set`)
      topic = known
    } else {
      (c.topicAliases ??= new Map()).set(alias, topic)
    }
  }
  // [MQTT-3.3.2-2] no wildcards in a topic name; [MQTT-4.7.3-1] not empty
  if (!isValidTopicName(topic)) {
    return c.protocolError(`PUBLISH to an invalid topic name "${topic.slice(0, 100)}"`, RC.topicNameInvalid)
  }
  const over = topicOverLimits(topic, c.broker.settings.values)
  if (over !== null) return c.protocolError(`PUBLISH to a topic of ${over}: "${topic.slice(0, 100)}"`, RC.topicNameInvalid)
  if (p.qos > 0 && !p.messageId) return c.protocolError('PUBLISH at QoS > 0 with packet identifier 0') // [MQTT-2.3.1-1]
  if (p.qos === 0 && p.dup) return c.protocolError('PUBLISH at QoS 0 with the DUP flag') // [MQTT-3.3.1-2]
  if (props?.subscriptionIdentifier !== undefined) {
    return c.protocolError('PUBLISH from a client with a Subscription Identifier') // [MQTT-3.3.4-6]
  }

  const msg: Message = {
    topic,
    payload: p.payload as Buffer,
    qos: p.qos,
    retain: p.retain,
    properties: v5 ? forwardedProperties(props) : null,
    expiresAt: props === undefined ? 0 : expiryFrom(props.messageExpiryInterval, Date.now()),
    from: c.clientId,
  }
  if (p.qos === 0) {
    if (mayPublish(c, topic)) c.broker.publish(msg)
    return
  }
  const id = p.messageId!
  if (p.qos === 1) {
    if (!mayPublish(c, topic)) return refused(c, 'puback', id, denialCode(c))
    if (!c.broker.publish(msg, v5)) return refused(c, 'puback', id, RC.quotaExceeded) // a new retained topic over quota
    c.send(encodeAck('puback', id)) // [MQTT-4.3.2-2]
    return
  }
  // QoS 2: route once per packet id until PUBREL, a DUP re-send only gets the PUBREC again [MQTT-4.3.3-2]
  const session = c.session!
  const pending = (session.incomingQos2 ??= new Set())
  if (!pending.has(id)) {
    if (pending.size >= RECEIVE_MAXIMUM) {
      // [MQTT-3.3.4-9] more QoS 2 PUBLISHes waiting than the Receive Maximum the broker advertised
      return c.protocolError(`more than ${RECEIVE_MAXIMUM} QoS 2 PUBLISHes waiting for PUBREL`, RC.receiveMaximumExceeded)
    }
    if (!mayPublish(c, topic)) {
      if (v5) return refused(c, 'pubrec', id, denialCode(c)) // v5 4.3.3: an error PUBREC ends the exchange
      pending.add(id) // v3: acknowledged as usual (PUBREC, then PUBCOMP), never routed
    } else {
      if (!c.broker.publish(msg, v5)) return refused(c, 'pubrec', id, RC.quotaExceeded)
      pending.add(id)
    }
    c.broker.sessions.savedSession(session) // a DUP re-send after a restart must not be routed again
  }
  c.send(encodeAck('pubrec', id))
}

/**
 * A PUBLISH refused (by the ACL: 0x87 Not authorized, see aclRevealDenials; by the retained quota: 0x97 Quota exceeded)
 * is not delivered:
 * MQTT 5 says so in its PUBACK or PUBREC; MQTT 3.1.1 has no way to, so the publisher gets its usual
 * acknowledgement [MQTT-3.3.5-2].
 */
function refused(c: Connection, ack: 'puback' | 'pubrec', id: number, reasonCode: number): void {
  if (c.protocolVersion === 5) c.write({ cmd: ack, messageId: id, reasonCode })
  else c.send(encodeAck(ack, id))
}
