// CONNECT: a short list of named steps. Each step either lets the CONNECT go on or refuses it and ends the
// connection (CONNACK with a code, or a protocol error).
import { randomBytes } from 'node:crypto'
import type { IConnackPacket, IConnectPacket, QoS } from 'mqtt-packet'
import type { Connection } from '../connection.ts'
import { NEVER_EXPIRES } from '../session.ts'
import { resendInflight } from '../delivery.ts'
import { OutboundAliases } from '../aliases.ts'
import { denialCode, mayPublish } from '../access.ts'
import type { AuthOutcome } from '../../contracts/access.ts'
import { forwardedProperties, propertyProblem } from '../message.ts'
import { isValidTopicName, topicOverLimits } from '../topics.ts'
import { hints } from '../explain.ts'
import { RC, V3 } from '../codes.ts'
import { MAX_INFLIGHT, OUTBOUND_TOPIC_ALIASES, RECEIVE_MAXIMUM, TOPIC_ALIAS_MAXIMUM } from '../limits.ts'

const CONNECT_NUMBERS = ['sessionExpiryInterval', 'receiveMaximum', 'maximumPacketSize', 'topicAliasMaximum'] as const
const WILL_NUMBERS = ['willDelayInterval', 'messageExpiryInterval'] as const

interface KeepalivePolicy {
  /** seconds in force */
  keepaliveSec: number
  /** v5: tell the client with Server Keep Alive */
  tell: boolean
}

export function handleConnect(c: Connection, p: IConnectPacket): void {
  readIdentity(c, p)
  const assignedId = validate(c, p)
  if (assignedId === false) return
  const outcome = c.broker.authenticator.authenticate({
    clientId: c.clientId!,
    username: p.username ?? null,
    password: p.password === undefined ? null : Buffer.from(p.password),
    remoteAddress: c.meta.remoteAddress,
  })
  if (!(outcome instanceof Promise)) return afterAuthentication(c, p, assignedId, outcome)
  // a password check runs off the event loop: the connection stops reading and keeps its packets in order
  c.inbound.hold()
  outcome.then(
    (o) => c.inbound.release(() => afterAuthentication(c, p, assignedId, o)),
    (err: unknown) => c.inbound.release(() => afterAuthentication(c, p, assignedId,
      { ok: false, refusal: 'busy', detail: `the credentials could not be checked (${String(err)})` })),
  )
}

/** The CONNECT's remaining steps, once the client is known. */
function afterAuthentication(c: Connection, p: IConnectPacket, assignedId: string, auth: AuthOutcome): void {
  if (!authenticated(c, auth)) return
  // the client is known: its timeout profile by client id and username too decides the keepalive and quotas
  c.profileAtConnect()
  if (!willAllowed(c, p)) return
  const keepalive = keepalivePolicy(c)
  if (keepalive === null) return
  if (!checkCapacity(c)) return
  // the stored session, wherever the store keeps it: a read that waits holds the packets after the CONNECT
  const stored = c.broker.sessions.resume(c.clientId!)
  if (!(stored instanceof Promise)) return afterResume(c, p, assignedId, keepalive, stored !== undefined)
  c.inbound.hold()
  stored.then(
    (s) => {
      // the client left while its session was fetched: the session is held here now, and is looked after as offline
      if (c.phase === 'closed') c.broker.parkSession(c.clientId!)
      c.inbound.release(() => afterResume(c, p, assignedId, keepalive, s !== undefined))
    },
    (err: unknown) => c.inbound.release(() => c.reject(V3.serverUnavailable, RC.serverBusy,
      `the session of client "${c.clientId}" could not be read (${String(err)})`, hints.sessionStore)),
  )
}

/** The CONNECT's last steps, once the stored session (if any) is held here. */
function afterResume(c: Connection, p: IConnectPacket, assignedId: string, keepalive: KeepalivePolicy, exists: boolean): void {
  if (!checkSessionCapacity(c, exists)) return
  readClientLimits(c, p)
  takeOver(c)
  const sessionPresent = restoreSession(c, p)
  c.becomeConnected(keepalive.keepaliveSec)
  c.broker.register(c)
  connack(c, p, sessionPresent, keepalive, assignedId)
  c.broker.announceConnected(c, sessionPresent)
  resendInflight(c) // a resumed session: unacknowledged messages again, then what was queued while offline
}

function readIdentity(c: Connection, p: IConnectPacket): void {
  c.protocolVersion = p.protocolVersion ?? 4
  c.clientId = p.clientId
  c.username = p.username ?? null
  c.requestedKeepaliveSec = p.keepalive ?? 0
}

