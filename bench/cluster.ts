// The cluster bench (`npm run bench -- --cluster`): 3 nodes of ours on this machine (3 processes, the machine's NATS
// between them, a PostgreSQL database of their own) against one node of ours, and Aedes scaled the way its docs show
// (3 processes sharing Redis through mqemitter-redis) against one Aedes process. Every figure comes from the load
// scenarios of bench/gen/scenarios.ts with their clients spread over the nodes (the job's pubUrls/subUrls):
//  - fanin: the QoS 0 fan-in (20 publishers -> 1 subscriber on bench/fanin/+), publishers on nodes 2 and 3 (in turn),
//    the subscriber on node 1;
//  - fanout: the QoS 0 fan-out (1 publisher -> 50 subscribers), the publisher on node 1, subscribers on nodes 2 and 3;
//  - qos1: QoS 1 (10 publishers with 100 in flight each -> 1 subscriber acknowledging all), publishers on nodes 2
//    and 3, the subscriber on node 1;
//    on one node every client is on it; a run starts only once every route is in place (a probe from each
//    publisher reached each subscriber: routesReady in bench/gen/scenarios.ts);
//  - hop: the `latency` scenario at a fixed rate (1,000 msg/s, QoS 1, 4 publishers on node 1) with three
//    subscribers of every message: on node 1 (same node), node 2 and node 3 (one NATS or Redis hop): the same
//    messages, sent at the same moments, timed on each path; the difference is the cost of the hop;
//  - memory: N idle WebSocket clients (2,000) spread over the 3 nodes (bench/gen/cluster.ts), each node's RSS before
//    and after, per client, after a full GC through each node's inspector; against the `memory` scenario on one node
//    with the same N.
// Each system is started fresh for every scenario and round and stopped after it; a cluster of ours has a fresh
// CLUSTER_NAME and database each time, deleted with it (also on Ctrl-C). Parameters:
// BENCH_PARAMS='{"cluster":{"nodes":3,"rounds":1,"warmupMs":1000,"measureMs":3000,"hopRate":1000,"hopMeasureMs":4000,"memoryClients":2000}}'.
import fs from 'node:fs'
import { performance } from 'node:perf_hooks'
import { startBroker, type BrokerHandle } from './peers/brokers.ts'
import { sleep } from './lib/proc.ts'
import { markdownTable, fmt, ratio } from './lib/report.ts'
import { startOursCluster, startAedesCluster, oursClusterMissing, aedesClusterMissing, NATS_URL, REDIS_URL, type Cluster } from './lib/cluster.ts'
import type { Job, Result, Timing } from './gen/scenarios.ts'
import type { SpreadMemoryJob } from './gen/cluster.ts'

export interface ClusterParams {
  nodes: number
  rounds: number
  warmupMs: number
  measureMs: number
  /** the hop: messages/s, warm-up and measurement */
  hopRate: number
  hopWarmupMs: number
  hopMeasureMs: number
  /** idle clients in the memory comparison (all nodes together) */
  memoryClients: number
  settleMs: number
}

export const CLUSTER_DEFAULTS: ClusterParams = {
  nodes: 3, rounds: 1, warmupMs: 1000, measureMs: 3000, hopRate: 1000, hopWarmupMs: 1000, hopMeasureMs: 4000, memoryClients: 2000, settleMs: 2000,
}

export const CLUSTER_SCENARIOS = ['fanin', 'fanout', 'qos1', 'hop', 'memory'] as const
export type ClusterScenario = (typeof CLUSTER_SCENARIOS)[number]
type LoadScenario = 'fanin' | 'fanout' | 'qos1'

/** The systems compared: ours on n nodes and on one, Aedes on n processes sharing Redis and on one. */
export const SYSTEMS = ['ours-cluster', 'ours', 'aedes-cluster', 'aedes'] as const
export type System = (typeof SYSTEMS)[number]

/** Which systems run a scenario: the hop needs a cluster, the memory comparison is ours'. */
const SYSTEMS_FOR: Record<ClusterScenario, readonly System[]> = {
  fanin: SYSTEMS, fanout: SYSTEMS, qos1: SYSTEMS, hop: ['ours-cluster', 'aedes-cluster'], memory: ['ours-cluster', 'ours'],
}

