// The reconnect storm (`npm run bench -- --scenarios=storm`): a fleet of WebSocket clients (10,000 by default) opening
// at the same moment against one broker at its default settings, as after a network blip or a deploy. For each
// broker, fresh, per round:
//  - `generators` generator processes (bench/gen/storm.ts) each open their share of the fleet at one start time;
//    every client connects (upgrade, CONNECT, CONNACK), a failed attempt is tried again after 1 s, until 60 s;
//  - the figures: how many first attempts were refused or timed out (the broker closed the socket before any
//    CONNACK), the time until every client was connected (and p50/p99), the broker's CPU per connect and its RSS
//    with the whole fleet connected; for ours also what its failure log counted (connect_timeout and all reasons);
//  - peers: ours, ours:wallclock (STALL_CREDIT=off: deadlines on the wall clock, the broker's own stalls counted
//    against clients, as before the stall clock), Mosquitto and Aedes, each at its defaults.
// Parameters: BENCH_PARAMS='{"storm":{"clients":2000,"generators":2,"connectTimeoutMs":1000}}' (connectTimeoutMs is
// set on ours through its API before the storm; the peers keep theirs).
import { performance } from 'node:perf_hooks'
import { startBroker, patchSettings, type PeerName, type BrokerHandle } from './peers/brokers.ts'
import { sleep, rssKiB, cpuMs } from './lib/proc.ts'
import { markdownTable, fmt } from './lib/report.ts'
import { genProcess, type GenProcess } from './attacks.ts'
import { FIRST_OUTCOMES, type ReconnectStormJob } from './gen/storm.ts'
import type { Result } from './gen/scenarios.ts'

export interface StormParams {
  clients: number
  generators: number
  giveUpMs: number
  retryMs: number
  attemptTimeoutMs: number
  keepalive: number
  /** ours only: a connectTimeoutMs set through the API before the storm (0: the default) */
  connectTimeoutMs: number
}

export const STORM_DEFAULTS: StormParams = {
  clients: 10_000, generators: 2, giveUpMs: 60_000, retryMs: 1000, attemptTimeoutMs: 30_000, keepalive: 60, connectTimeoutMs: 0,
}

/** The brokers, in table order: ours with and without the stall clock first. */
export const STORM_PEERS: PeerName[] = ['ours', 'ours:wallclock', 'mosquitto', 'aedes']

export interface StormRun {
  round: number
  peer: PeerName
  params: StormParams
  error?: string
  clients?: number
  connected?: number
  givenUp?: number
  /** first attempts by outcome (bench/gen/storm.ts): connected, refused, timedOut, noAnswer */
  first?: Record<string, number>
  /** the errors of the first attempts that failed, by message */
  firstErrors?: Record<string, number>
  attempts?: number
  /** ms from the start until every client was connected (NaN when some gave up), p50, p99 */
  allConnectedMs?: number
  p50Ms?: number
  p99Ms?: number
  /** broker CPU from the start until the last generator settled, per connected client (µs) */
  brokerCpuUsPerConnect?: number
  brokerCpuPct?: number
  /** the broker's RSS with the fleet connected (KiB) */
  rssKiB?: number | null
  rssBeforeKiB?: number | null
  /** ours: what its failure log counted during the storm, by reason */
  failures?: Record<string, number>
  /** the generators' own CPU (ms, all of them) and how long they took to start every client (ms, the slowest) */
  genCpuMs?: number
  openedAllMs?: number
}

