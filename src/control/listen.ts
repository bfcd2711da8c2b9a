// The one PostgreSQL connection that LISTENs to the cluster's channels. PostgreSQL does not keep a notification for
// a listener that was away: when the connection drops (a restart, a network cut, pg_terminate_backend) it connects
// again with a growing delay, listens again and calls `onConnected`, whose catch-up finds what was missed.
import type pg from 'pg'
import type { Logger } from '../contracts/logger.ts'
import { describePgError } from './pg.ts'

export interface ListenerOptions {
  /** a new, unconnected client for each attempt */
  client: () => pg.Client
  channels: readonly string[]
  onNotify: (channel: string, payload: string) => void
  /** after every connection that listens (the first one too): catch up */
  onConnected: () => void
  log: Logger
  /** first and longest delay between attempts, ms (default 100 and 5000) */
  minDelayMs?: number
  maxDelayMs?: number
}

export interface Listener {
  /** Connects and listens; rejects when the first attempt fails (start-up reports it). */
  start(): Promise<void>
  /** listening now */
  readonly connected: boolean
  close(): Promise<void>
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`

export function createListener(o: ListenerOptions): Listener {
  const minDelay = o.minDelayMs ?? 100
  const maxDelay = o.maxDelayMs ?? 5000
  let client: pg.Client | null = null
  let connected = false
  let closed = false
  let delay = minDelay
  let retry: NodeJS.Timeout | null = null
  let lostAt = 0

  async function connect(): Promise<void> {
    const c = o.client()
    client = c
    c.on('notification', (n) => {
      try {
        o.onNotify(n.channel, n.payload ?? '')
      } catch (err) {
        o.log.error({ err, channel: n.channel }, 'a control plane notification could not be handled')
      }
    })
    // 'error' and 'end' both come when the connection is lost: one reconnect for both
    let lost = false
    const onLost = (err?: unknown) => {
      if (lost) return
      lost = true
      connected = false
      if (client === c) client = null
      c.end().catch(() => {})
      if (closed) return
      lostAt = Date.now()
      o.log.warn({ err: err === undefined ? undefined : describePgError(err) },
        'PostgreSQL LISTEN connection lost: connecting again (changes made meanwhile are caught up then)')
      schedule()
    }
    c.on('error', onLost)
    c.on('end', () => onLost())
    try {
      await c.connect()
      for (const channel of o.channels) await c.query(`LISTEN ${quoteIdent(channel)}`)
    } catch (err) {
      onLost(err)
      throw err
    }
    if (lost) throw new Error('the LISTEN connection closed while it was being set up')
    connected = true
    delay = minDelay
    if (lostAt !== 0) o.log.info({ awayMs: Date.now() - lostAt }, 'PostgreSQL LISTEN connection back: catching up')
    lostAt = 0
    o.onConnected()
  }

  function schedule() {
    if (closed || retry !== null) return
    retry = setTimeout(() => {
      retry = null
      connect().catch(() => {
        // onLost scheduled the next attempt
      })
    }, delay)
    retry.unref()
    delay = Math.min(maxDelay, delay * 2)
  }

  return {
    async start() {
      closed = false
      await connect()
    },
    get connected() {
      return connected
    },
    async close() {
      closed = true
      if (retry !== null) clearTimeout(retry)
      retry = null
      const c = client
      client = null
      connected = false
      await c?.end().catch(() => {})
    },
  }
}
