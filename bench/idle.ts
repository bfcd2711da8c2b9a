// One node's scale (`npm run bench -- --scenarios=idle`): a large fleet of idle WebSocket clients held by one broker
// process. For each broker (fresh), once:
//  - `generators` generator processes (bench/gen/idle.ts), each from its own local address (127.0.0.<g+1>, its own
//    ephemeral ports), connect their share of the fleet, `concurrency` at a time;
//  - the time until every client is connected; the broker's RSS and (Node brokers) V8 heap after a full GC, before
//    and with the fleet, per client;
//  - the CPU cost of the fleet's keepalive: every client sends PINGREQ once per keepalive period (60 s), spread over
//    it, and the broker's CPU is read over one whole period, beside its CPU over the same time with no client.
// Ours runs with maxConnections raised to the fleet (its default is 10,000); Mosquitto and Aedes at their defaults.
// The broker holds one socket per client: its file limit must be above the fleet. The bench runs its brokers with
// the limit of the shell it is started from (`ulimit -n`); a fleet larger than that limit allows is cut to fit, and
// the table says so. BENCH_PARAMS='{"idle":{"clients":100000,"generators":8}}' after `ulimit -n 200000`.
import fs from 'node:fs'
import { performance } from 'node:perf_hooks'
import { startBroker, patchSettings, type PeerName, type BrokerHandle } from './peers/brokers.ts'
import { sleep, rssKiB, cpuMs } from './lib/proc.ts'
import { markdownTable, fmt } from './lib/report.ts'
import { genProcess, type GenProcess } from './attacks.ts'
import { collectGarbage, inspectorCall, type Result } from './gen/scenarios.ts'
import type { IdleFleetJob } from './gen/idle.ts'

export interface IdleParams {
  clients: number
  generators: number
  concurrency: number
  keepalive: number
  /** the CPU window: one keepalive period by default (every client pings once in it) */
  measureMs: number
}

/** File descriptors a broker needs besides its clients' sockets (its files, listeners, the inspector). */
const FD_MARGIN = 300

export const IDLE_DEFAULTS: IdleParams = { clients: 100_000, generators: 5, concurrency: 100, keepalive: 60, measureMs: 60_000 }

export interface IdleRun {
  peer: PeerName
  params: IdleParams
  /** the fleet asked for, and the file limit that cut it (null: not cut) */
  asked: number
  cutByFileLimit: number | null
  error?: string
  connectMs?: number
  rssBeforeKiB?: number
  rssAfterKiB?: number
  heapBeforeBytes?: number
  heapAfterBytes?: number
  /** broker CPU over measureMs: with no client, and with the fleet pinging (ms) */
  idleCpuMs?: number
  fleetCpuMs?: number
  pings?: number
  pongs?: number
  closedByBroker?: number
}

/** The soft limit on open files of this process (its children inherit it). */
export function fileLimit(): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'))
  return m === null || m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1])
}

const isNode = (p: PeerName) => p !== 'mosquitto'

async function heapUsed(b: BrokerHandle): Promise<number | undefined> {
  if (!b.inspectorUrl) return undefined
  return (await inspectorCall<{ usedSize: number }>(b.inspectorUrl, 'Runtime.getHeapUsage')).usedSize
}

async function afterGc(b: BrokerHandle): Promise<{ rss: number, heap?: number }> {
  if (b.inspectorUrl) await collectGarbage(b.inspectorUrl)
  await sleep(300)
  return { rss: rssKiB(b.pid) ?? NaN, heap: await heapUsed(b) }
}

async function idleOnce(peer: PeerName, params: IdleParams): Promise<IdleRun> {
  const limit = fileLimit()
  const clients = Math.min(params.clients, limit - FD_MARGIN)
  const run: IdleRun = { peer, params, asked: params.clients, cutByFileLimit: clients < params.clients ? limit : null }
  const b = await startBroker(peer, { inspect: isNode(peer), mosquittoDefaults: true })
  const gens: GenProcess[] = []
  try {
    // ours holds maxConnections (10,000 by default) at most: the operator raises it for a larger fleet
    if (b.httpUrl) await patchSettings(b, { maxConnections: clients + 1000 }, 'bench: idle fleet')
    await sleep(1000)
    const before = await afterGc(b)
    // the broker's own CPU over the window with no client (its timers, its $SYS round, GC)
    const c0 = cpuMs(b.pid)
    await sleep(params.measureMs)
    const c1 = cpuMs(b.pid)
    const per = Math.ceil(clients / params.generators)
    const t0 = performance.now()
    for (let g = 0; g < params.generators; g++) {
      const n = Math.min(per, clients - g * per)
      if (n <= 0) break
      const job: IdleFleetJob = {
        scenario: 'idle-fleet', url: b.wsUrl, pid: b.pid, clients: n, idPrefix: `idle-${g}-`, concurrency: params.concurrency,
        keepalive: params.keepalive, localAddresses: [`127.0.0.${g + 1}`],
      }
      gens.push(genProcess(job))
    }
    await Promise.all(gens.map((g) => g.phase('connected', 15 * 60_000)))
    const connectMs = performance.now() - t0
    await sleep(2000)
    const after = await afterGc(b)
    // one keepalive period with the fleet pinging
    const f0 = cpuMs(b.pid)
    await sleep(params.measureMs)
    const f1 = cpuMs(b.pid)
    for (const g of gens) g.stop()
    const results: Result[] = await Promise.all(gens.map((g) => g.result))
    const sum = (k: string) => results.reduce((a, r) => a + Number(r.details[k] ?? 0), 0)
    Object.assign(run, {
      connectMs: Math.round(connectMs), rssBeforeKiB: before.rss, rssAfterKiB: after.rss,
      heapBeforeBytes: before.heap, heapAfterBytes: after.heap,
      idleCpuMs: c0 !== null && c1 !== null ? c1 - c0 : NaN, fleetCpuMs: f0 !== null && f1 !== null ? f1 - f0 : NaN,
      pings: sum('pings'), pongs: sum('pongs'), closedByBroker: sum('closedByBroker'),
    })
    return run
  } catch (err) {
    return { ...run, error: (err as Error).message }
  } finally {
    for (const g of gens) g.dismiss()
    await b.stop()
    await sleep(3000)
  }
}

