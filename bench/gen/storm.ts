// The reconnect storm, generator side (`npm run bench -- --scenarios=storm`): a share of a fleet of WebSocket
// clients that all open at the same moment, as a fleet does after a network blip or a deploy. The bench
// (bench/run.ts) starts several generator processes, each with its share, and gives them one start time.
//
// Each client: WebSocket upgrade (subprotocol mqtt), CONNECT (MQTT 3.1.1, clean session, keepalive 60), CONNACK. An
// attempt that fails is tried again after `retryMs` (MQTT.js's default reconnect period is 1 s), until the client
// is connected or `giveUpMs` after the start has passed. Its first attempt's outcome is counted by kind:
//  - connected:  CONNACK 0
//  - refused:    the broker said no: HTTP status instead of the upgrade, a CONNACK with an error code, or the TCP
//                connection reset or refused before the upgrade
//  - timedOut:   the broker closed the WebSocket after the upgrade and before any CONNACK (a connect timeout, or
//                another reason to close it while it waited)
//  - noAnswer:   nothing came back within the client's own bound (30 s, MQTT.js's default connectTimeout)
// Connected clients stay connected (idle) until the bench says stop, so the broker holds the whole fleet at the end.
// The generator reports the phase `settled` (every client connected or given up), then its result after stop.
import { performance } from 'node:perf_hooks'
import { BenchClient } from '../lib/wsclient.ts'
import { sleep } from '../lib/proc.ts'
import type { Result } from './scenarios.ts'

export interface ReconnectStormJob {
  scenario: 'reconnect-storm'
  url: string
  pid: number
  /** how many clients this generator opens, and their client ids (`${idPrefix}${i}`) */
  clients: number
  idPrefix: string
  /** epoch ms: every generator starts its clients then */
  startAt: number
  /** a client still not connected this long after the start gives up */
  giveUpMs: number
  /** wait between a failed attempt and the next */
  retryMs: number
  /** the client's own bound on one attempt (upgrade and CONNACK) */
  attemptTimeoutMs: number
  /** the keepalive in the CONNECT (s) */
  keepalive: number
}

export type FirstOutcome = 'connected' | 'refused' | 'timedOut' | 'noAnswer'
export const FIRST_OUTCOMES: readonly FirstOutcome[] = ['connected', 'refused', 'timedOut', 'noAnswer']

/** The kind of a failed attempt, from the error the bench client gives. */
export function outcomeOf(err: Error): Exclude<FirstOutcome, 'connected'> {
  const m = err.message
  if (/^closed before CONNACK/.test(m)) return 'timedOut'
  if (/^no CONNACK|handshake has timed out|timed out/i.test(m)) return 'noAnswer'
  return 'refused' // upgrade refused: HTTP n, CONNACK n, ECONNRESET, ECONNREFUSED, socket hang up
}

let stopRequested = false
/** The bench's `{ stop: true }` (bench/gen/main.ts): let the clients go and report. */
export function requestStormStop(): void { stopRequested = true }

export async function reconnectStorm(job: ReconnectStormJob, notify: (phase: string) => void): Promise<Result> {
  const first: Record<FirstOutcome, number> = { connected: 0, refused: 0, timedOut: 0, noAnswer: 0 }
  const firstErrors = new Map<string, number>()
  /** ms from the start to each client's CONNACK (of the attempt that succeeded) */
  const connectedAfter: number[] = []
  const open: BenchClient[] = []
  let attempts = 0
  let givenUp = 0
  const deadline = job.startAt + job.giveUpMs

  async function client(i: number): Promise<void> {
    const clientId = `${job.idPrefix}${i}`
    for (let n = 0; ; n++) {
      attempts++
      const left = deadline - Date.now()
      try {
        const c = await BenchClient.connect(job.url, clientId, { timeoutMs: Math.max(100, Math.min(job.attemptTimeoutMs, left)), keepalive: job.keepalive })
        connectedAfter.push(Date.now() - job.startAt)
        if (n === 0) first.connected++
        open.push(c)
        return
      } catch (err) {
        if (n === 0) {
          first[outcomeOf(err as Error)]++
          const what = (err as Error).message.replace(/\(.*\)|for \S+$/, '').trim().slice(0, 60)
          firstErrors.set(what, (firstErrors.get(what) ?? 0) + 1)
        }
        if (Date.now() + job.retryMs >= deadline) {
          givenUp++
          return
        }
        await sleep(job.retryMs)
      }
    }
  }

  await sleep(Math.max(0, job.startAt - Date.now()))
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const all: Promise<void>[] = []
  for (let i = 0; i < job.clients; i++) all.push(client(i))
  const openedAllMs = performance.now() - t0
  await Promise.all(all)
  const settledMs = Date.now() - job.startAt
  const g = process.cpuUsage(cpu0)
  notify('settled')
  // hold the fleet until the bench has read the broker, then let go at once (bounded: 60 s)
  const holdUntil = performance.now() + 60_000
  while (!stopRequested && performance.now() < holdUntil) await sleep(50)
  const stillOpen = open.filter((c) => !c.closed).length
  for (const c of open) c.destroy()
  await sleep(200)
  connectedAfter.sort((a, b) => a - b)
  const at = (p: number) => (connectedAfter.length ? connectedAfter[Math.min(connectedAfter.length - 1, Math.floor(p * connectedAfter.length))] : NaN)
  return {
    value: connectedAfter.length ? connectedAfter[connectedAfter.length - 1] : NaN,
    unit: 'ms until all connected',
    details: {
      clients: job.clients, connected: connectedAfter.length, givenUp, attempts, settledMs,
      ...Object.fromEntries(FIRST_OUTCOMES.map((k) => [`first_${k}`, first[k]])),
      firstErrors: JSON.stringify(Object.fromEntries(firstErrors)),
      p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99),
      /** how long the generator took to start every client (its own part of "at once") */
      openedAllMs: Math.round(openedAllMs),
      genCpuMs: Math.round((g.user + g.system) / 1000),
      /** connected clients still open when the bench said stop (a broker that dropped some later shows here) */
      stillOpen,
      connectedAfter: JSON.stringify(connectedAfter),
    },
  }
}
