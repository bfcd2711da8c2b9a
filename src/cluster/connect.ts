// The NATS connections of a node: `main` (no echo: a node never receives its own messages back) carries messages,
// JetStream and KV; `shared` (echo on) holds the queue subscriptions of shared subscriptions, so that a node may be
// the one NATS picks for a message it published itself. Both reconnect for ever; NATS_URL may list several servers
// (a NATS cluster) separated by commas.
import { connect, type NatsConnection } from '@nats-io/transport-node'

export interface NatsLinks {
  main: NatsConnection
  shared: NatsConnection
}

/** Thrown when NATS cannot be reached at start-up: server.ts prints its message, one line naming NATS_URL. */
export class NatsUnreachableError extends Error {
  readonly code = 'ERR_NATS_UNREACHABLE'
}

/** `nats://user:secret@host` -> `nats://host`: a credential in the URL never reaches a log. */
export const redactUrl = (url: string): string => url.replace(/\/\/[^@/]*@/g, '//')

export async function connectNats(url: string, name: string, timeoutMs = 5000): Promise<NatsLinks> {
  const servers = url.split(',').map((s) => s.trim()).filter((s) => s !== '')
  const options = { servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: timeoutMs, pingInterval: 10_000 }
  let main: NatsConnection | undefined
  try {
    main = await connect({ ...options, noEcho: true })
    const shared = await connect({ ...options, name: `${name} (shared subscriptions)` })
    return { main, shared }
  } catch (err) {
    await main?.close().catch(() => {})
    const e = err as { code?: string; message?: string }
    throw new NatsUnreachableError(`NATS_URL: cannot connect to ${redactUrl(url)} (${e.code ?? e.message ?? String(err)})`)
  }
}

/**
 * Replicas for the cluster's JetStream buckets: 3 when NATS is a cluster of at least 3 servers (a bucket outlives one
 * of them), 1 on a single server. Read from the servers the first one advertises.
 */
export const replicasOf = (nc: NatsConnection): number => ((nc.info?.connect_urls?.length ?? 1) >= 3 ? 3 : 1)

/** The largest message the NATS servers take (max_payload, 1 MiB by default). */
export const maxPayloadOf = (nc: NatsConnection): number => nc.info?.max_payload ?? 1024 * 1024
