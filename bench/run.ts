// npm run bench: our broker against Aedes and Mosquitto, same load generator, alternating, on 127.0.0.1.
//
//   npm run bench                                   all scenarios, all peers, 2 rounds (~6-8 min)
//   BENCH_QUICK=1 npm run bench                     smoke run: 1 round, short windows (~1.5 min)
//   npm run bench -- --scenarios=fanin,memory --peers=ours,aedes --rounds=3 --measure=5000 --warmup=1000
//   npm run bench -- --profile                      also write a CPU profile of our server per run
//   npm run bench -- --scenarios=fanin,fanout,qos1,connect --peers=ours --acl=100
//                                                   each scenario also under 100 ACL rules (ours+acl), same rounds
//   npm run bench -- --scenarios=fanin,connect --transport=ws,tcp
//                                                   each scenario over WebSocket and over plain TCP, in the same rounds
//   npm run bench -- --scenarios=attacks            the attack scenarios (bench/attacks.ts), once, on before/ours/
//                                                   mosquitto/aedes: peak RSS and whether the broker stayed responsive
//   npm run bench -- --scenarios=qos1,qos1-persistent,retained --state=sqlite,memory
//                                                   ours with its durable state (ours) and in memory (ours:memory),
//                                                   same rounds; qos1-persistent and retained run only when named
//   npm run bench -- --scenarios=startup            ours' start-up on 100,000 retained + 50,000 sessions (bench/startup.ts)
//   npm run bench -- --scenarios=storm --rounds=3   the reconnect storm: 10,000 WebSocket clients at once on ours, ours
//                                                   without its stall clock, Mosquitto and Aedes (bench/storm.ts)
//   npm run bench -- --scenarios=idle               a fleet of idle clients held by one process (100,000, cut to the
//                                                   file limit), its memory and its keepalive CPU (bench/idle.ts)
//   npm run bench -- --scenarios=alias              bytes per message with and without outbound topic aliases
//   npm run bench -- --cluster                      3 nodes of ours (NATS + PostgreSQL) against one node, and Aedes on
//                                                   3 processes sharing Redis against one (bench/cluster.ts, ~4 min)
//   (each flag has an env twin: BENCH_SCENARIOS, BENCH_PEERS, BENCH_ROUNDS, BENCH_MEASURE_MS, BENCH_WARMUP_MS,
//    BENCH_PROFILE=1, BENCH_ACL, BENCH_ATTACK_PEERS, BENCH_TRANSPORT, BENCH_STATE)
//
// Every broker runs in its own process, started fresh for each scenario and round; every load generator runs in a
// process of its own (bench/gen/main.ts). Results: printed, and written to bench-output/results.{json,md}.
import { fork } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { startBroker, mosquittoPath, beforeMissing, ALL_PEERS, KNOWN_PEERS, ROOT, type PeerName, type BrokerHandle } from './peers/brokers.ts'
import { track, killAll, sleep, machineBusyMs } from './lib/proc.ts'
import { table, markdownTable, fmt, ratio, type Row } from './lib/report.ts'
import { runAttacks, attackReport, ATTACKS, ATTACK_PEERS, type AttackName, type AttackRun } from './attacks.ts'
import { runStartup, startupReport, type StartupRun } from './startup.ts'
import { runReconnectStorm, stormReport, STORM_PEERS, type StormRun } from './storm.ts'
import { runIdle, idleReport, type IdleRun } from './idle.ts'
import { runAlias, aliasReport, type AliasRun } from './alias.ts'
import { runClusterBench, clusterReport, CLUSTER_SCENARIOS, type ClusterBench } from './cluster.ts'
import type { SpreadMemoryJob } from './gen/cluster.ts'
import type { Job, Result, Timing } from './gen/scenarios.ts'
import { TRANSPORTS, type Transport } from './lib/wsclient.ts'

const SCENARIOS = ['fanin', 'fanout', 'qos1', 'qos1-persistent', 'retained', 'latency', 'connect', 'memory', 'failstorm'] as const
type ScenarioName = (typeof SCENARIOS)[number]
/** The load scenarios that run when none is named (qos1-persistent and retained run only when named). */
const DEFAULT_SCENARIOS: ScenarioName[] = ['fanin', 'fanout', 'qos1', 'latency', 'connect', 'memory', 'failstorm']
/** The scenarios `--acl=N` runs a second time on ours under N ACL rules. */
const ACL_SCENARIOS: readonly ScenarioName[] = ['fanin', 'fanout', 'qos1', 'latency', 'connect']
/** Scenarios where Mosquitto runs with `persistence true` (in its tmp folder): the ones about durable state. */
const MOSQUITTO_PERSISTENCE: readonly ScenarioName[] = ['qos1-persistent', 'retained']
/** Where ours keeps retained messages and sessions (MQTT_STATE): `--state=sqlite,memory` runs it once per kind. */
const STATES = ['sqlite', 'memory'] as const
type StateKind = (typeof STATES)[number]
/** The peer name ours runs under for a state kind: `ours` (sqlite, its default) or `ours:memory`. */
const oursFor = (k: StateKind): PeerName => (k === 'sqlite' ? 'ours' : 'ours:memory')

// ---------------------------------------------------------------------------------------------------- options
function flag(name: string): string | undefined {
  const hit = process.argv.slice(2).find((a) => a === `--${name}` || a.startsWith(`--${name}=`))
  if (hit === undefined) return undefined
  return hit.includes('=') ? hit.slice(hit.indexOf('=') + 1) : 'true'
}
function opt(name: string, env: string): string | undefined {
  return flag(name) ?? process.env[env]
}
function list<T extends string>(raw: string | undefined, all: readonly T[], what: string): T[] {
  if (!raw) return [...all]
  const picked = raw.split(',').map((s) => s.trim()).filter(Boolean)
  const bad = picked.filter((p) => !all.includes(p as T))
  if (bad.length) throw new Error(`unknown ${what}: ${bad.join(', ')} (known: ${all.join(', ')})`)
  return all.filter((a) => picked.includes(a))
}

const quick = ['1', 'true'].includes(opt('quick', 'BENCH_QUICK') ?? '')
const profile = ['1', 'true'].includes(opt('profile', 'BENCH_PROFILE') ?? '')
let rounds = Number(opt('rounds', 'BENCH_ROUNDS') ?? (quick ? 1 : 2))
const timing: Timing = {
  warmupMs: Number(opt('warmup', 'BENCH_WARMUP_MS') ?? (quick ? 300 : 2000)),
  measureMs: Number(opt('measure', 'BENCH_MEASURE_MS') ?? (quick ? 1500 : 5000)),
}
// --scenarios: load scenarios, attacks ('attacks' = all of them), startup, storm, idle and alias; none named = the
// default load scenarios only
const scenarioNames = list(opt('scenarios', 'BENCH_SCENARIOS')?.replace(/\battacks\b/, ATTACKS.join(',')),
  [...SCENARIOS, ...ATTACKS, 'startup', 'storm', 'idle', 'alias'], 'scenario')
/**
 * --cluster: n nodes of ours against one, and Aedes on n processes sharing Redis against one (bench/cluster.ts);
 * --cluster=fanin,hop: only those of its scenarios
 */
