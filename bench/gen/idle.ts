// An idle fleet, generator side (`npm run bench -- --scenarios=idle`, bench/idle.ts): this generator's share of a
// large fleet of WebSocket clients that connect (a bounded number at a time), then stay connected and idle, each
// sending PINGREQ once per keepalive period, spread evenly over the period, as a fleet of real clients does. It
// reports the phase `connected` once all of its clients are in, keeps them until the bench says stop, then reports.
import { performance } from 'node:perf_hooks'
import { BenchClient, packetFrame, pool } from '../lib/wsclient.ts'
import { sleep } from '../lib/proc.ts'
import type { Result } from './scenarios.ts'

export interface IdleFleetJob {
  scenario: 'idle-fleet'
  url: string
  pid: number
  clients: number
  /** client ids `${idPrefix}${i}` */
  idPrefix: string
  /** connects in flight at a time */
  concurrency: number
  /** the keepalive in each CONNECT (s); each client pings once per this period */
  keepalive: number
  /** local addresses to connect from, in turn (127.0.0.x): one address has about 28,000 ephemeral ports */
  localAddresses: string[]
}

let stopRequested = false
/** The bench's `{ stop: true }` (bench/gen/main.ts). */
export function requestIdleStop(): void { stopRequested = true }

const PINGREQ = packetFrame({ cmd: 'pingreq' })

export async function idleFleet(job: IdleFleetJob, notify: (phase: string) => void): Promise<Result> {
  const t0 = performance.now()
  let pongs = 0
  const onPacket = (p: { cmd: string }) => { if (p.cmd === 'pingresp') pongs++ }
  const clients = await pool(Array.from({ length: job.clients }, (_, i) => i), job.concurrency, (i) =>
    BenchClient.connect(job.url, `${job.idPrefix}${i}`, {
      timeoutMs: 60_000, keepalive: job.keepalive, onPacket, localAddress: job.localAddresses[i % job.localAddresses.length],
    }))
  const connectMs = performance.now() - t0
  notify('connected')
  // one PINGREQ per client per keepalive period, spread over it: a tick every 100 ms pings the clients due
  const periodMs = job.keepalive * 1000
  const perTick = job.clients / (periodMs / 100)
  let pings = 0
  let owed = 0
  let next = 0
  const pingStart = performance.now()
  while (!stopRequested) {
    await sleep(100)
    owed += perTick
    for (; owed >= 1; owed--) {
      const c = clients[next++ % clients.length]
      if (!c.closed) { c.write(PINGREQ); pings++ }
    }
    if (performance.now() - pingStart > 30 * periodMs) break // bounded, whatever the bench does
  }
  const closedByBroker = clients.filter((c) => c.closed).length
  for (const c of clients) c.destroy()
  await sleep(200)
  return {
    value: Math.round(connectMs),
    unit: 'ms to connect all',
    details: { clients: job.clients, connectMs: Math.round(connectMs), pings, pongs, closedByBroker },
  }
}