/** ours' mqtt_connection_failures_total by reason. */
async function failuresByReason(b: BrokerHandle): Promise<Record<string, number>> {
  const text = await (await fetch(`${b.httpUrl}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^mqtt_connection_failures_total\{[^}]*reason="(\w+)"[^}]*\}\s+([\d.eE+-]+)/gm)) {
    out[m[1]] = (out[m[1]] ?? 0) + Number(m[2])
  }
  return out
}

const isOurs = (p: PeerName) => p === 'ours' || p === 'ours:wallclock'

async function stormOnce(round: number, peer: PeerName, params: StormParams): Promise<StormRun> {
  const b = await startBroker(peer)
  const gens: GenProcess[] = []
  try {
    if (isOurs(peer) && params.connectTimeoutMs > 0) await patchSettings(b, { connectTimeoutMs: params.connectTimeoutMs }, 'bench: reconnect storm')
    const before = isOurs(peer) ? await failuresByReason(b) : {}
    await sleep(500)
    const rssBeforeKiB = rssKiB(b.pid)
    // every generator forked and loaded before the start (tsx and ws take about a second to load)
    const startAt = Date.now() + 2500
    const per = Math.ceil(params.clients / params.generators)
    for (let g = 0; g < params.generators; g++) {
      const n = Math.min(per, params.clients - g * per)
      if (n <= 0) break
      const job: ReconnectStormJob = {
        scenario: 'reconnect-storm', url: b.wsUrl, pid: b.pid, clients: n, idPrefix: `storm-${g}-`, startAt,
        giveUpMs: params.giveUpMs, retryMs: params.retryMs, attemptTimeoutMs: params.attemptTimeoutMs, keepalive: params.keepalive,
      }
      gens.push(genProcess(job))
    }
    await sleep(Math.max(0, startAt - Date.now()))
    const cpu0 = cpuMs(b.pid)
    const t0 = performance.now()
    await Promise.all(gens.map((g) => g.phase('settled', params.giveUpMs + 30_000)))
    const cpu1 = cpuMs(b.pid)
    const elapsed = performance.now() - t0
    const rss = rssKiB(b.pid)
    const after = isOurs(peer) ? await failuresByReason(b) : {}
    for (const g of gens) g.stop()
    const results: Result[] = await Promise.all(gens.map((g) => g.result))
    const d = results.map((r) => r.details)
    const sum = (k: string) => d.reduce((a, x) => a + Number(x[k] ?? 0), 0)
    const times = d.flatMap((x) => JSON.parse(String(x.connectedAfter)) as number[]).sort((a, b) => a - b)
    const at = (p: number) => (times.length ? times[Math.min(times.length - 1, Math.floor(p * times.length))] : NaN)
    const firstErrors: Record<string, number> = {}
    for (const x of d) for (const [k, v] of Object.entries(JSON.parse(String(x.firstErrors)) as Record<string, number>)) firstErrors[k] = (firstErrors[k] ?? 0) + v
    const connected = sum('connected')
    const cpu = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : NaN
    return {
      round, peer, params,
      clients: sum('clients'), connected, givenUp: sum('givenUp'), attempts: sum('attempts'),
      first: Object.fromEntries(FIRST_OUTCOMES.map((k) => [k, sum(`first_${k}`)])),
      firstErrors,
      allConnectedMs: connected === sum('clients') ? times[times.length - 1] : NaN,
      p50Ms: at(0.5), p99Ms: at(0.99),
      brokerCpuUsPerConnect: connected ? Math.round((cpu * 1000) / connected) : NaN,
      brokerCpuPct: Math.round((cpu * 100) / elapsed),
      rssKiB: rss, rssBeforeKiB,
      failures: Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => Number(v) > 0)),
      genCpuMs: sum('genCpuMs'),
      openedAllMs: Math.max(...d.map((x) => Number(x.openedAllMs))),
    }
  } finally {
    for (const g of gens) g.dismiss()
    await b.stop()
    await sleep(2000) // sockets of the last fleet leave TIME_WAIT's way before the next broker
  }
}

function describe(r: StormRun): string {
  if (r.error) return `FAILED: ${r.error.split('\n').slice(0, 4).join('\n    ')}`
  const f = r.first!
  const all = Number.isFinite(r.allConnectedMs) ? `all ${fmt(r.clients)} connected after ${fmt(r.allConnectedMs)} ms` : `${fmt(r.connected)} of ${fmt(r.clients)} connected (${r.givenUp} gave up)`
  const logged = r.failures && Object.keys(r.failures).length ? `; its log: ${Object.entries(r.failures).map(([k, v]) => `${k} ${v}`).join(', ')}` : isOurs(r.peer) ? '; its log: no failure' : ''
  return `${all} (p50 ${fmt(r.p50Ms)}, p99 ${fmt(r.p99Ms)} ms); first attempts: ${f.connected} connected, ${f.refused} refused, ${f.timedOut} timed out, ` +
    `${f.noAnswer} unanswered; broker ${fmt(r.brokerCpuUsPerConnect)} µs CPU/connect (${r.brokerCpuPct}%), RSS ${fmt((r.rssKiB ?? NaN) / 1024)} MiB${logged}`
}

/** Every peer, `rounds` times, one after the other. `beforeEach` runs before each run (the bench waits for quiet there). */
export async function runReconnectStorm(
  peers: PeerName[], rounds: number, params: Partial<StormParams>, beforeEach: () => Promise<void> = async () => {},
): Promise<StormRun[]> {
  const p: StormParams = { ...STORM_DEFAULTS, ...params }
  const runs: StormRun[] = []
  console.log(`reconnect storm: ${fmt(p.clients)} WebSocket clients at once from ${p.generators} generators` +
    `${p.connectTimeoutMs ? `; ours with connectTimeoutMs ${p.connectTimeoutMs}` : '; every broker at its defaults'}`)
  for (let round = 1; round <= rounds; round++) {
    for (const peer of peers) {
      await beforeEach()
      const t0 = performance.now()
      let run: StormRun
      try {
        run = await stormOnce(round, peer, p)
      } catch (err) {
        run = { round, peer, params: p, error: (err as Error).message }
      }
      runs.push(run)
      console.log(`  storm r${round} ${peer.padEnd(14)} ${describe(run)}  [${((performance.now() - t0) / 1000).toFixed(1)} s]`)
    }
  }
  return runs
}

/** The best run of a peer: every client connected, fewest failed first attempts, then the shortest time. */
function best(runs: StormRun[], peer: PeerName): StormRun | undefined {
  const failedFirst = (r: StormRun) => (r.first ? r.clients! - r.first.connected : Infinity)
  return runs.filter((r) => r.peer === peer && !r.error).sort((a, b) =>
    (Number.isFinite(b.allConnectedMs) ? 1 : 0) - (Number.isFinite(a.allConnectedMs) ? 1 : 0) ||
    failedFirst(a) - failedFirst(b) || (a.allConnectedMs ?? Infinity) - (b.allConnectedMs ?? Infinity))[0]
}

export function stormReport(runs: StormRun[]): string {
  if (!runs.length) return ''
  const peers = [...new Set(runs.map((r) => r.peer))]
  const p = runs[0].params
  const picked = peers.map((peer) => best(runs, peer))
  const n = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toLocaleString('en-US'))
  const row = (label: string, f: (r: StormRun) => string) => [label, ...picked.map((r) => (r ? f(r) : 'failed'))]
  const lines = [
    row('first attempts refused', (r) => n(r.first!.refused)),
    row('first attempts timed out (closed before CONNACK)', (r) => n(r.first!.timedOut)),
    row('first attempts unanswered in 30 s', (r) => n(r.first!.noAnswer)),
    row('connect timeouts in the failure log', (r) => (isOurs(r.peer) ? n(r.failures?.connect_timeout ?? 0) : '')),
    row('time until all connected (ms)', (r) => (Number.isFinite(r.allConnectedMs) ? n(r.allConnectedMs) : `${n(r.connected)} of ${n(r.clients)}`)),
    row('  p50 / p99 connected after (ms)', (r) => `${n(r.p50Ms)} / ${n(r.p99Ms)}`),
    row('attempts (1 per client = no retry)', (r) => n(r.attempts)),
    row('broker CPU per connect (µs)', (r) => n(r.brokerCpuUsPerConnect)),
    row('broker RSS with the fleet connected (MiB)', (r) => n((r.rssKiB ?? NaN) / 1024)),
    row('  RSS growth per connected client (KiB)', (r) => fmt(((r.rssKiB ?? NaN) - (r.rssBeforeKiB ?? NaN)) / (r.connected || NaN))),
  ]
  const rounds = Math.max(...runs.map((r) => r.round))
  const all = peers.map((peer) => `${peer}: ${runs.filter((r) => r.peer === peer).map((r) => (r.error ? 'failed' : Number.isFinite(r.allConnectedMs) ? `${n(r.allConnectedMs)} ms` : `${n(r.connected)}/${n(r.clients)}`) +
    (r.first ? ` (${r.first.refused + r.first.timedOut + r.first.noAnswer} failed first)` : '')).join(', ')}`)
  const errors = picked.filter((r): r is StormRun => !!r && Object.keys(r.firstErrors ?? {}).length > 0)
    .map((r) => `${r.peer}: ${Object.entries(r.firstErrors!).map(([k, v]) => `${v} x "${k}"`).join('; ')}`)
  const notes = [
    `${fmt(p.clients)} WebSocket clients (MQTT 3.1.1, clean session, keepalive ${p.keepalive}) from ${p.generators} generator processes, all`,
    `started at one moment on 127.0.0.1; a failed attempt is tried again after ${p.retryMs} ms, for at most ${p.giveUpMs / 1000} s; best of ${rounds}`,
    `round(s) (every client connected, fewest failed first attempts, shortest time). Every broker at its defaults` +
      (p.connectTimeoutMs ? `, but ours with connectTimeoutMs ${p.connectTimeoutMs}.` : ` (ours: connectTimeoutMs 5000, maxConnections 10000).`),
    `ours:wallclock is ours with STALL_CREDIT=off: its deadlines count the broker's own stalls against clients, as`,
    `before the stall clock. CPU per connect: the broker's CPU from the start until every client settled, / clients.`,
    `All rounds (time until all connected): ${all.join('; ')}.`,
    ...(errors.length ? [`First attempts that failed: ${errors.join(' | ')}.`] : []),
  ]
  return [`## Reconnect storm: ${fmt(p.clients)} WebSocket clients at once`, markdownTable(['', ...peers], lines), notes.join('\n')].join('\n\n')
}