const clusterFlag = flag('cluster') ?? process.env.BENCH_CLUSTER
const clusterBench = clusterFlag !== undefined && clusterFlag !== '0' && clusterFlag !== ''
const clusterScenarios = () => (clusterFlag === 'true' || clusterFlag === '1' ? [...CLUSTER_SCENARIOS] : list(clusterFlag, CLUSTER_SCENARIOS, 'cluster scenario'))
const scenarios = opt('scenarios', 'BENCH_SCENARIOS')
  ? scenarioNames.filter((s): s is ScenarioName => (SCENARIOS as readonly string[]).includes(s))
  : clusterBench ? [] : [...DEFAULT_SCENARIOS]
const attacks = opt('scenarios', 'BENCH_SCENARIOS')
  ? scenarioNames.filter((s): s is AttackName => (ATTACKS as readonly string[]).includes(s))
  : []
/** --scenarios=startup: ours' start-up on a large durable state (bench/startup.ts), once */
const startup = scenarioNames.includes('startup') && opt('scenarios', 'BENCH_SCENARIOS') !== undefined
/** --scenarios=storm: the reconnect storm (bench/storm.ts), `rounds` times on ours, ours:wallclock and the peers */
const reconnectStorm = scenarioNames.includes('storm') && opt('scenarios', 'BENCH_SCENARIOS') !== undefined
/** --scenarios=idle: an idle fleet on one node (bench/idle.ts), once per peer */
const idleFleet = scenarioNames.includes('idle') && opt('scenarios', 'BENCH_SCENARIOS') !== undefined
/** --scenarios=alias: bytes per message with and without outbound topic aliases (bench/alias.ts), once per peer */
const topicAliases = scenarioNames.includes('alias') && opt('scenarios', 'BENCH_SCENARIOS') !== undefined
const peersRaw = opt('peers', 'BENCH_PEERS')
let peers = peersRaw ? list(peersRaw, KNOWN_PEERS, 'peer') : [...ALL_PEERS]
/** --attack-peers (default: --peers when given, else before, ours, mosquitto, aedes) */
let attackPeers = ATTACK_PEERS.filter((p) => (list(opt('attack-peers', 'BENCH_ATTACK_PEERS') ?? peersRaw, KNOWN_PEERS, 'peer')).includes(p))
/** --acl=N: also run ours under N ACL rules (bench/lib/acl.ts) in each of ACL_SCENARIOS, right after ours */
let aclRules = Number(opt('acl', 'BENCH_ACL') ?? 0)
if (!Number.isInteger(aclRules) || aclRules < 0) throw new Error(`--acl: a number of rules, not ${opt('acl', 'BENCH_ACL')}`)
/**
 * --transport=ws,tcp: the load scenarios over WebSocket (ws://, the default), plain TCP (mqtt://), or both (each
 * scenario, round and peer runs once per transport). The storm is WebSocket only; the attacks are not affected.
 */
let transports: Transport[] = list(opt('transport', 'BENCH_TRANSPORT') ?? 'ws', TRANSPORTS, 'transport')
/**
 * --state=sqlite,memory: ours with its durable state (MQTT_STATE=sqlite, the default: peer `ours`) and/or in memory
 * (MQTT_STATE=memory: peer `ours:memory`), in the same rounds, the one right after the other.
 */
let states: StateKind[] = list(opt('state', 'BENCH_STATE') ?? 'sqlite', STATES, 'state')
const STORM_TRANSPORTS: readonly Transport[] = ['ws']
/** The transports a load scenario runs over. */
const transportsFor = (s: ScenarioName): Transport[] => (s === 'failstorm' ? [...STORM_TRANSPORTS] : transports)
let MEMORY_CLIENTS = Number(process.env.BENCH_MEMORY_CLIENTS ?? (quick ? 500 : 2000))
const LATENCY_RATE = 2000
/** connect loops at once in the connect scenario */
const CONNECT_CONCURRENCY = 100
const OUT_DIR = path.join(ROOT, 'bench-output')
const PROFILE_DIR = path.join(OUT_DIR, 'profiles')

if ((peers.includes('mosquitto') || (attacks.length && attackPeers.includes('mosquitto'))) && !mosquittoPath()) {
  console.log('mosquitto: not installed (apt-get install mosquitto)')
  peers = peers.filter((p) => p !== 'mosquitto')
  attackPeers = attackPeers.filter((p) => p !== 'mosquitto')
}
if ((peers.includes('before') || (attacks.length && attackPeers.includes('before'))) && beforeMissing()) {
  console.log(beforeMissing())
  peers = peers.filter((p) => p !== 'before')
  attackPeers = attackPeers.filter((p) => p !== 'before')
}
/**
 * The brokers a load scenario runs on: the peers, ours once per --state kind (ours, ours:memory), and ours+acl right
 * after them when --acl is given.
 */
function peersFor(s: ScenarioName): PeerName[] {
  const acl = aclRules > 0 && ACL_SCENARIOS.includes(s)
  return peers.flatMap((p): PeerName[] => (p === 'ours' ? [...states.map(oursFor), ...(acl ? ['ours+acl' as const] : [])] : [p]))
}
/** The columns of the main table: the peers, with ours once per --state kind. */
function tablePeers(): PeerName[] {
  return peers.flatMap((p): PeerName[] => (p === 'ours' ? states.map(oursFor) : [p]))
}

// ---------------------------------------------------------------------------------------------------- jobs
/** BENCH_PARAMS='{"fanout":{"window":500}}' overrides a scenario's parameters (for exploring; not for tables). */
const PARAMS: Record<string, Record<string, number>> = JSON.parse(process.env.BENCH_PARAMS ?? '{}')

function jobFor(s: Exclude<ScenarioName, 'failstorm'>, b: BrokerHandle, transport: Transport = 'ws'): Job {
  return { ...baseJob(s, b, transport), ...PARAMS[s] } as Job
}

function urlFor(b: BrokerHandle, transport: Transport): string {
  if (transport === 'ws') return b.wsUrl
  if (!b.tcpUrl) throw new Error(`${b.name}: no TCP listener`)
  return b.tcpUrl
}

function baseJob(s: Exclude<ScenarioName, 'failstorm'>, b: BrokerHandle, transport: Transport): Job {
  const t = { url: urlFor(b, transport), pid: b.pid }
  switch (s) {
    case 'fanin': return { ...t, scenario: 'fanin', timing, publishers: 20, payloadBytes: 64, window: 5000, batch: 10 }
    case 'fanout': return { ...t, scenario: 'fanout', timing, subscribers: 50, payloadBytes: 64, window: 400, batch: 10 }
    case 'qos1': return { ...t, scenario: 'qos1', timing, publishers: 10, payloadBytes: 64, inflight: 100 }
    case 'qos1-persistent': return { ...t, scenario: 'qos1-persistent', timing, publishers: 10, payloadBytes: 64, inflight: 100 }
    case 'retained': return { ...t, scenario: 'retained', ...RETAINED, publishTimeoutMs: 60_000, deliveryTimeoutMs: 90_000 }
    case 'latency': return { ...t, scenario: 'latency', timing, publishers: 4, payloadBytes: 64, rate: LATENCY_RATE }
    case 'connect': return { ...t, scenario: 'connect', timing, concurrency: CONNECT_CONCURRENCY }
    case 'memory': return { ...t, scenario: 'memory', clients: MEMORY_CLIENTS, concurrency: 50, settleMs: quick ? 500 : 2000, inspectorUrl: b.inspectorUrl }
  }
}