/** Returns the assigned client id ('' when the client chose one), or false when the CONNECT was refused. */
function validate(c: Connection, p: IConnectPacket): string | false {
  const v = c.protocolVersion
  if (v === 5 && p.properties?.authenticationMethod !== undefined) {
    c.reject(V3.notAuthorized, RC.badAuthenticationMethod,
      `the client asked for enhanced authentication "${p.properties.authenticationMethod}", which is not offered`,
      hints.authentication)
    return false
  }
  if (v !== 5 && p.password !== undefined && p.username === undefined) {
    // [MQTT-3.1.2-22] no password without a user name (3.1.1)
    c.protocolError('CONNECT with a password but no user name')
    return false
  }
  if (v === 5 && p.properties !== undefined) {
    // a repeated Receive Maximum became NaN: no bound on messages in flight, then an endless packet id search
    const bad = propertyProblem(p.properties as Record<string, unknown>, CONNECT_NUMBERS)
    if (bad !== null) {
      c.protocolError(`CONNECT with ${bad.detail}`, bad.code)
      return false
    }
  }
  if (v === 5 && (p.properties?.receiveMaximum === 0 || p.properties?.maximumPacketSize === 0)) {
    c.protocolError('CONNECT with a Receive Maximum or Maximum Packet Size of 0')
    return false
  }
  if (v === 5 && p.will?.properties !== undefined) {
    // a Will's properties are forwarded like a PUBLISH's; unreadable ones threw in the Will Delay timer
    const bad = propertyProblem(p.will.properties as Record<string, unknown>, WILL_NUMBERS)
    if (bad !== null) {
      c.protocolError(`CONNECT with a Will carrying ${bad.detail}`, bad.code)
      return false
    }
  }
  if (p.will !== undefined) {
    if ((p.will.qos ?? 0) > 2) {
      c.protocolError('CONNECT with Will QoS 3') // [MQTT-3.1.2-14]
      return false
    }
    if (!isValidTopicName(p.will.topic)) {
      c.protocolError(`CONNECT with an invalid Will topic "${p.will.topic.slice(0, 100)}"`)
      return false
    }
    const over = topicOverLimits(p.will.topic, c.broker.settings.values)
    if (over !== null) {
      c.reject(V3.notAuthorized, RC.topicNameInvalid, `CONNECT with a Will topic of ${over}`, hints.topicLimits(c.broker.settings.values))
      return false
    }
  }
  if (p.clientId.length > 0) return ''
  // An empty client id: assigned when the session is not meant to persist (3.1.1) [MQTT-3.1.3-6, -7], always in v5.
  if (v === 5 || (v === 4 && p.clean !== false)) {
    const id = `auto-${randomBytes(8).toString('hex')}`
    c.clientId = id
    return id
  }
  c.reject(V3.identifierRejected, RC.clientIdentifierNotValid,
    v === 3 ? 'the client sent an empty client id, which MQTT 3.1 does not allow'
      : 'the client sent an empty client id with clean session 0', hints.badClientId) // [MQTT-3.1.3-8]
  return false
}

/** The credentials were refused: auth_failed, CONNACK "bad username or password" or "not authorized". */
function authenticated(c: Connection, auth: AuthOutcome): boolean {
  if (auth.ok) {
    c.identity = auth.username
    return true
  }
  const [v3, v5] = auth.refusal === 'busy' ? [V3.serverUnavailable, RC.serverBusy]
    : auth.refusal === 'user_disabled' || auth.refusal === 'anonymous_not_allowed' ? [V3.notAuthorized, RC.notAuthorized]
      : [V3.badUsernameOrPassword, RC.badUsernameOrPassword]
  c.refuse('auth_failed', v3, v5, auth.detail, hints.authFailed[auth.refusal])
  return false
}

/** The Will is a PUBLISH to be: the ACL must allow its topic, or the CONNECT is refused (not authorized). */
function willAllowed(c: Connection, p: IConnectPacket): boolean {
  if (p.will === undefined || mayPublish(c, p.will.topic)) return true
  c.reject(V3.notAuthorized, denialCode(c),
    `the ACL does not allow client "${c.clientId}" to publish its Will to "${p.will.topic.slice(0, 200)}"`, hints.willNotAllowed)
  return false
}

/** maxKeepaliveSec, serverKeepaliveSec and allowZeroKeepalive: MQTT 5 is told, MQTT 3.x is refused. */
function keepalivePolicy(c: Connection): KeepalivePolicy | null {
  const cfg = c.values
  const asked = c.requestedKeepaliveSec ?? 0
  if (c.protocolVersion === 5) {
    // [MQTT-3.2.2-21] the client uses the Server Keep Alive the CONNACK carries
    if (cfg.serverKeepaliveSec !== null) return { keepaliveSec: cfg.serverKeepaliveSec, tell: true }
    if (asked === 0 && !cfg.allowZeroKeepalive) return { keepaliveSec: cfg.maxKeepaliveSec, tell: true }
    if (asked > cfg.maxKeepaliveSec) return { keepaliveSec: cfg.maxKeepaliveSec, tell: true }
    return { keepaliveSec: asked, tell: false }
  }
  if (asked === 0 && !cfg.allowZeroKeepalive) {
    c.reject(V3.identifierRejected, RC.implementationSpecificError,
      'the client asked for keepalive 0 (none) and allowZeroKeepalive is false', hints.zeroKeepalive)
    return null
  }
  if (asked > cfg.maxKeepaliveSec) {
    c.reject(V3.identifierRejected, RC.implementationSpecificError,
      `the client asked for keepalive ${asked} s, above maxKeepaliveSec ${cfg.maxKeepaliveSec}`, hints.keepaliveTooLong(cfg))
    return null
  }
  return { keepaliveSec: asked, tell: false }
}