export interface ClusterRun {
  round: number
  scenario: ClusterScenario
  system: System
  nodes: number
  result?: Result
  error?: string
  seconds: number
  noisy?: boolean
}

export interface ClusterBench {
  params: ClusterParams
  /** the systems left out, and why (NATS/PostgreSQL missing, mqemitter-redis not installed, no Redis) */
  missing: Partial<Record<System, string>>
  runs: ClusterRun[]
  services: { nats: string, redis: string }
}

/** What the bench (run.ts) lends: its jobs for one broker (the main bench's parameters), its generator, its quiet wait. */
export interface ClusterHooks {
  jobFor(s: LoadScenario | 'latency' | 'memory', b: BrokerHandle): Job
  runGen(job: Job | SpreadMemoryJob, timeoutMs: number): Promise<Result>
  waitForQuiet(): Promise<void>
  /** % of a core other processes may use before a run counts as noisy */
  maxOtherCpu: number
  /** --profile: a CPU profile of every node of ours (main thread's: the file with thread id 0), with the window beside it */
  profileDir?: string
}

const num = (v: unknown) => (v === null || v === undefined ? NaN : Number(v))
const signed = (v: number) => (v >= 0 ? `+${fmt(v)}` : fmt(v))
const int = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-')

/** A system up: its nodes, the bus between them (null on one process), and how to stop it. */
interface Up { nodes: BrokerHandle[], busPid: number | null, stop(): Promise<void> }

/** --profile: where node i of ours writes its CPU profiles for a run (undefined: no profile) */
type ProfileArgs = ((i: number) => string[]) | undefined

async function startSystem(system: System, n: number, inspect: boolean, prof: ProfileArgs): Promise<Up> {
  if (system === 'ours-cluster' || system === 'aedes-cluster') {
    const c: Cluster = system === 'ours-cluster' ? await startOursCluster(n, { inspect, nodeArgs: prof }) : await startAedesCluster(n, { inspect })
    return { nodes: c.nodes, busPid: c.busPid, stop: () => c.stop() }
  }
  const b = await startBroker(system === 'ours' ? 'ours' : 'aedes', { inspect, oursNodeArgs: system === 'ours' ? prof?.(0) : undefined })
  return { nodes: [b], busPid: null, stop: () => b.stop() }
}

/**
 * The job of a scenario on a system: the main bench's job for one broker, with its clients spread over the nodes
 * (on one node: all on it) and the CPU read over every node.
 */
function jobOn(s: Exclude<ClusterScenario, 'memory'>, up: Up, p: ClusterParams, hooks: ClusterHooks): Job {
  const urls = up.nodes.map((b) => b.wsUrl)
  const first = [urls[0]]
  const rest = urls.length > 1 ? urls.slice(1) : first
  const common = { pids: up.nodes.map((b) => b.pid), ...(up.busPid !== null ? { busPid: up.busPid } : {}) }
  const timing: Timing = { warmupMs: p.warmupMs, measureMs: p.measureMs }
  switch (s) {
    case 'fanin': return { ...hooks.jobFor('fanin', up.nodes[0]), timing, ...common, pubUrls: rest, subUrls: first } as Job
    case 'fanout': return { ...hooks.jobFor('fanout', up.nodes[0]), timing, ...common, pubUrls: first, subUrls: rest } as Job
    case 'qos1': return { ...hooks.jobFor('qos1', up.nodes[0]), timing, ...common, pubUrls: rest, subUrls: first } as Job
    case 'hop': return {
      ...hooks.jobFor('latency', up.nodes[0]), rate: p.hopRate, timing: { warmupMs: p.hopWarmupMs, measureMs: p.hopMeasureMs },
      ...common, pubUrls: first, subUrls: urls,
    } as Job
  }
}

function memoryJob(up: Up, p: ClusterParams, hooks: ClusterHooks): Job | SpreadMemoryJob {
  if (up.nodes.length === 1) {
    // one node: the main bench's memory scenario itself, with the same number of clients
    return { ...hooks.jobFor('memory', up.nodes[0]), clients: p.memoryClients, settleMs: p.settleMs } as Job
  }
  return {
    scenario: 'spread-memory', clients: p.memoryClients, concurrency: 50, settleMs: p.settleMs,
    nodes: up.nodes.map((b) => ({ url: b.wsUrl, pid: b.pid, inspectorUrl: b.inspectorUrl })),
  }
}