/** Run one job in a fresh generator process. */
function runGen(job: Job | SpreadMemoryJob, timeoutMs: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = track(fork(path.join(ROOT, 'bench/gen/main.ts'), [], {
      cwd: ROOT,
      // BENCH_GEN_PROFILE=1: CPU profiles of the generators too (bench-output/profiles/gen/), to see what limits them
      execArgv: [...(process.env.BENCH_GEN_PROFILE === '1' ? ['--cpu-prof', `--cpu-prof-dir=${path.join(PROFILE_DIR, 'gen')}`] : []), '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }))
    let settled = false
    const timer = setTimeout(() => finish(new Error(`generator: ${job.scenario} did not finish in ${timeoutMs} ms`)), timeoutMs)
    function finish(err: Error | null, result?: Result) {
      if (settled) return
      settled = true
      clearTimeout(timer)
      // the generator exits by itself after reporting (writing its profile, if any); a stuck one is killed
      if (child.exitCode === null) {
        if (err) child.kill('SIGKILL')
        else setTimeout(() => { if (child.exitCode === null) child.kill('SIGKILL') }, 5000).unref()
      }
      if (err) reject(err)
      else resolve(result!)
    }
    child.once('message', (m: { ok: boolean, result?: Result, error?: string }) => {
      finish(m.ok ? null : new Error(m.error), m.result)
    })
    child.once('exit', (code) => finish(new Error(`generator exited (${code}) before reporting`)))
    child.send(job)
  })
}

const genTimeout = (s?: ScenarioName) => (s === 'retained' ? 180_000 : timing.warmupMs + timing.measureMs + 60_000)

/** The retained scenario: 10,000 topics, 64-byte payloads published at QoS 1 by 10 clients, 100 subscribers to bench/r/# */
const RETAINED = { topics: 10_000, payloadBytes: 64, publishers: 10, inflight: 100, subscribers: 100, filter: 'bench/r/#' }

// ---------------------------------------------------------------------------------------------------- ours' failure counters
interface FailureCounts {
  /** failures the broker counted (sum over reasons of mqtt_connection_failures_total) */
  counted: number
  /** what the failure log did with them (mqtt_failure_log_events_total by outcome): written, folded, dropped */
  written: number
  folded: number
  dropped: number
}

/** Our /metrics, read for the failure counters (NaN where a counter is missing). */
async function failureCounts(b: BrokerHandle): Promise<FailureCounts> {
  const out: FailureCounts = { counted: NaN, written: NaN, folded: NaN, dropped: NaN }
  const add = (k: keyof FailureCounts, v: number) => { out[k] = (Number.isNaN(out[k]) ? 0 : out[k]) + v }
  const text = await (await fetch(`${b.httpUrl}/metrics`)).text()
  for (const line of text.split('\n')) {
    // e.g. mqtt_connection_failures_total{reason="protocol_error"} 12
    //      mqtt_failure_log_events_total{outcome="folded"} 122
    const m = /^([a-zA-Z_:][\w:]*)\{([^}]*)\}\s+([\d.eE+-]+)/.exec(line)
    if (!m) continue
    const [, name, labels, value] = m
    if (/failures_total$/.test(name) && /\breason="/.test(labels)) add('counted', Number(value))
    const outcome = /failure_log\w*_total$/.test(name) ? /\boutcome="(\w+)"/.exec(labels)?.[1] : undefined
    if (outcome === 'written' || outcome === 'folded' || outcome === 'dropped') add(outcome, Number(value))
  }
  return out
}

/**
 * What ours wrote of its MQTT state to SQLite over the whole run (from its start), from /metrics: rows written or
 * deleted, write-behind transactions and their total time (all 0 with MQTT_STATE=memory).
 */
async function stateWrites(b: BrokerHandle): Promise<Record<string, number>> {
  const out: Record<string, number> = { stateRowsWritten: NaN, stateWrites: NaN, stateWriteSeconds: NaN }
  try {
    const text = await (await fetch(`${b.httpUrl}/metrics`)).text()
    const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([\\d.eE+-]+)`, 'm').exec(text)?.[1] ?? NaN)
    out.stateRowsWritten = value('mqtt_state_write_rows_total')
    out.stateWrites = value('mqtt_state_write_seconds_count')
    out.stateWriteSeconds = Math.round(value('mqtt_state_write_seconds_sum') * 1000) / 1000
  } catch { /* a tree without these metrics */ }
  return out
}

// ---------------------------------------------------------------------------------------------------- running
interface Run {
  round: number, scenario: ScenarioName, peer: PeerName, result?: Result, error?: string, noisy?: boolean
  /** missing in results.json files written before --transport: ws */
  transport?: Transport
}
const runs: Run[] = []

async function withBroker<T extends Result>(peer: PeerName, fn: (b: BrokerHandle) => Promise<T>, label: string, transport: Transport = 'ws', scenario?: ScenarioName): Promise<T> {
  const profDir = path.join(PROFILE_DIR, label)
  const profiling = profile && (peer === 'ours' || peer === 'ours:memory' || peer === 'ours+acl')
  const b = await startBroker(peer, {
    oursNodeArgs: profiling ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
    inspect: label.startsWith('memory-'), // a full GC before each RSS reading
    aclRules,
    tcp: transport === 'tcp',
    mosquittoPersistence: scenario !== undefined && MOSQUITTO_PERSISTENCE.includes(scenario),
  })
  try {
    const r = await fn(b)
    if (peer === 'ours' || peer === 'ours:memory') Object.assign(r.details, await stateWrites(b))
    if (profiling && r.details.windowStartUs !== undefined) {
      // bench/profile-summary.ts reads this to cut the profile to the measurement window
      fs.writeFileSync(path.join(PROFILE_DIR, `${label}.window.json`),
        JSON.stringify({ startUs: r.details.windowStartUs, endUs: r.details.windowEndUs }) + '\n')
    }
    return r
  } catch (err) {
    throw new Error(`${(err as Error).message}${b.output() ? `\n--- ${peer} output ---\n${b.output().slice(-2000)}` : ''}`)
  } finally {
    await b.stop()
    if (profiling) keepMainThreadProfile(profDir, path.join(PROFILE_DIR, `${label}.cpuprofile`))
  }
}

/**
 * Node writes one profile per thread (the tsx loader runs on a thread of its own); the main thread's is the one
 * whose file name carries thread id 0 (CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile). Keep it under `to`.
 */
function keepMainThreadProfile(dir: string, to: string): void {
  try {
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
    const main = files.find((f) => f.split('.')[4] === '0') ?? files[0]
    if (main) fs.renameSync(path.join(dir, main), to)
    fs.rmSync(dir, { recursive: true, force: true })
  } catch (err) {
    console.log(`  (no CPU profile: ${(err as Error).message})`)
  }
}

function describe(r: Result): string {
  const d = r.details
  const cpu = d.brokerCpuPct !== undefined ? ` (cpu: broker ${d.brokerCpuPct}%, generator ${d.genCpuPct}%, other ${d.otherCpuPct}%)` : ''
  const state = num(d.stateRowsWritten) > 0
    ? `; state: ${fmt(num(d.stateRowsWritten))} rows written in ${fmt(num(d.stateWrites))} transactions (${fmt(num(d.stateWriteSeconds))} s)` +
      (num(d.deliveredTotal) > 0 ? `, ${fmt(num(d.stateRowsWritten) / num(d.deliveredTotal))} per message delivered` : '')
    : ''
  if (r.unit === 'ms p50') return `p50 ${d.p50Ms} ms, p99 ${d.p99Ms} ms, lost ${d.lost}`
  if (d.deliveryMs !== undefined) {
    // (NaN arrives as null over IPC: a run where some subscriber missed messages has no delivery time)
    const delivered = Number.isFinite(num(r.value))
      ? `${d.subscribers} subscribers had them all after ${fmt(num(r.value))} ms (${fmt(num(d.deliveriesPerSec))} deliveries/s, first ${d.firstSubscriberDoneMs} ms`
      : `${fmt(num(d.deliveriesPerSec))} deliveries/s, but only ${fmt(num(d.delivered))} of ${fmt(num(d.subscribers) * num(d.topics))} delivered, ${d.subscribersComplete} of ${d.subscribers} subscribers complete (${d.ended}, the last at ${d.lastDeliveryAtMs} ms`
    return `${fmt(num(d.topics))} retained stored in ${fmt(num(d.publishMs))} ms; ${delivered}; cpu: broker ` +
      `${d.brokerCpuPct}%, generator ${d.genCpuPct}%, other ${d.otherCpuPct}%); RSS ${mib(num(d.rssIdleKiB))} -> peak ${mib(num(d.rssPeakKiB))} MiB${state}`
  }
  if (r.unit === 'KiB/conn') return `${fmt(r.value)} KiB/conn (RSS ${d.rssBeforeKiB} -> ${d.rssAfterKiB} KiB)` +
    (d.rssReadingsAfterGcKiB !== 'no GC can be forced' ? `, after a full GC ${fmt(Number(d.perConnAfterGcKiB))} KiB/conn` : '')
  return `${fmt(r.value)} ${r.unit}${cpu}${d.lost ? `, lost ${d.lost}` : ''}${state}`
}

const MAX_OTHER_CPU = Number(process.env.BENCH_MAX_OTHER_CPU ?? 40)
const NOISY_RETRIES = Number(process.env.BENCH_NOISY_RETRIES ?? (quick ? 0 : 1))
/** After this many seconds, noisy runs are no longer repeated (keeps the whole bench near 10 minutes). */
const RETRY_UNTIL_S = Number(process.env.BENCH_RETRY_UNTIL_S ?? 420)
const benchStart = performance.now()

/** A run during which other processes used more than MAX_OTHER_CPU % of a core is noisy. */
function isNoisy(r: Result): boolean {
  const other = num(r.details.otherCpuPct)
  return Number.isFinite(other) && other > MAX_OTHER_CPU
}

const QUIET_WAIT_MS = Number(process.env.BENCH_QUIET_WAIT_MS ?? (quick ? 0 : 20_000))
let quietBudgetMs = Number(process.env.BENCH_QUIET_BUDGET_MS ?? (quick ? 0 : 120_000))

/**
 * On a shared machine: before a run, wait (at most QUIET_WAIT_MS, and at most what is left of the bench's budget)
 * until the rest of the machine has used at most MAX_OTHER_CPU % of a core over half a second.
 */
async function waitForQuiet(): Promise<void> {
  const start = Date.now()
  const until = start + Math.min(QUIET_WAIT_MS, quietBudgetMs)
  let said = false
  while (Date.now() < until) {
    const a = machineBusyMs()
    await sleep(500)
    const b = machineBusyMs()
    if (a === null || b === null || ((b - a) * 100) / 500 <= MAX_OTHER_CPU) break
    if (!said) console.log('  (waiting for the machine to quieten)')
    said = true
  }
  quietBudgetMs -= Date.now() - start
}

/** The scenario as the progress lines name it: with its transport when TCP is in the run. */
const scenarioTag = (s: ScenarioName, t: Transport) => (transports.includes('tcp') ? `${s}/${t}` : s)

async function runOne(round: number, scenario: Exclude<ScenarioName, 'failstorm'>, peer: PeerName, transport: Transport): Promise<void> {
  const tagged = scenarioTag(scenario, transport).padEnd(transports.includes('tcp') ? 19 : 15)
  for (let attempt = 0; attempt <= NOISY_RETRIES; attempt++) {
    await waitForQuiet()
    const label = `${scenario}${transport === 'ws' ? '' : `-${transport}`}-${peer.replace(/[+:]/g, '-')}-r${round}${attempt ? `-a${attempt}` : ''}`
    const t0 = performance.now()
    try {
      const result = await withBroker(peer, (b) => runGen(jobFor(scenario, b, transport), genTimeout(scenario)), label, transport, scenario)
      const noisy = isNoisy(result)
      runs.push({ round, scenario, peer, transport, result, noisy })
      const again = noisy && attempt < NOISY_RETRIES && (performance.now() - benchStart) / 1000 < RETRY_UNTIL_S
      console.log(`  ${tagged} ${peer.padEnd(11)} ${describe(result)}  [${((performance.now() - t0) / 1000).toFixed(1)} s]` +
        (noisy ? (again ? '  noisy: again' : '  noisy') : ''))
      if (!again) return
    } catch (err) {
      const error = (err as Error).message
      runs.push({ round, scenario, peer, transport, error })
      console.log(`  ${tagged} ${peer.padEnd(11)} FAILED: ${error.split('\n').slice(0, 6).join('\n    ')}`)
      return
    }
  }
}

/**
 * Issue 4: the QoS 0 fan-in alone, then again beside a storm of failing connections from a second generator; the
 * failures our log recorded per second, and how far the fan-in dropped.
 */
async function runStorm(round: number): Promise<void> {
  await waitForQuiet()
  const t0 = performance.now()
  try {
    const result = await withBroker('ours', async (b) => {
      const fanin = jobFor('fanin', b)
      const before1 = await runGen(fanin, genTimeout())
      const c0 = await failureCounts(b)
      // the storm starts first and outlasts the fan-in's set-up, warm-up and measurement
      const stormJob: Job = {
        url: b.wsUrl, pid: b.pid, scenario: 'failstorm', durationMs: timing.warmupMs + timing.measureMs + 3000, concurrency: 200,
      }
      const stormRun = runGen(stormJob, genTimeout())
      await sleep(500)
      const loaded = await runGen(fanin, genTimeout())
      const storm = await stormRun
      await sleep(1000) // the failure log writes in batches every few hundred ms
      const c1 = await failureCounts(b)
      const before2 = await runGen(fanin, genTimeout())
      const secs = Number(storm.details.seconds)
      const rate = (k: keyof FailureCounts) => Math.round((c1[k] - c0[k]) / secs)
      const baseline = (before1.value + before2.value) / 2
      const dropPct = ((baseline - loaded.value) / baseline) * 100
      const covered = Number(storm.details.windowStartUs) <= Number(loaded.details.windowStartUs) &&
        Number(storm.details.windowEndUs) >= Number(loaded.details.windowEndUs)
      return {
        value: rate('counted'),
        unit: 'failures/s',
        details: {
          failuresCountedPerSec: rate('counted'),
          logWrittenPerSec: rate('written'),
          logFoldedPerSec: rate('folded'),
          logDroppedPerSec: rate('dropped'),
          failingConnectionsPerSec: storm.value,
          baselineFanInMsgPerSec: Math.round(baseline),
          baselineRuns: `${Math.round(before1.value)} before, ${Math.round(before2.value)} after`,
          stormFanInMsgPerSec: Math.round(loaded.value),
          throughputDropPct: Math.round(dropPct * 10) / 10,
          stormCoveredMeasurement: covered ? 'yes' : 'no',
          brokerCpuPctFanInDuringStorm: loaded.details.brokerCpuPct,
          otherCpuPct: Math.max(Number(before1.details.otherCpuPct), Number(loaded.details.otherCpuPct), Number(before2.details.otherCpuPct)),
          stormGenCpuPct: storm.details.genCpuPct,
          stormAttempts: storm.details.attempts,
          stormClosedByServer: storm.details.closedByServer,
          stormErrors: storm.details.errors,
          stormConcurrency: stormJob.concurrency,
          // the fan-in's measurement during the storm (a profile is cut to it)
          windowStartUs: loaded.details.windowStartUs,
          windowEndUs: loaded.details.windowEndUs,
        },
      } satisfies Result
    }, `failstorm-ours-r${round}`)
    const noisy = isNoisy(result)
    runs.push({ round, scenario: 'failstorm', peer: 'ours', transport: 'ws', result, noisy })
    const d = result.details
    console.log(`  failstorm ours      ${d.failingConnectionsPerSec} failing conns/s made; ${d.failuresCountedPerSec} failures/s counted, ` +
      `log: ${d.logWrittenPerSec} rows/s written, ${d.logFoldedPerSec}/s folded, ${d.logDroppedPerSec}/s dropped; ` +
      `fan-in ${d.baselineFanInMsgPerSec} -> ${d.stormFanInMsgPerSec} msg/s (drop ${d.throughputDropPct}%)` +
      `  [${((performance.now() - t0) / 1000).toFixed(1)} s]${noisy ? '  noisy' : ''}`)
  } catch (err) {
    const error = (err as Error).message
    runs.push({ round, scenario: 'failstorm', peer: 'ours', transport: 'ws', error })
    console.log(`  failstorm ours      FAILED: ${error.split('\n').slice(0, 6).join('\n    ')}`)
  }
}

// ---------------------------------------------------------------------------------------------------- summary
interface MetricDef {
  scenario: ScenarioName
  label: string
  better: 'higher' | 'lower'
  pick: (r: Result) => number
  /** a throughput figure: marked ">=" when the generator, not the broker, was the limit */
  throughput?: boolean
  /** the issue's target for ours */
  target?: { text: string, met: (v: Partial<Record<PeerName, number>>) => boolean | null }
}
type Target = NonNullable<MetricDef['target']>
type Values = Partial<Record<PeerName, number>>
/** ours at least `factor` x each peer named (the peers not in the run are left out; none of them: no verdict) */
const atLeast = (factors: Partial<Record<PeerName, number>>): Target => ({
  text: Object.entries(factors).map(([p, f]) => (f === 1 ? `>= ${p}` : `>= ${f}x ${p}`)).join(', '),
  met: (v: Values) => {
    const checks = Object.entries(factors).filter(([p]) => v[p as PeerName] !== undefined)
    if (v.ours === undefined || checks.length === 0) return null
    return checks.every(([p, f]) => v.ours! >= (f as number) * v[p as PeerName]!)
  },
})
/** ours at most `max` (an absolute bound) */
const atMost = (max: number, unit: string): Target => ({
  text: `<= ${max} ${unit}`,
  met: (v: Values) => (v.ours === undefined ? null : v.ours <= max),
})
/** A detail as a number; missing (or null: NaN does not survive JSON) is NaN. */
const num = (v: unknown) => (v === null || v === undefined || v === '' ? NaN : Number(v))
const mib = (kib: number) => (Number.isFinite(kib) ? (kib / 1024).toFixed(1) : '-')
/** µs of broker CPU per operation: comparable even when the generator was the limit. */
const cpuPerOp = (r: Result) => (num(r.details.brokerCpuPct) * 10_000) / r.value
const METRICS: MetricDef[] = [
  { scenario: 'fanin', label: 'QoS 0 fan-in 20->1, 64 B (msg/s)', better: 'higher', pick: (r) => r.value, throughput: true, target: atLeast({ aedes: 3, mosquitto: 1.2 }) },
  { scenario: 'fanin', label: '  broker CPU per message (µs)', better: 'lower', pick: cpuPerOp },
  { scenario: 'fanout', label: 'QoS 0 fan-out 1->50 (deliveries/s)', better: 'higher', pick: (r) => r.value, throughput: true, target: atLeast({ aedes: 3, mosquitto: 1 }) },
  { scenario: 'fanout', label: '  broker CPU per delivery (µs)', better: 'lower', pick: cpuPerOp },
  { scenario: 'qos1', label: 'QoS 1 10->1, acked+delivered (msg/s)', better: 'higher', pick: (r) => r.value, throughput: true, target: atLeast({ aedes: 3, mosquitto: 1.3 }) },
  { scenario: 'qos1', label: '  broker CPU per message (µs)', better: 'lower', pick: cpuPerOp },
  { scenario: 'qos1-persistent', label: 'QoS 1 10->1, persistent subscriber (clean 0), acked+delivered (msg/s)', better: 'higher', pick: (r) => r.value, throughput: true },
  { scenario: 'qos1-persistent', label: '  broker CPU per message (µs)', better: 'lower', pick: cpuPerOp },
  // ours only (from its /metrics, over the whole run): an in-flight entry written, then deleted when acknowledged, is 2
  { scenario: 'qos1-persistent', label: '  SQLite rows written per message', better: 'lower', pick: (r) => num(r.details.stateRowsWritten) / num(r.details.deliveredTotal) },
  { scenario: 'retained', label: `retained: ${RETAINED.topics.toLocaleString('en-US')} stored, QoS 1, ${RETAINED.publishers} publishers (ms)`, better: 'lower', pick: (r) => num(r.details.publishMs) },
  { scenario: 'retained', label: `retained: ${RETAINED.subscribers} new subscribers x ${RETAINED.topics.toLocaleString('en-US')} delivered (ms)`, better: 'lower', pick: (r) => r.value },
  { scenario: 'retained', label: '  deliveries/s', better: 'higher', pick: (r) => num(r.details.deliveriesPerSec), throughput: true },
  { scenario: 'retained', label: '  broker CPU per delivery (µs)', better: 'lower', pick: (r) => (num(r.details.brokerCpuPct) * 10_000) / num(r.details.deliveriesPerSec) },
  { scenario: 'retained', label: 'retained: broker peak RSS (MiB)', better: 'lower', pick: (r) => num(r.details.rssPeakKiB) / 1024 },
  { scenario: 'retained', label: '  idle RSS before (MiB)', better: 'lower', pick: (r) => num(r.details.rssIdleKiB) / 1024 },
  { scenario: 'latency', label: `QoS 1 latency p50 @ ${LATENCY_RATE} msg/s (ms)`, better: 'lower', pick: (r) => num(r.details.p50Ms) },
  { scenario: 'latency', label: `QoS 1 latency p99 @ ${LATENCY_RATE} msg/s (ms)`, better: 'lower', pick: (r) => num(r.details.p99Ms) },
  { scenario: 'connect', label: `connects/s, ${CONNECT_CONCURRENCY} concurrent`, better: 'higher', pick: (r) => r.value, throughput: true, target: atLeast({ aedes: 2, mosquitto: 1.5 }) },
  { scenario: 'connect', label: '  broker CPU per connect (µs)', better: 'lower', pick: cpuPerOp, target: atMost(150, 'µs') },
  {
    scenario: 'memory', label: `RSS per idle connection, ${MEMORY_CLIENTS} clients, after a full GC (KiB)`, better: 'lower',
    pick: (r) => num(r.details.perConnAfterGcKiB),
    target: atMost(7, 'KiB'),
  },
  { scenario: 'failstorm', label: 'failures/s absorbed by the log during QoS 0 load', better: 'higher', pick: (r) => num(r.details.failuresCountedPerSec) - num(r.details.logDroppedPerSec) },
  { scenario: 'failstorm', label: '  of which written as rows (rows/s)', better: 'higher', pick: (r) => num(r.details.logWrittenPerSec) },
  { scenario: 'failstorm', label: '  of which folded into flood summaries (/s)', better: 'higher', pick: (r) => num(r.details.logFoldedPerSec) },
  { scenario: 'failstorm', label: '  dropped (/s)', better: 'lower', pick: (r) => num(r.details.logDroppedPerSec) },
  { scenario: 'failstorm', label: 'QoS 0 fan-in before/after the storm (msg/s)', better: 'higher', pick: (r) => num(r.details.baselineFanInMsgPerSec) },
  { scenario: 'failstorm', label: 'QoS 0 fan-in during the storm (msg/s)', better: 'higher', pick: (r) => num(r.details.stormFanInMsgPerSec) },
  { scenario: 'failstorm', label: 'QoS 0 fan-in drop during the storm (%)', better: 'lower', pick: (r) => num(r.details.throughputDropPct) },
]

/** Which run of a scenario stands for a broker: its quiet runs before noisy ones, then the best by this figure. */
const HEADLINE: Record<ScenarioName, { pick: (r: Result) => number, better: 'higher' | 'lower' }> = {
  fanin: { pick: (r) => r.value, better: 'higher' },
  fanout: { pick: (r) => r.value, better: 'higher' },
  qos1: { pick: (r) => r.value, better: 'higher' },
  'qos1-persistent': { pick: (r) => r.value, better: 'higher' },
  // a run where a subscriber missed messages has no delivery time (NaN): it ranks last
  retained: { pick: (r) => r.value, better: 'lower' },
  latency: { pick: (r) => num(r.details.p99Ms), better: 'lower' },
  connect: { pick: (r) => r.value, better: 'higher' },
  memory: { pick: (r) => num(r.details.perConnAfterGcKiB), better: 'lower' },
  failstorm: { pick: (r) => num(r.details.failuresCountedPerSec), better: 'higher' },
}

function bestRun(scenario: ScenarioName, peer: PeerName, transport: Transport = 'ws'): Run | undefined {
  const ok = runs.filter((r) => r.scenario === scenario && r.peer === peer && (r.transport ?? 'ws') === transport && r.result)
  const quiet = ok.filter((r) => !r.noisy)
  const h = HEADLINE[scenario]
  const score = (r: Run) => (h.better === 'higher' ? 1 : -1) * (Number.isFinite(h.pick(r.result!)) ? h.pick(r.result!) : -Infinity)
  return (quiet.length ? quiet : ok).sort((a, b) => score(b) - score(a))[0]
}

/** The generator, not the broker, was the limit: it used (nearly) a whole core while the broker did not. */
function generatorBound(r: Result): boolean {
  return num(r.details.genCpuPct) >= 90 && num(r.details.brokerCpuPct) < 85
}

/**
 * The metrics in table order, each with the transport it is over: a scenario's rows over WebSocket, then the same
 * over TCP. Labels name the transport only when TCP is in the run (a WebSocket-only table reads as it always did).
 */
function metricRows(filter: (s: ScenarioName) => boolean): Array<{ m: MetricDef, transport: Transport, label: string }> {
  const out: Array<{ m: MetricDef, transport: Transport, label: string }> = []
  const named = transports.includes('tcp')
  const order = [...new Set(METRICS.map((m) => m.scenario))]
  for (const s of order) {
    if (!scenarios.includes(s) || !filter(s)) continue
    for (const t of transportsFor(s)) {
      for (const m of METRICS.filter((x) => x.scenario === s)) {
        out.push({ m, transport: t, label: named ? `${m.label} [${t === 'ws' ? 'WebSocket' : 'TCP'}]` : m.label })
      }
    }
  }
  return out
}

function summarise(): Array<Row & { transport: Transport }> {
  const rows: Array<Row & { transport: Transport }> = []
  for (const { m, transport, label } of metricRows(() => true)) {
    const values: Partial<Record<PeerName, number>> = {}
    const marks: Partial<Record<PeerName, string>> = {}
    for (const p of tablePeers()) {
      const run = bestRun(m.scenario, p, transport)
      if (!run) continue
      const v = m.pick(run.result!)
      if (!Number.isFinite(v)) continue
      values[p] = v
      marks[p] = (run.noisy ? '~' : '') + (m.throughput && generatorBound(run.result!) ? '>=' : '')
    }
    rows.push({ label, transport, better: m.better, values, marks, target: m.target?.text ?? null, met: m.target ? m.target.met(values) : null })
  }
  return rows
}

/** The ACL comparison: each figure of the ACL scenarios without and with the rules, and their ratio (target: within 10%). */
function aclTable(): string {
  return pairTable('ours', 'ours+acl', ['ours', `ours + ${aclRules} ACL rules`, 'with/without'], 'b/a', 0.1, (s) => ACL_SCENARIOS.includes(s))
}

/**
 * The durable state's cost: each figure of ours with MQTT_STATE=sqlite and =memory, and durable/memory (target:
 * within 15%). The storm runs on ours (sqlite) only.
 */
function stateTable(): string {
  return pairTable('ours', 'ours:memory', ['ours (sqlite)', 'ours:memory', 'durable/memory'], 'a/b', 0.15, (s) => s !== 'failstorm')
}

/**
 * Two variants of ours side by side, figure by figure, with their ratio (`q`: b/a or a/b, named by `heads[2]`) and
 * whether each headline figure's ratio is within `tolerance` of 1 in the worse direction.
 */
function pairTable(a: PeerName, b: PeerName, heads: [string, string, string], q: 'b/a' | 'a/b', tolerance: number, filter: (s: ScenarioName) => boolean): string {
  const [num1, den1] = q === 'a/b' ? [a, b] : [b, a]
  const head = ['scenario', 'better', heads[0], heads[1], heads[2], 'target']
  const lines: string[][] = []
  const pct = Math.round(tolerance * 100)
  for (const { m, transport, label } of metricRows(filter)) {
    const runA = bestRun(m.scenario, a, transport)
    const runB = bestRun(m.scenario, b, transport)
    if (!runA && !runB) continue
    const v = (r: Run | undefined) => (r ? m.pick(r.result!) : NaN)
    const mark = (r: Run | undefined) => (r?.noisy ? '~' : '') + (r && m.throughput && generatorBound(r.result!) ? '>=' : '')
    const r = ratio(v(bestRun(m.scenario, num1, transport)), v(bestRun(m.scenario, den1, transport)))
    const headline = !m.label.startsWith(' ')
    const met = r === undefined ? '?' : (m.better === 'higher' ? r >= 1 - tolerance : r <= 1 + tolerance) ? 'met' : 'NOT met'
    // a verdict from a disturbed run says little: it says so
    const noisy = runA?.noisy || runB?.noisy ? ' (noisy)' : ''
    lines.push([label, m.better, mark(runA) + fmt(v(runA)), mark(runB) + fmt(v(runB)), r === undefined ? '-' : `${r.toFixed(3)}x`,
      headline ? `within ${pct}%: ${met}${noisy}` : ''])
  }
  return markdownTable(head, lines)
}

function mosquittoVersion(): string | null {
  const bin = mosquittoPath()
  if (!bin) return null
  try {
    return execFileSync(bin, ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]
  } catch (err) {
    const out = String((err as { stdout?: string }).stdout ?? '')
    return out.split('\n')[0] || null
  }
}

function aedesVersion(): string | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/aedes/package.json'), 'utf8')).version
  } catch {
    return null
  }
}

// ---------------------------------------------------------------------------------------------------- main
async function main() {
  const started = new Date()
  const t0 = performance.now()
  const from = flag('from')
  if (from) {
    // re-print the table of an earlier run (e.g. after changing how it is summarised); nothing is run or written
    const earlier = JSON.parse(fs.readFileSync(from, 'utf8'))
    runs.push(...earlier.runs)
    peers = earlier.config.peers
    scenarios.splice(0, scenarios.length, ...earlier.config.scenarios)
    rounds = earlier.config.rounds
    Object.assign(timing, earlier.config.timing)
    MEMORY_CLIENTS = earlier.config.memoryClients
    aclRules = earlier.config.aclRules ?? 0
    transports = earlier.config.transports ?? ['ws']
    states = earlier.config.states ?? ['sqlite']
    const out = [scenarios.length ? table(summarise(), tablePeers()) : '']
    if (aclRules) out.push(aclTable())
    if (states.length > 1) out.push(stateTable())
    if (earlier.attackRuns?.length) out.push(attackReport(earlier.attackRuns, earlier.config.attackPeers))
    if (earlier.startupRun) out.push(startupReport(earlier.startupRun))
    if (earlier.stormRuns?.length) out.push(stormReport(earlier.stormRuns))
    if (earlier.idleRuns?.length) out.push(idleReport(earlier.idleRuns))
    if (earlier.aliasRuns?.length) out.push(aliasReport(earlier.aliasRuns))
    if (earlier.clusterBench) out.push(clusterReport(earlier.clusterBench))
    console.log(out.filter(Boolean).join('\n\n') + `\n\nfrom ${from} (${earlier.startedAt}, ${earlier.seconds} s)`)
    return
  }
  if (clusterBench && !scenarios.length && !attacks.length && !startup && !reconnectStorm && !idleFleet && !topicAliases) console.log('bench: the cluster comparison')
  else console.log(`bench: scenarios ${[...scenarios, ...attacks, ...(startup ? ['startup'] : []), ...(reconnectStorm ? ['storm'] : []), ...(idleFleet ? ['idle'] : []), ...(topicAliases ? ['alias'] : [])].join(', ')}` +
    `${scenarios.length || attacks.length || reconnectStorm || idleFleet || topicAliases ? `; peers ${peers.join(', ')}` : '; ours only'}` +
    `${aclRules ? ` (+ ours+acl: ${aclRules} ACL rules)` : ''}` +
    `${scenarios.length && peers.includes('ours') && (states.length > 1 || states[0] !== 'sqlite') ? `; ours as ${states.map(oursFor).join(' and ')}` : ''}` +
    `${scenarios.length && (transports.length > 1 || transports[0] !== 'ws') ? `; over ${transports.map((t) => (t === 'ws' ? 'WebSocket' : 'TCP')).join(' and ')}` : ''}` +
    `${attacks.length ? `; attacks (once) on ${attackPeers.join(', ')}` : ''}` +
    `${clusterBench ? '; the cluster comparison' : ''}` +
    (scenarios.length ? `; ${rounds} round(s); warm-up ${timing.warmupMs} ms, measure ${timing.measureMs} ms${quick ? ' (quick)' : ''}` : '') +
    `${profile ? '; CPU profiles of ours' : ''}`)
  if (profile) fs.mkdirSync(PROFILE_DIR, { recursive: true })
  for (let round = 1; round <= (scenarios.length ? rounds : 0); round++) {
    console.log(`round ${round}/${rounds}`)
    for (const s of scenarios) {
      if (s === 'failstorm') {
        if (peers.includes('ours')) await runStorm(round)
        continue
      }
      for (const t of transportsFor(s)) {
        for (const p of peersFor(s)) await runOne(round, s, p, t)
      }
    }
  }
  // the attacks run once: their figures are RSS peaks and answers, not rates to take the best of
  const attackRuns: AttackRun[] = attacks.length ? await runAttacks(attacks, attackPeers, PARAMS, waitForQuiet) : []
  // the start-up scenario runs once (ours only): a build of the state and a few starts on it
  const startupRun: StartupRun | null = startup ? await runStartup(PARAMS.startup ?? {}, waitForQuiet) : null
  // the reconnect storm: its own rounds over ours, ours:wallclock and the peers named
  const stormPeers = STORM_PEERS.filter((p) => peers.includes(p) || (p === 'ours:wallclock' && peers.includes('ours')))
  const stormRuns: StormRun[] = reconnectStorm ? await runReconnectStorm(stormPeers, rounds, PARAMS.storm ?? {}, waitForQuiet) : []
  // the idle fleet: once per peer (ours, Mosquitto, Aedes as named)
  const idleRuns: IdleRun[] = idleFleet
    ? await runIdle((['ours', 'mosquitto', 'aedes'] as PeerName[]).filter((p) => peers.includes(p)), PARAMS.idle ?? {}, waitForQuiet) : []
  // outbound topic aliases: ours and Mosquitto (Aedes speaks no MQTT 5)
  const aliasRuns: AliasRun[] = topicAliases
    ? await runAlias((['ours', 'mosquitto'] as PeerName[]).filter((p) => peers.includes(p)), PARAMS.alias ?? {}) : []
  // the cluster comparison: its own systems (3 nodes of ours, one, Aedes on Redis, one Aedes) and rounds
  const cluster: ClusterBench | null = clusterBench ? await runClusterBench(PARAMS.cluster ?? {}, {
    jobFor: (s, b) => jobFor(s, b), runGen, waitForQuiet, maxOtherCpu: MAX_OTHER_CPU, profileDir: profile ? PROFILE_DIR : undefined,
  }, clusterScenarios()) : null
  const rows = summarise()
  const tbl = scenarios.length ? table(rows, tablePeers()) : ''
  const aclTbl = aclRules && scenarios.some((s) => ACL_SCENARIOS.includes(s)) ? aclTable() : ''
  const stateTbl = states.length > 1 && peers.includes('ours') && scenarios.some((s) => s !== 'failstorm') ? stateTable() : ''
  const attackMd = attackRuns.length ? attackReport(attackRuns, attackPeers) : ''
  const startupMd = startupRun ? startupReport(startupRun) : ''
  const stormMd = stormRuns.length ? stormReport(stormRuns) : ''
  const idleMd = idleRuns.length ? idleReport(idleRuns) : ''
  const aliasMd = aliasRuns.length ? aliasReport(aliasRuns) : ''
  const clusterMd = cluster ? clusterReport(cluster) : ''
  const elapsed = (performance.now() - t0) / 1000
  const machine = {
    cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, node: process.version,
    aedes: aedesVersion(), mosquitto: mosquittoVersion(), platform: `${os.type()} ${os.release()}`,
  }
  const notes = [
    `Best of ${rounds} round(s) per figure; each broker freshly started per scenario and round, in its own process;`,
    `load from raw ws + mqtt-packet clients in separate generator processes, MQTT 3.1.1, all on 127.0.0.1.`,
    ...(transports.includes('tcp') ? [
      `[TCP]: the same packets on plain TCP sockets (net.Socket + mqtt-packet): ours' MQTT_TCP_PORT listener, Mosquitto's`,
      `TCP listener, Aedes behind net.createServer(aedes.handle); [WebSocket]: over ws:// as always.`,
    ] : []),
    `Warm-up ${timing.warmupMs} ms, measure ${timing.measureMs} ms. ${machine.cpus} cores (${machine.cpuModel}), Node ${machine.node},`,
    `aedes ${machine.aedes ?? '?'}, ${machine.mosquitto ?? 'mosquitto not installed'}. Ran ${elapsed.toFixed(0)} s.`,
    `A run is noisy when other processes used more than ${MAX_OTHER_CPU}% of a core meanwhile; it is run again`,
    `(${NOISY_RETRIES} time(s)), and a figure marked ~ comes from noisy runs only. A throughput marked >= was limited`,
    `by the generator (it used 90% or more of a core, the broker less than 85%): the broker could do more.`,
    `"broker CPU per ..." is the broker's CPU time over the measurement divided by the operations: it compares brokers`,
    `even where the generator was the limit. Memory is read after a full GC (forced through the inspector) for the Node`,
    `brokers; without one their RSS moves with collection timing (even below zero): results.json keeps that figure too.`,
    ...(peers.includes('ours') ? [states.length > 1
      ? `ours: MQTT_STATE=sqlite (retained messages and sessions written behind to its SQLite file every 20 ms, the default);`
        + `\nours:memory: MQTT_STATE=memory (kept in memory only); both in every round, the one right after the other.`
      : `ours: MQTT_STATE=${states[0]}.`] : []),
    ...(scenarios.includes('qos1-persistent') ? [
      `qos1-persistent: qos1 with its subscriber on a persistent session (clean session 0, fixed client id): every delivery`,
      `is an in-flight entry of a session that outlives its connection.`,
    ] : []),
    ...(scenarios.includes('retained') ? [
      `retained: ${RETAINED.topics.toLocaleString('en-US')} retained ${RETAINED.payloadBytes}-byte messages to distinct topics bench/r/<i>, published at QoS 1 by ${RETAINED.publishers} clients`,
      `(${RETAINED.inflight} in flight each): "stored" = every PUBLISH acknowledged (ours writes to SQLite behind that, within 20 ms);`,
      `then ${RETAINED.subscribers} connected clients each send SUBSCRIBE ${RETAINED.filter} (QoS 0) at once: the time until every one has all`,
      `${RETAINED.topics.toLocaleString('en-US')}. Peak RSS: the broker's VmHWM over the run.`,
    ] : []),
    ...(scenarios.some((s) => MOSQUITTO_PERSISTENCE.includes(s)) && peers.some((p) => p === 'mosquitto' || p === 'aedes') ? [
      `In ${MOSQUITTO_PERSISTENCE.filter((s) => scenarios.includes(s)).join(' and ')}, Mosquitto runs with \`persistence true\` (its file in a tmp folder; it`,
      `keeps its state in memory and writes the file every autosave_interval, 1800 s by default, and at exit, so never during`,
      `a run); Aedes has in-memory persistence only (aedes-persistence, its default): neither writes during the run.`,
    ] : []),
  ]
  const stateNotes = [
    `The same server with MQTT_STATE=sqlite (ours, the default) and MQTT_STATE=memory (ours:memory), best of ${rounds} round(s)`,
    `each, in the same rounds; durable/memory: ours / ours:memory (for "lower is better" figures above 1 is worse).`,
    `Target: the durable state within 15% of memory on every headline figure.`,
  ]
  const aclNotes = [
    `ours+acl: the same server with ${aclRules} ACL rules created through POST /api/acl before the run (bench/lib/acl.ts):`,
    `${aclRules - 1} that match none of the bench's topics (rules for other users' topics, client-id globs, and deny rules`,
    `for every client on other tenants' topics, so the ACL can deny and is evaluated), then one allow for bench/#. It runs`,
    `right after ours in every round; best of ${rounds} round(s) each. with/without: ours+acl / ours.`,
  ]
  const sections = [
    ...(tbl ? [tbl, notes.join('\n')] : []),
    ...(aclTbl ? [`## ACL: ours without and with ${aclRules} rules`, aclTbl, aclNotes.join('\n')] : []),
    ...(stateTbl ? ['## Durable state: ours with MQTT_STATE=sqlite and =memory', stateTbl, stateNotes.join('\n')] : []),
    ...(attackMd ? [attackMd] : []),
    ...(startupMd ? [startupMd] : []),
    ...(stormMd ? [stormMd] : []),
    ...(idleMd ? [idleMd] : []),
    ...(aliasMd ? [aliasMd] : []),
    ...(clusterMd ? [clusterMd] : []),
  ]
  console.log('\n' + sections.join('\n\n'))
  const failed = runs.filter((r) => r.error)
  if (failed.length) console.log(`\n${failed.length} run(s) failed: ${failed.map((r) => `${scenarioTag(r.scenario, r.transport ?? 'ws')}/${r.peer}/r${r.round}`).join(', ')}`)

  fs.mkdirSync(OUT_DIR, { recursive: true })
  const summary = rows.map((r) => ({
    label: r.label, transport: r.transport, better: r.better, values: r.values, target: r.target, met: r.met,
    ratios: Object.fromEntries(tablePeers().filter((p) => p !== 'ours').map((p) => [`ours/${p}`, ratio(r.values.ours, r.values[p]) ?? null])),
  }))
  fs.writeFileSync(path.join(OUT_DIR, 'results.json'), JSON.stringify({
    startedAt: started.toISOString(), seconds: Math.round(elapsed), machine,
    config: { scenarios, peers, transports, states, rounds, timing, quick, memoryClients: MEMORY_CLIENTS, latencyRate: LATENCY_RATE, aclRules, attacks, attackPeers, startup, reconnectStorm, idleFleet, topicAliases, cluster: clusterBench },
    summary, runs, attackRuns, startupRun, stormRuns, idleRuns, aliasRuns, clusterBench: cluster,
  }, null, 2) + '\n')
  const machineLine = `${machine.cpus} cores (${machine.cpuModel}), Node ${machine.node}, aedes ${machine.aedes ?? '?'}, ` +
    `${machine.mosquitto ?? 'mosquitto not installed'}. Ran ${elapsed.toFixed(0)} s.`
  fs.writeFileSync(path.join(OUT_DIR, 'results.md'), `# Benchmark results (${started.toISOString()})\n\n${sections.join('\n\n')}\n` +
    (tbl ? '' : `\n${machineLine}\n`))
  console.log(`\nwritten: bench-output/results.json, bench-output/results.md${profile ? ', bench-output/profiles/*.cpuprofile' : ''}`)
}

main().catch((err) => {
  console.error(err)
  killAll()
  process.exitCode = 1
})