/** maxConnections: a new client over it is refused; a client id already connected replaces itself. */
function checkCapacity(c: Connection): boolean {
  const b = c.broker
  const max = b.settings.values.maxConnections
  if (b.clientCount < max || b.clientConnection(c.clientId!) !== undefined) return true
  c.reject(V3.serverUnavailable, RC.quotaExceeded,
    `the broker already holds ${b.clientCount} clients (maxConnections ${max})`, hints.serverFull(b.settings.values))
  return false
}

/** v5 CONNECT properties that bound what the broker sends, and the Will. */
function readClientLimits(c: Connection, p: IConnectPacket): void {
  const props = c.protocolVersion === 5 ? p.properties : undefined
  if (props !== undefined) {
    c.sendWindow = Math.min(props.receiveMaximum ?? 65535, MAX_INFLIGHT)
    c.clientMaxPacketSize = props.maximumPacketSize ?? 0
    // aliases the broker may use towards the client: at most what it accepts [MQTT-3.1.2-26], none if 0 [MQTT-3.1.2-27]
    const aliases = Math.min(props.topicAliasMaximum ?? 0, OUTBOUND_TOPIC_ALIASES)
    if (aliases > 0) c.outboundAliases = new OutboundAliases(aliases)
  }
  if (p.will !== undefined) {
    const wp = c.protocolVersion === 5 ? p.will.properties : undefined
    c.will = {
      topic: p.will.topic,
      payload: Buffer.from(p.will.payload as Buffer),
      qos: (p.will.qos ?? 0) as QoS,
      retain: p.will.retain ?? false,
      properties: forwardedProperties(wp),
      expirySec: wp?.messageExpiryInterval,
      delaySec: wp?.willDelayInterval ?? 0,
    }
  }
}

/** [MQTT-3.1.4-2] a client id already connected: the older connection is closed (v5: DISCONNECT 0x8E). */
function takeOver(c: Connection): void {
  c.broker.clientConnection(c.clientId!)?.takenOver(c)
}

/** Clean session / clean start and session expiry; returns Session Present. */
function restoreSession(c: Connection, p: IConnectPacket): boolean {
  const clean = p.clean ?? true
  const asked = c.protocolVersion === 5 ? (p.properties?.sessionExpiryInterval ?? 0) : clean ? 0 : NEVER_EXPIRES
  const { session, present } = c.broker.openSession(c.clientId!, clean, cappedExpiry(c, asked), c.will)
  c.session = session
  return present && c.protocolVersion !== 3 // MQTT 3.1 has no Session Present flag
}

/** maxSessionExpirySec: no session outlives its connection longer (4294967295 = no limit). */
export function cappedExpiry(c: Connection, askedSec: number): number {
  const max = c.values.maxSessionExpirySec
  return max === NEVER_EXPIRES || askedSec <= max ? askedSec : max
}

/** maxSessions: a CONNECT that would start one more session is refused; resuming one is always allowed. */
function checkSessionCapacity(c: Connection, exists: boolean): boolean {
  const b = c.broker
  const max = b.settings.values.maxSessions
  if (b.sessions.size < max || exists) return true
  c.reject(V3.serverUnavailable, RC.quotaExceeded,
    `the broker already holds ${b.sessions.size} sessions (maxSessions ${max})`, hints.tooManySessions(b.settings.values))
  return false
}

function connack(c: Connection, p: IConnectPacket, sessionPresent: boolean, keepalive: KeepalivePolicy, assignedId: string): void {
  if (c.protocolVersion !== 5) {
    c.write({ cmd: 'connack', sessionPresent, returnCode: V3.accepted })
    return
  }
  const properties: NonNullable<IConnackPacket['properties']> = {
    receiveMaximum: RECEIVE_MAXIMUM,
    maximumPacketSize: c.values.maxPacketSize,
    topicAliasMaximum: TOPIC_ALIAS_MAXIMUM,
    retainAvailable: true,
    wildcardSubscriptionAvailable: true,
    subscriptionIdentifiersAvailable: true,
    sharedSubscriptionAvailable: true,
  }
  if (keepalive.tell) properties.serverKeepAlive = keepalive.keepaliveSec
  // MQTT 5 3.2.2.3.2: the server tells the client when it uses another Session Expiry Interval than it asked for
  const asked = p.properties?.sessionExpiryInterval ?? 0
  if (c.session!.expiryIntervalSec !== asked) properties.sessionExpiryInterval = c.session!.expiryIntervalSec
  if (assignedId !== '') properties.assignedClientIdentifier = assignedId // [MQTT-3.2.2-16]
  c.write({ cmd: 'connack', sessionPresent, reasonCode: RC.success, properties })
}