const LABEL: Record<System, (n: number) => string> = {
  'ours-cluster': (n) => `ours, ${n} nodes`,
  ours: () => 'ours, 1 node',
  'aedes-cluster': (n) => `Aedes+Redis, ${n} procs`,
  aedes: () => 'Aedes, 1 proc',
}

function describe(s: ClusterScenario, r: Result): string {
  const d = r.details
  const cpu = `cpu: brokers ${d.brokerCpuPct}%${d.perBrokerCpuPct ? ` (${d.perBrokerCpuPct})` : ''}${d.busCpuPct !== undefined ? `, bus ${d.busCpuPct}%` : ''}, generator ${d.genCpuPct}%, other ${d.otherCpuPct}%`
  if (s === 'hop') {
    const subs = num(d.subscribers)
    const parts = Array.from({ length: subs }, (_, j) => `node ${j + 1}: p50 ${d[`s${j}P50Ms`]} p99 ${d[`s${j}P99Ms`]} ms (${d[`s${j}Received`]})`)
    return `${parts.join('; ')}; sent ${d.sent}; ${cpu}`
  }
  if (s === 'memory') {
    const n = num(d.nodes)
    if (!Number.isFinite(n)) return `${fmt(num(d.perConnAfterGcKiB))} KiB/client after a full GC (RSS ${d.rssBeforeKiB} -> ${d.rssAfterKiB} KiB, ${fmt(r.value)} KiB/client without)`
    const per = Array.from({ length: n }, (_, j) => `node ${j + 1}: ${d[`n${j}Clients`]} clients, ${fmt(num(d[`n${j}PerClientAfterGcKiB`]))} KiB each`)
    return `${fmt(r.value)} KiB/client after a full GC (${per.join('; ')})`
  }
  return `${fmt(r.value)} ${r.unit}${d.lost ? `, lost ${d.lost}` : ''}; ${cpu}; routes in ${d.routesMs} ms`
}

export async function runClusterBench(params: Partial<ClusterParams>, hooks: ClusterHooks, scenarios: readonly ClusterScenario[] = CLUSTER_SCENARIOS): Promise<ClusterBench> {
  const p: ClusterParams = { ...CLUSTER_DEFAULTS, ...params }
  const missing: Partial<Record<System, string>> = {}
  const oursMissing = await oursClusterMissing()
  if (oursMissing) missing['ours-cluster'] = oursMissing
  const aedesMissing = await aedesClusterMissing()
  if (aedesMissing) missing['aedes-cluster'] = aedesMissing
  for (const [s, why] of Object.entries(missing)) console.log(`cluster: ${LABEL[s as System](p.nodes)} left out: ${why}`)
  console.log(`cluster: ${p.nodes} nodes of ours (NATS ${NATS_URL}, a fresh PostgreSQL database each start) vs one node; ` +
    `Aedes: ${p.nodes} processes on Redis ${REDIS_URL} (mqemitter-redis) vs one; ${p.rounds} round(s); warm-up ${p.warmupMs} ms, ` +
    `measure ${p.measureMs} ms; hop at ${fmt(p.hopRate)} msg/s for ${p.hopMeasureMs} ms; ${fmt(p.memoryClients)} idle clients`)
  const runs: ClusterRun[] = []
  for (let round = 1; round <= p.rounds; round++) {
    if (p.rounds > 1) console.log(`cluster round ${round}/${p.rounds}`)
    for (const s of scenarios) {
      for (const system of SYSTEMS_FOR[s]) {
        if (missing[system]) continue
        await hooks.waitForQuiet()
        const t0 = performance.now()
        const nodes = system.endsWith('-cluster') ? p.nodes : 1
        const run: ClusterRun = { round, scenario: s, system, nodes, seconds: 0 }
        let up: Up | null = null
        const label = `cluster-${s}-${system}-r${round}`
        const prof: ProfileArgs = hooks.profileDir && system.startsWith('ours') && s !== 'memory'
          ? (i) => ['--cpu-prof', `--cpu-prof-dir=${hooks.profileDir}/${label}-node${i + 1}`] : undefined
        try {
          up = await startSystem(system, nodes, s === 'memory', prof)
          const job = s === 'memory' ? memoryJob(up, p, hooks) : jobOn(s, up, p, hooks)
          const timeout = s === 'memory' ? 180_000 : s === 'hop' ? p.hopWarmupMs + p.hopMeasureMs + 60_000 : p.warmupMs + p.measureMs + 60_000
          run.result = await hooks.runGen(job, timeout)
          const other = num(run.result.details.otherCpuPct)
          run.noisy = Number.isFinite(other) && other > hooks.maxOtherCpu
          if (prof) {
            // bench/profile-summary.ts cuts a profile to this window (beside each node's folder)
            const d = run.result.details
            for (let i = 0; i < nodes; i++) {
              fs.writeFileSync(`${hooks.profileDir}/${label}-node${i + 1}.window.json`, JSON.stringify({ startUs: d.windowStartUs, endUs: d.windowEndUs }) + '\n')
            }
          }
        } catch (err) {
          run.error = (err as Error).message
        } finally {
          if (up) await up.stop()
          if (up && prof) for (let i = 0; i < nodes; i++) keepMainThreadProfile(`${hooks.profileDir}/${label}-node${i + 1}`)
        }
        run.seconds = Math.round((performance.now() - t0) / 100) / 10
        runs.push(run)
        console.log(`  ${s.padEnd(7)} ${LABEL[system](nodes).padEnd(22)} ${run.error ? `FAILED: ${run.error.split('\n').slice(0, 6).join('\n    ')}` : describe(s, run.result!)}` +
          `  [${run.seconds} s]${run.noisy ? '  noisy' : ''}`)
        await sleep(500)
      }
    }
  }
  return { params: p, missing, runs, services: { nats: NATS_URL, redis: REDIS_URL } }
}

