// The live-connection view of one connected client, as GET /api/connections shows it (src/contracts/connection.ts).
import type { LiveConnection } from '../contracts/connection.ts'
import type { Connection } from './connection.ts'

export function liveView(c: Connection): LiveConnection {
  return {
    id: c.id,
    transport: c.meta.transport,
    clientId: c.clientId!,
    username: c.username,
    remoteAddress: c.meta.remoteAddress,
    remotePort: c.meta.remotePort,
    userAgent: c.meta.userAgent,
    protocolVersion: c.protocolVersion,
    keepaliveSec: c.keepaliveSec,
    requestedKeepaliveSec: c.requestedKeepaliveSec ?? 0,
    keepaliveTimeoutMs: c.keepaliveTimeoutMs,
    connectedAt: new Date(c.connectedAt).toISOString(),
    lastPacketAt: new Date(c.lastPacketAt).toISOString(),
    packetsReceived: c.packetsReceived,
    packetsSent: c.packetsSent,
    subscriptions: c.session?.subscriptions.size ?? 0,
    aclDenied: c.acl === null ? { publish: 0, subscribe: 0, deliver: 0 } : { ...c.acl.denied },
    profile: c.profile,
  }
}
