// The attack scenarios (`npm run bench -- --scenarios=attacks`), bench side: for each attack and broker, a fresh
// broker with its defaults, a probe process that keeps asking it for round trips and new connections, and an attack
// generator process (bench/gen/attacks.ts). The broker's RSS is read every 50 ms from /proc/<pid>/status; the peak
// over the attack, and whether every probe during it was answered, are the figures.
import { fork, execFileSync, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import fs from 'node:fs'
import { startBroker, ROOT, BEFORE_DIR, type PeerName, type BrokerHandle } from './peers/brokers.ts'
import { track, sleep, rssKiB } from './lib/proc.ts'
import type { Result } from './gen/scenarios.ts'
import type { AttackJob, ProbeJob, AttackPhase } from './gen/attacks.ts'
import type { ReconnectStormJob } from './gen/storm.ts'
import type { IdleFleetJob } from './gen/idle.ts'
import type { TopicAliasJob } from './gen/alias.ts'

export const ATTACKS = ['attack-retained', 'attack-retained-qos1', 'attack-flood', 'attack-sessions', 'attack-slowconnect'] as const
export type AttackName = (typeof ATTACKS)[number]
/** The order of the columns: the change's two sides first. */
export const ATTACK_PEERS: PeerName[] = ['before', 'ours', 'mosquitto', 'aedes']

/** What the attack did, in words, from its parameters. */
export function attackTitle(job: AttackJob): string {
  const n = (x: number) => x.toLocaleString('en-US')
  const kib = (x: number) => (x % 1024 === 0 ? `${x / 1024} KiB` : `${n(x)} B`)
  switch (job.scenario) {
    case 'attack-retained': return `(a${job.qos ? "'" : ''}) one SUBSCRIBE listing \`#\` x${n(job.repeats)} at QoS ${job.qos} over ${n(job.retained)} retained ${kib(job.retainedBytes)} messages; the client never reads (${job.holdMs / 1000} s)`
    case 'attack-flood': return `(b) QoS 1 PUBLISH of ${kib(job.payloadBytes)} at full speed to its own QoS 1 subscription for ${job.durationMs / 1000} s; the client never reads`
    case 'attack-sessions': return `(c) ${n(job.sessions)} persistent sessions (clean session 0, a new client id each: CONNECT, DISCONNECT), at most ${job.maxMs / 1000} s`
    case 'attack-slowconnect': return `(d) ${n(job.sockets)} sockets each sending the first ${kib(job.prefixBytes)} of a ~127 KiB CONNECT, then stalling (${job.holdMs / 1000} s)`
  }
}

const RSS_EVERY_MS = 50
const PROBE_TIMEOUT_MS = 2000
/** A probe answered later than this makes the broker "slow" during an attack, not "responsive". */
const RESPONSIVE_MS = 1000

/** The attacks as the issue states them; BENCH_PARAMS='{"attack-flood":{"durationMs":4000}}' overrides (for exploring). */
function attackJob(a: AttackName, b: BrokerHandle, params: Record<string, Record<string, number>>): AttackJob {
  const t = { url: b.wsUrl, pid: b.pid }
  const base = ((): AttackJob => {
    switch (a) {
      case 'attack-retained': return { ...t, scenario: a, retained: 1000, retainedBytes: 1024, repeats: 500, qos: 0, holdMs: 10_000 }
      case 'attack-retained-qos1': return { ...t, scenario: 'attack-retained', retained: 1000, retainedBytes: 1024, repeats: 500, qos: 1, holdMs: 10_000 }
      case 'attack-flood': return { ...t, scenario: a, durationMs: 8000, payloadBytes: 1024, maxMessages: 2_000_000, tailMs: 1000 }
      case 'attack-sessions': return { ...t, scenario: a, sessions: 20_000, concurrency: 50, maxMs: 18_000, tailMs: 1000 }
      case 'attack-slowconnect': return { ...t, scenario: a, sockets: 2000, prefixBytes: 60 * 1024, concurrency: 100, holdMs: 15_000 }
    }
  })()
  return { ...base, ...params[a] } as AttackJob
}

/** Longest an attack may take from its start (its own bound plus slack), before the bench gives up on it. */
const ATTACK_LIMIT_MS = 20_000 + 15_000

// ---------------------------------------------------------------------------------------------------- processes
export interface GenProcess {
  child: ChildProcess
  /** resolves with the time (epoch ms) the generator reported the phase */
  phase(p: AttackPhase | 'settled' | 'connected', timeoutMs: number): Promise<number>
  result: Promise<Result>
  stop(): void
  /** stop(), and SIGKILL if it has not exited 5 s later (the clean-up after a run: nothing waits for it) */
  dismiss(): void
}

/** A generator process (bench/gen/main.ts) for a job run beside the bench: phases it reports, stop() to end it early. */
export function genProcess(job: AttackJob | ProbeJob | ReconnectStormJob | IdleFleetJob | TopicAliasJob): GenProcess {
  const child = track(fork(path.join(ROOT, 'bench/gen/main.ts'), [], {
    cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  }))
  const phases = new Map<string, number>()
  const waiters: Array<() => void> = []
  let failure: Error | null = null
  const result = new Promise<Result>((resolve, reject) => {
    child.on('message', (m: { phase?: string, at?: number, ok?: boolean, result?: Result, error?: string }) => {
      if (m.phase) {
        phases.set(m.phase, m.at!)
        for (const w of waiters.splice(0)) w()
        return
      }
      if (m.ok) resolve(m.result!)
      else { failure = new Error(m.error); reject(failure) }
      for (const w of waiters.splice(0)) w()
    })
    child.once('exit', (code) => {
      failure ??= new Error(`${job.scenario} generator exited (${code}) before reporting`)
      reject(failure)
      for (const w of waiters.splice(0)) w()
    })
  })
  result.catch(() => {}) // read by the caller; never an unhandled rejection meanwhile
  child.send(job)
  // (a child that has just exited: the send fails, passed to the callback instead of thrown as an 'error' event)
  const stop = () => { if (child.connected) child.send({ stop: true }, () => {}) }
  return {
    child,
    result,
    phase(p, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${job.scenario}: no '${p}' within ${timeoutMs} ms`)), timeoutMs)
        const check = () => {
          if (phases.has(p)) { clearTimeout(timer); resolve(phases.get(p)!) } else if (failure) { clearTimeout(timer); reject(failure) } else waiters.push(check)
        }
        check()
      })
    },
    stop,
    dismiss() {
      stop()
      setTimeout(() => { if (child.exitCode === null) child.kill('SIGKILL') }, 5000).unref()
    },
  }
}

/** Reads the broker's RSS every RSS_EVERY_MS. */
function sampleRss(pid: number) {
  const samples: Array<[at: number, kib: number]> = []
  const read = () => { const r = rssKiB(pid); if (r !== null) samples.push([Date.now(), r]) }
  read()
  const timer = setInterval(read, RSS_EVERY_MS)
  return { samples, stop: () => clearInterval(timer) }
}

/** VmHWM (peak RSS since start) of a process in KiB. */
function hwmKiB(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

// ---------------------------------------------------------------------------------------------------- one attack
export interface ProbeSummary {
  sent: number
  unanswered: number
  p50Ms: number | null
  maxMs: number | null
}

export interface AttackRun {
  attack: AttackName
  /** what the attack did, in words (attackTitle) */
  title?: string
  peer: PeerName
  error?: string
  baselineKiB?: number
  peakKiB?: number
  hwmKiB?: number | null
  samples?: number
  attackMs?: number
  rtt?: ProbeSummary
  connects?: ProbeSummary
  probeClosed?: boolean
  brokerAlive?: boolean
  responsive?: 'yes' | 'slow' | 'no'
  result?: Result
}

function summarise(samples: Array<[number, number | null]>, from: number, to: number): ProbeSummary {
  const inWindow = samples.filter(([at]) => at >= from && at <= to)
  const ok = inWindow.map(([, ms]) => ms).filter((ms): ms is number => ms !== null).sort((a, b) => a - b)
  return {
    sent: inWindow.length,
    unanswered: inWindow.length - ok.length,
    p50Ms: ok.length ? ok[Math.floor(ok.length / 2)] : null,
    maxMs: ok.length ? ok[ok.length - 1] : null,
  }
}

async function runOneAttack(attack: AttackName, peer: PeerName, params: Record<string, Record<string, number>>): Promise<AttackRun> {
  const b = await startBroker(peer, { mosquittoDefaults: true })
  const procs: GenProcess[] = []
  const sampler = sampleRss(b.pid)
  try {
    const probe = genProcess({ scenario: 'probe', url: b.wsUrl, pid: b.pid, intervalMs: 200, connectEveryMs: 1000, timeoutMs: PROBE_TIMEOUT_MS, maxMs: 90_000 })
    procs.push(probe)
    await probe.phase('ready', 20_000)
    await sleep(1000) // a baseline for the RSS and for the probe
    const atk = genProcess(attackJob(attack, b, params))
    procs.push(atk)
    const start = await atk.phase('attack-start', 60_000) // the set-up (retained messages) comes first
    const end = await atk.phase('attack-end', ATTACK_LIMIT_MS)
    const result = await atk.result
    await sleep(PROBE_TIMEOUT_MS + 300) // every probe sent during the attack has its answer or has timed out
    const brokerAlive = rssKiB(b.pid) !== null
    probe.stop()
    const pr = await Promise.race([probe.result, sleep(15_000).then(() => { throw new Error('probe: no result 15 s after stop') })])
    sampler.stop()
    const before = sampler.samples.filter(([at]) => at >= start - 1000 && at < start).map(([, k]) => k)
    const during = sampler.samples.filter(([at]) => at >= start && at <= end).map(([, k]) => k)
    const rtt = summarise(JSON.parse(String(pr.details.rtt)), start, end)
    const connects = summarise(JSON.parse(String(pr.details.connects)), start, end)
    const closedAt = pr.details.probeClosedAt
    const probeClosed = typeof closedAt === 'number' && closedAt <= end + PROBE_TIMEOUT_MS
    const answeredAll = rtt.unanswered === 0 && connects.unanswered === 0 && !probeClosed && brokerAlive && rtt.sent > 0
    const fast = (rtt.maxMs ?? 0) <= RESPONSIVE_MS && (connects.maxMs ?? 0) <= RESPONSIVE_MS
    return {
      attack, peer, result, brokerAlive, probeClosed, rtt, connects,
      baselineKiB: before.length ? Math.min(...before) : sampler.samples[0]?.[1],
      peakKiB: Math.max(...during, ...before),
      hwmKiB: hwmKiB(b.pid),
      samples: during.length,
      attackMs: end - start,
      responsive: !answeredAll ? 'no' : fast ? 'yes' : 'slow',
    }
  } finally {
    sampler.stop()
    for (const p of procs) p.dismiss()
    await b.stop()
    // let sockets in TIME_WAIT and the last closes settle before the next broker
    await sleep(1000)
  }
}

/**
 * Every attack on every peer, once, in turn. `beforeEach` runs before each (the bench waits there for the machine to
 * quieten down).
 */
export async function runAttacks(
  attacks: AttackName[], peers: PeerName[], params: Record<string, Record<string, number>>, beforeEach: () => Promise<void> = async () => {},
): Promise<AttackRun[]> {
  const runs: AttackRun[] = []
  const dummy = { wsUrl: '', pid: 0 } as BrokerHandle
  for (const a of attacks) {
    const title = attackTitle(attackJob(a, dummy, params))
    console.log(`attack ${a}: ${title}`)
    for (const p of peers) {
      await beforeEach()
      const t0 = performance.now()
      let run: AttackRun | null = null
      // a run that failed (a broker that did not start, a generator that died) is tried once more
      for (let attempt = 0; attempt < 2 && (run === null || run.error); attempt++) {
        if (run?.error) console.log(`  ${p.padEnd(9)} failed (${run.error.split('\n')[0]}): once more`)
        try {
          run = { ...await runOneAttack(a, p, params), title }
        } catch (err) {
          run = { attack: a, peer: p, title, error: (err as Error).message }
        }
      }
      if (run === null) continue
      runs.push(run)
      console.log(`  ${p.padEnd(9)} ${run.error ? `FAILED: ${run.error.split('\n').slice(0, 4).join('\n    ')}` : describeRun(run)}  [${((performance.now() - t0) / 1000).toFixed(1)} s]`)
    }
  }
  return runs
}

// ---------------------------------------------------------------------------------------------------- report
const mib = (kib: number | undefined | null) => (kib === undefined || kib === null ? '-' : (kib / 1024).toFixed(kib < 10 * 1024 ? 1 : 0))

function probeText(s: ProbeSummary | undefined): string {
  if (!s) return '-'
  const lost = s.unanswered ? `, ${s.unanswered}/${s.sent} unanswered` : ''
  return s.maxMs === null ? `none of ${s.sent} answered` : `${s.p50Ms} / ${s.maxMs} ms${lost}`
}

function describeRun(r: AttackRun): string {
  return `RSS ${mib(r.baselineKiB)} -> peak ${mib(r.peakKiB)} MiB (VmHWM ${mib(r.hwmKiB)}); responsive: ${r.responsive} ` +
    `(round trip p50/max ${probeText(r.rtt)}; connect ${probeText(r.connects)}${r.probeClosed ? '; probe client closed' : ''}` +
    `${r.brokerAlive ? '' : '; BROKER GONE'}); ${whatHappened(r)}`
}

/** The attack's own account, in a few words. */
function whatHappened(r: AttackRun): string {
  const d = r.result?.details
  if (!d) return '-'
  switch (r.attack) {
    case 'attack-retained':
    case 'attack-retained-qos1': return `held ${((r.attackMs ?? 0) / 1000).toFixed(1)} s`
    case 'attack-flood': return `${Number(d.messagesWritten).toLocaleString('en-US')} msgs (${d.mibWritten} MiB) written in ${d.seconds} s, ` +
      `the attacker's socket full for ${d.waitedMs} ms of it, closed by the broker: ${d.closedByBroker}`
    case 'attack-sessions': return `${Number(d.sessionsCreated).toLocaleString('en-US')} sessions in ${d.seconds} s` +
      ` (${perSession(r)} KiB RSS each)${Number(d.refused) ? `, refused: ${d.refusals}` : ''}${Number(d.errors) ? `, ${d.errors} errors (${d.errorKinds})` : ''}`
    case 'attack-slowconnect': return `${d.socketsOpened} sockets (${d.heldMiB} MiB sent) in ${d.openedInMs} ms, at most ${d.maxOpen} open, ` +
      `${d.closedByBroker} closed by the broker${Number(d.closedByBroker) ? ` (median after ${d.medianLifetimeMs} ms)` : ''}, ${d.openAtEnd} open at the end` +
      `${Number(d.refusedOrFailed) ? `, ${d.refusedOrFailed} refused` : ''}`
  }
}

/** RSS growth over the attack per session created. */
function perSession(r: AttackRun): string {
  const n = Number(r.result?.details.sessionsCreated)
  if (!n || r.peakKiB === undefined || r.baselineKiB === undefined) return '-'
  return ((r.peakKiB - r.baselineKiB) / n).toFixed(2)
}

function beforeCommit(): string {
  try {
    return execFileSync('git', ['-C', BEFORE_DIR, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
  } catch {
    return '?'
  }
}

const peerLabel = (p: PeerName) => (p === 'ours' ? 'after (ours)' : p === 'before' ? `before (${beforeCommit()})` : p)

function mdTable(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`
  return [line(head), line(head.map((_, i) => (i === 0 ? '---' : '--:'))), ...rows.map(line)].join('\n')
}

/** The attack tables (Markdown) and their notes. */
export function attackReport(runs: AttackRun[], peers: PeerName[]): string {
  const attacks = ATTACKS.filter((a) => runs.some((r) => r.attack === a))
  const cell = (a: AttackName, p: PeerName, f: (r: AttackRun) => string) => {
    const r = runs.find((x) => x.attack === a && x.peer === p)
    return !r ? '-' : r.error ? 'failed' : f(r)
  }
  const head = ['attack', ...peers.map(peerLabel)]
  const title = (a: AttackName) => runs.find((r) => r.attack === a)?.title ?? a
  const rss = mdTable(head, attacks.map((a) => [title(a),
    ...peers.map((p) => cell(a, p, (r) => `**${mib(r.peakKiB)}** (${mib(r.baselineKiB)} before)`))]))
  const resp = mdTable(head, attacks.map((a) => [title(a),
    ...peers.map((p) => cell(a, p, (r) => `${r.responsive}: rtt ${probeText(r.rtt)}; connect ${probeText(r.connects)}` +
      `${r.probeClosed ? '; probe closed' : ''}${r.brokerAlive ? '' : '; broker gone'}`))]))
  const what = mdTable(head, attacks.map((a) => [title(a), ...peers.map((p) => cell(a, p, whatHappened))]))
  const failed = runs.filter((r) => r.error).map((r) => `- ${r.attack} / ${r.peer}: ${r.error!.split('\n')[0]}`)
  return [
    '## Attacks: peak broker RSS during the attack (MiB)',
    '',
    rss,
    '',
    '## Attacks: did the broker stay responsive?',
    '',
    'A probe client (its own process) published QoS 1 to its own subscription every 200 ms and opened a new connection',
    'every second while the attack ran; p50 / max round trip and CONNECT -> CONNACK times over the attack. "yes": every',
    `probe answered within ${RESPONSIVE_MS} ms; "slow": all answered, some later; "no": some got no answer within ${PROBE_TIMEOUT_MS} ms`,
    '(or the probe client was closed, or the broker died).',
    '',
    resp,
    '',
    '## Attacks: what happened',
    '',
    what,
    '',
    `RSS: VmRSS of the broker process read every ${RSS_EVERY_MS} ms; the peak between the attack's start (after its set-up) and its`,
    'end (before it let go of its sockets); "before" is the lowest reading in the second before the attack. Kernel socket',
    'buffers are not in a process\'s RSS: a broker can hand a few MiB per socket to the kernel without it showing.',
    'Every broker runs with its defaults: ours (after) and before with default settings, Mosquitto without the',
    'max_queued_messages / max_inflight_messages the load scenarios raise, Aedes as is. Each broker fresh per attack.',
    ...(failed.length ? ['', 'Failed:', ...failed] : []),
  ].join('\n')
}