/** A node's profiles are one per thread (tsx's loader has one): the main thread's (thread id 0) becomes `<dir>.cpuprofile`. */
function keepMainThreadProfile(dir: string): void {
  try {
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
    const main = files.find((f) => f.split('.')[4] === '0') ?? files[0]
    if (main) fs.renameSync(`${dir}/${main}`, `${dir}.cpuprofile`)
    fs.rmSync(dir, { recursive: true, force: true })
  } catch (err) {
    console.log(`  (no CPU profile in ${dir}: ${(err as Error).message})`)
  }
}

// ---------------------------------------------------------------------------------------------------- report
/** The best run of a scenario on a system (highest throughput, lowest latency or memory); a quiet one over a noisy one. */
function best(bench: ClusterBench, s: ClusterScenario, system: System): ClusterRun | undefined {
  const ok = bench.runs.filter((r) => r.scenario === s && r.system === system && r.result)
  const higher = s === 'fanin' || s === 'fanout' || s === 'qos1'
  const score = (r: ClusterRun) => (higher ? 1 : -1) * num(r.result!.value)
  const pool = ok.some((r) => !r.noisy) ? ok.filter((r) => !r.noisy) : ok
  return pool.sort((a, b) => score(b) - score(a))[0]
}

const LOAD_LABEL: Record<LoadScenario, string> = {
  fanin: 'QoS 0 fan-in 20->1 (msg/s): publishers on nodes 2+3, subscriber on node 1',
  fanout: 'QoS 0 fan-out 1->50 (deliveries/s): publisher on node 1, subscribers on nodes 2+3',
  qos1: 'QoS 1 10->1 (msg/s): publishers on nodes 2+3, subscriber on node 1',
}

