// Words for a human: what an operator can do about each kind of failure. Details (what happened) are written
// where the failure is detected; the hints live here so that they read as one voice and name the settings.
import type { SettingsValues } from '../contracts/settings.ts'

export const hints = {
  connectTimeoutSilent: (s: SettingsValues) =>
    `the client opened the WebSocket but sent no MQTT bytes within connectTimeoutMs (${s.connectTimeoutMs} ms): ` +
    'check that it speaks MQTT over WebSocket, or a proxy holding its frames; raise connectTimeoutMs for very slow links',
  connectTimeoutPartial: (s: SettingsValues) =>
    `a slow or lossy link delivered the CONNECT too slowly; raise connectTimeoutMs (now ${s.connectTimeoutMs} ms)`,
  closedBeforeConnect:
    'the client or a proxy closed the socket before its CONNECT was complete: check the client log, proxy timeouts and TLS/WebSocket termination',
  keepaliveTimeout: (s: SettingsValues) =>
    'the client went silent (network loss, a sleeping device, a proxy dropping idle WebSockets): ' +
    `raise keepaliveMultiplier (now ${s.keepaliveMultiplier}) for jittery links, or lower the client's keepalive below the proxy's idle timeout`,
  connectionLost:
    'the client or the network dropped the socket without DISCONNECT: check the network path and the idle timeouts of proxies in between',
  protocolError:
    'a client library bug or something that is not an MQTT client on the MQTT path: check the client library and its protocol version',
  textFrame: 'the client sends WebSocket text frames: configure it to send binary frames (MQTT over WebSocket needs them)',
  packetTooLarge: (s: SettingsValues) =>
    `raise maxPacketSize (now ${s.maxPacketSize} bytes) if such messages are expected, or have the client send smaller ones`,
  serverFull: (s: SettingsValues) =>
    `the broker holds maxConnections (${s.maxConnections}) clients: raise maxConnections or find clients that connect too often`,
  zeroKeepalive:
    'the client asks for no keepalive while allowZeroKeepalive is false: set a keepalive in the client, move it to MQTT 5, or set allowZeroKeepalive to true',
  keepaliveTooLong: (s: SettingsValues) =>
    `the client asks for a keepalive above maxKeepaliveSec (${s.maxKeepaliveSec}): lower the client's keepalive, move it to MQTT 5, or raise maxKeepaliveSec`,
  badClientId: 'the client sent an empty client id with a persistent session (clean session 0): give it a client id',
  unsupportedVersion: 'the client speaks an MQTT version this broker does not (3.1, 3.1.1 and 5.0 are served): configure its protocol version',
  authentication: 'the client asks for enhanced authentication, which this broker does not offer: remove the authentication method from the client',
  takenOver:
    'two clients share one client id, or a client reconnected before the broker saw its old connection drop: give each client a unique id',
  /** auth_failed, by why the credentials were refused */
  authFailed: {
    anonymous_not_allowed: 'the client sent no username (or one that is not a known MQTT user) while allowAnonymous is false: give it the username and password of an MQTT user (/api/mqtt-users), or set allowAnonymous to true',
    unknown_user: 'the username is not a known MQTT user: create it (/api/mqtt-users) or fix the client\'s username',
    wrong_password: 'the password did not match: fix the client\'s password or set a new one for the user (PATCH /api/mqtt-users/:username)',
    user_disabled: 'the MQTT user is disabled: enable it (PATCH /api/mqtt-users/:username {"enabled": true}) if the client should connect',
    throttled: 'too many failed logins came from this address: a misconfigured client retrying, or someone guessing passwords; fix the client, the refusal ends by itself',
    busy: 'too many logins were waiting for their password check (a reconnect storm or a password-guessing flood): the client may retry',
  },
  slowConsumer: (s: SettingsValues) =>
    `the client stopped reading what it was sent (a stalled app, a full network path, or a client that only publishes): fix the client, or raise maxOutputBytes (now ${s.maxOutputBytes}) or slowConsumerTimeoutMs (now ${s.slowConsumerTimeoutMs} ms) for clients that pause on purpose`,
  tooManySessions: (s: SettingsValues) =>
    `the broker holds maxSessions (${s.maxSessions}) sessions: raise maxSessions, lower maxSessionExpirySec (now ${s.maxSessionExpirySec} s) so that abandoned sessions end sooner, or find clients that connect with ever new client ids`,
  topicLimits: (s: SettingsValues) =>
    `topics may have at most maxTopicLevels (${s.maxTopicLevels}) levels and maxTopicLength (${s.maxTopicLength}) bytes: shorten the client's topics or raise the limits`,
  pendingConnects: (s: SettingsValues) =>
    `more connections were waiting for their CONNECT than maxPendingConnects (${s.maxPendingConnects}): a flood of sockets that open and stay silent, or a reconnect storm; raise maxPendingConnects if real clients are this many`,
  willNotAllowed: 'the ACL does not let this client publish to its Will topic: change the Will topic, or add an ACL rule allowing it (/api/acl)',
  brokerStalled: (lagMs: number) =>
    `the broker itself was slow at the time (its event loop stalled for up to ${lagMs} ms; that time was not counted against the client): if this repeats, the broker is the slow side (CPU, a reconnect storm, a blocking task), not the client.`,
  sessionStore: 'the session store did not answer: see the broker log for its error; the client may retry',
  serveTimeout: 'the broker was the slow side, not the client: its password checks were queued (a reconnect storm), or in cluster mode JetStream did not answer (a NATS server lost, a leader being elected); see the broker log; the client may retry',
  websocket: 'a WebSocket-level error: check the client library, proxies in between, and the path and subprotocol it uses',
} as const

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

/** "17 of 41 bytes of its CONNECT", "no bytes", "2 bytes (the CONNECT length was not yet readable)" */
export function connectProgress(received: number, expected: number | null): string {
  if (received === 0) return 'no bytes'
  if (expected === null) return `${plural(received, 'byte')} (too few to read the packet length)`
  return `${received} of ${plural(expected, 'byte')} of its CONNECT`
}