const clientsOf = (r: IdleRun) => Math.min(r.asked, r.cutByFileLimit === null ? r.asked : r.cutByFileLimit - FD_MARGIN)

function describe(r: IdleRun): string {
  if (r.error) return `FAILED: ${r.error.split('\n').slice(0, 4).join('\n    ')}`
  const n = clientsOf(r)
  return `${fmt(n)} clients connected in ${fmt(r.connectMs)} ms; RSS ${fmt(r.rssBeforeKiB! / 1024)} -> ${fmt(r.rssAfterKiB! / 1024)} MiB ` +
    `(${fmt((r.rssAfterKiB! - r.rssBeforeKiB!) / n)} KiB/client after a full GC); keepalive: ${fmt(r.pings)} pings, CPU ` +
    `${fmt(r.fleetCpuMs)} ms in ${r.params.measureMs / 1000} s (no client: ${fmt(r.idleCpuMs)} ms)${r.closedByBroker ? `; ${r.closedByBroker} closed by the broker` : ''}`
}

export async function runIdle(peers: PeerName[], params: Partial<IdleParams>, beforeEach: () => Promise<void> = async () => {}): Promise<IdleRun[]> {
  const p: IdleParams = { ...IDLE_DEFAULTS, ...params }
  const limit = fileLimit()
  console.log(`idle fleet: ${fmt(p.clients)} WebSocket clients, keepalive ${p.keepalive} s, from ${p.generators} generators` +
    (p.clients > limit - FD_MARGIN ? `; cut to ${fmt(limit - FD_MARGIN)} by the file limit (ulimit -n ${limit})` : ''))
  const runs: IdleRun[] = []
  for (const peer of peers) {
    await beforeEach()
    const t0 = performance.now()
    const run = await idleOnce(peer, p)
    runs.push(run)
    console.log(`  idle ${peer.padEnd(10)} ${describe(run)}  [${((performance.now() - t0) / 1000).toFixed(1)} s]`)
  }
  return runs
}

export function idleReport(runs: IdleRun[]): string {
  if (!runs.length) return ''
  const p = runs[0].params
  const n = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : fmt(x))
  const row = (label: string, f: (r: IdleRun) => string) => [label, ...runs.map((r) => (r.error ? 'failed' : f(r)))]
  const lines = [
    row('idle clients held', (r) => n(clientsOf(r))),
    row('time to connect them all (ms)', (r) => n(r.connectMs)),
    row('RSS after a full GC: none -> all (MiB)', (r) => `${n(r.rssBeforeKiB! / 1024)} -> ${n(r.rssAfterKiB! / 1024)}`),
    row('  RSS per idle client (KiB)', (r) => n((r.rssAfterKiB! - r.rssBeforeKiB!) / clientsOf(r))),
    row('  V8 heap per idle client (KiB)', (r) => (r.heapAfterBytes === undefined ? '' : n((r.heapAfterBytes - r.heapBeforeBytes!) / 1024 / clientsOf(r)))),
    row(`broker CPU over ${p.measureMs / 1000} s of keepalive pings (% of a core)`, (r) => n((r.fleetCpuMs! * 100) / p.measureMs)),
    row('  the same with no client (% of a core)', (r) => n((r.idleCpuMs! * 100) / p.measureMs)),
    row('  CPU per PINGREQ, over the no-client figure (µs)', (r) => n(((r.fleetCpuMs! - r.idleCpuMs!) * 1000) / (r.pings || NaN))),
    row('clients the broker closed meanwhile', (r) => n(r.closedByBroker)),
  ]
  const cut = runs.find((r) => r.cutByFileLimit !== null)
  const notes = [
    `${p.generators} generator processes, each from its own 127.0.0.x, connect ${p.concurrency} at a time; keepalive ${p.keepalive} s, every client`,
    `sends PINGREQ once a period, spread evenly. RSS from /proc, after a full GC through the inspector for the Node brokers;`,
    `the CPU figures are the broker's CPU time over ${p.measureMs / 1000} s (one keepalive period), with the fleet and, before it, with no client.`,
    ...(cut ? [`The fleet asked for was ${fmt(cut.asked)} clients; this machine's file limit (${fmt(cut.cutByFileLimit!)} per process, a hard limit`,
      `that only a process with CAP_SYS_RESOURCE can raise) cut it to ${fmt(clientsOf(cut))}. Where it can be raised: \`ulimit -n 200000\` first.`] : []),
  ]
  return [`## Idle fleet on one node`, markdownTable(['', ...runs.map((r) => r.peer)], lines), notes.join('\n')].join('\n\n')
}