export function clusterReport(bench: ClusterBench): string {
  const p = bench.params
  const present = SYSTEMS.filter((s) => !bench.missing[s])
  const cell = (s: ClusterScenario, sys: System, pick: (r: Result) => number, digits?: (v: number) => string) => {
    const r = best(bench, s, sys)
    if (!r) return bench.runs.some((x) => x.scenario === s && x.system === sys) ? 'failed' : '-'
    const v = pick(r.result!)
    return (r.noisy ? '~' : '') + (digits ? digits(v) : fmt(v))
  }
  const value = (s: ClusterScenario, sys: System) => num(best(bench, s, sys)?.result?.value)
  const ratioCell = (s: ClusterScenario, a: System, b: System) => {
    const r = ratio(value(s, a), value(s, b))
    return r === undefined ? '-' : `${r.toFixed(2)}x`
  }
  // throughput: ours n/1, Aedes n/1
  const oursCols = present.includes('ours-cluster')
  const aedesCols = present.includes('aedes-cluster')
  const head = ['scenario', ...(oursCols ? [LABEL['ours-cluster'](p.nodes)] : []), LABEL.ours(1), ...(oursCols ? [`ours ${p.nodes}/1`] : []),
    ...(aedesCols ? [LABEL['aedes-cluster'](p.nodes)] : []), LABEL.aedes(1), ...(aedesCols ? [`Aedes ${p.nodes}/1`] : []),
    ...(oursCols && aedesCols ? [`ours/Aedes, ${p.nodes} nodes`] : [])]
  const lines: string[][] = []
  const row = (label: string, s: LoadScenario, pick: (r: Result) => number, ratios: boolean, f: (v: number) => string = fmt) => lines.push([
    label,
    ...(oursCols ? [cell(s, 'ours-cluster', pick, f)] : []), cell(s, 'ours', pick, f), ...(oursCols ? [ratios ? ratioCell(s, 'ours-cluster', 'ours') : ''] : []),
    ...(aedesCols ? [cell(s, 'aedes-cluster', pick, f)] : []), cell(s, 'aedes', pick, f), ...(aedesCols ? [ratios ? ratioCell(s, 'aedes-cluster', 'aedes') : ''] : []),
    ...(oursCols && aedesCols ? [ratios ? ratioCell(s, 'ours-cluster', 'aedes-cluster') : ''] : []),
  ])
  for (const s of (['fanin', 'fanout', 'qos1'] as const).filter((x) => bench.runs.some((r) => r.scenario === x))) {
    row(LOAD_LABEL[s], s, (r) => r.value, true)
    row('&nbsp;&nbsp;brokers\' CPU, all processes (% of a core)', s, (r) => num(r.details.brokerCpuPct), false, int)
    row('&nbsp;&nbsp;brokers\' + bus CPU per message (µs)', s, (r) => ((num(r.details.brokerCpuPct) + (num(r.details.busCpuPct) || 0)) * 1e4) / r.value, false)
    row('&nbsp;&nbsp;bus CPU: NATS / Redis (% of a core)', s, (r) => num(r.details.busCpuPct), false, int)
    row('&nbsp;&nbsp;generator CPU (% of a core)', s, (r) => num(r.details.genCpuPct), false, int)
    if (s !== 'qos1') row('&nbsp;&nbsp;lost (no delivery within 500 ms)', s, (r) => num(r.details.lost ?? 0), false, int)
  }
  const sections = [`## Cluster: ${p.nodes} nodes against one`, ...(lines.length ? [markdownTable(head, lines)] : [])]

  // the hop
  const hopLines: string[][] = []
  for (const sys of ['ours-cluster', 'aedes-cluster'] as const) {
    const r = best(bench, 'hop', sys)
    if (!r) {
      // (a hop that was run and failed; none run, e.g. --cluster=fanin: no row)
      if (bench.runs.some((x) => x.scenario === 'hop' && x.system === sys)) hopLines.push([LABEL[sys](p.nodes), 'failed', '', '', '', '', ''])
      continue
    }
    const d = r.result!.details
    const mark = r.noisy ? '~' : ''
    const subs = num(d.subscribers)
    for (let j = 0; j < subs; j++) {
      hopLines.push([`${LABEL[sys](p.nodes)}: node 1 -> ${j === 0 ? 'node 1 (same node)' : `node ${j + 1}`}`,
        mark + fmt(num(d[`s${j}P50Ms`])), mark + fmt(num(d[`s${j}P99Ms`])), mark + fmt(num(d[`s${j}P999Ms`])), mark + fmt(num(d[`s${j}MaxMs`])),
        int(num(d[`s${j}Received`])), j === 0 ? int(num(d.sent)) : ''])
    }
    for (let j = 1; j < subs; j++) {
      hopLines.push([`&nbsp;&nbsp;the hop to node ${j + 1} (difference)`,
        signed(num(d[`s${j}P50Ms`]) - num(d.s0P50Ms)), signed(num(d[`s${j}P99Ms`]) - num(d.s0P99Ms)),
        signed(num(d[`s${j}P999Ms`]) - num(d.s0P999Ms)), '', '', ''])
    }
  }
  if (hopLines.length) {
    sections.push(`### The cost of a cross-node hop (QoS 1 at ${fmt(p.hopRate)} msg/s from node 1, ${p.hopMeasureMs / 1000} s)`,
      markdownTable(['publish -> receive latency (ms)', 'p50', 'p99', 'p99.9', 'max', 'received', 'sent'], hopLines))
  }

  // memory
  const mc = best(bench, 'memory', 'ours-cluster')
  const m1 = best(bench, 'memory', 'ours')
  if (mc || m1) {
    const n = p.nodes
    const mib = (k: unknown) => fmt(num(k) / 1024)
    const memHead = ['idle WebSocket clients', ...Array.from({ length: mc ? n : 0 }, (_, j) => `node ${j + 1} of ${n}`), ...(mc ? [`all ${n} nodes`] : []), 'one node']
    const d = mc?.result?.details ?? {}
    const d1 = m1?.result?.details ?? {}
    const per = (f: (j: number) => string) => Array.from({ length: mc ? n : 0 }, (_, j) => f(j))
    const memLines = [
      ['clients', ...per((j) => int(num(d[`n${j}Clients`]))), ...(mc ? [int(num(d.clients))] : []), m1 ? int(num(d1.clients)) : '-'],
      ['RSS after a full GC, before -> after (MiB)', ...per((j) => `${mib(d[`n${j}RssBeforeGcKiB`])} -> ${mib(d[`n${j}RssAfterGcKiB`])}`),
        ...(mc ? [`${mib([...Array(n).keys()].reduce((a, j) => a + num(d[`n${j}RssBeforeGcKiB`]), 0))} -> ${mib([...Array(n).keys()].reduce((a, j) => a + num(d[`n${j}RssAfterGcKiB`]), 0))}`] : []),
        m1 ? `${mib(rssAfterGc(d1, 'before'))} -> ${mib(rssAfterGc(d1, 'after'))}` : '-'],
      ['**RSS per client after a full GC (KiB)**', ...per((j) => fmt(num(d[`n${j}PerClientAfterGcKiB`]))), ...(mc ? [fmt(num(d.perConnAfterGcKiB))] : []), m1 ? fmt(num(d1.perConnAfterGcKiB)) : '-'],
    ]
    sections.push(`### Memory per idle connection: ${fmt(p.memoryClients)} clients over ${n} nodes and on one`, markdownTable(memHead, memLines))
  }

  const failed = bench.runs.filter((r) => r.error)
  const notes = [
    `${p.nodes} nodes of ours: ${p.nodes} processes of the server on this machine (NATS_URL, DATABASE_URL, NODE_ID, a fresh CLUSTER_NAME and PostgreSQL`,
    `database per start), all sharing the machine's NATS (${bench.services.nats}); Aedes+Redis: ${p.nodes} Aedes processes with mqemitter-redis on`,
    `${bench.services.redis}. Every system freshly started per scenario; best of ${p.rounds} round(s); warm-up ${p.warmupMs} ms, measure ${p.measureMs} ms.`,
    `Clients: publishers and subscribers on different nodes as each row says (on one node/process: all on it); a run starts`,
    `once a probe from every publisher has reached every subscriber. CPU: 100% = one core; "brokers" sums every broker process.`,
    `~: other processes used more than the noise bound meanwhile. All of it shares ONE machine with 2 cores: the nodes, NATS or`,
    `Redis, the generator (and whatever else runs): a cluster here measures how the system behaves across nodes, not what`,
    `${p.nodes} machines would do.`,
    ...Object.entries(bench.missing).map(([s, why]) => `${LABEL[s as System](p.nodes)}: left out (${why}).`),
    ...(failed.length ? [`failed: ${failed.map((r) => `${r.scenario}/${r.system}/r${r.round}: ${r.error!.split('\n')[0]}`).join('; ')}`] : []),
  ]
  sections.push(notes.join('\n'))
  return sections.join('\n\n')
}

/** The one-node memory scenario's RSS after a full GC, before or after the clients (its readings list, lowest). */
function rssAfterGc(d: Record<string, number | string>, which: 'before' | 'after'): number {
  const readings = String(d.rssReadingsAfterGcKiB ?? '')
  const m = /^([\d ]+) -> ([\d ]+)$/.exec(readings)
  if (!m) return NaN
  const list = (which === 'before' ? m[1] : m[2]).trim().split(/\s+/).map(Number)
  return Math.min(...list)
}
