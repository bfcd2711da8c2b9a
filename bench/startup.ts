// The start-up scenario (`npm run bench -- --scenarios=startup`): how long our broker takes to start on a large
// durable state (MQTT_STATE=sqlite), and what that state costs it in memory. Ours only.
//  1. a baseline: the broker started on an empty file (spawn -> "listening", loadMs, RSS), then stopped;
//  2. the state is built through the broker itself, by MQTT clients over TCP (bench/gen/scenarios.ts, build-state):
//     50,000 persistent sessions (clean session 0) with 1-2 subscriptions each, 100,000 retained messages, and a
//     queued QoS 1 message in every 16th session; then SIGTERM (the write-behind writes what is left);
//  3. the broker is started again on that file, twice (SIGTERM in between): the time from spawn to its log line
//     "listening on port N", the loadMs of its line "MQTT state loaded from ...", its RSS right after and after a
//     full GC; and a check that a session came back (s-0 resumes and gets its queued message).
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import Database from 'better-sqlite3'
import { startBroker, ROOT, type BrokerHandle } from './peers/brokers.ts'
import { track, sleep, rssKiB } from './lib/proc.ts'
import { markdownTable } from './lib/report.ts'
import { connectClient } from './lib/wsclient.ts'
import { collectGarbage, type Job, type Result, type BuildStateJob } from './gen/scenarios.ts'

export interface StartupParams {
  sessions: number
  retained: number
  queuedEvery: number
  payloadBytes: number
  concurrency: number
  restarts: number
}

export const STARTUP_DEFAULTS: StartupParams = {
  sessions: 50_000, retained: 100_000, queuedEvery: 16, payloadBytes: 64, concurrency: 50, restarts: 2,
}

/** One start of the broker on a given file. */
export interface StartReading {
  /** 'empty' (a fresh file) or 'loaded' (the built state) */
  state: 'empty' | 'loaded'
  /** spawn -> the log line "listening on port N" (ms) */
  listeningMs: number
  /** spawn -> the log line "MQTT state loaded from ..." (ms) */
  stateLoadedAtMs: number
  /** what the broker logged: loading the stored state (ms), and what it loaded */
  loadMs: number
  retained: number
  sessions: number
  /** VmRSS right after /healthz answered, and after a full GC (KiB) */
  rssKiB: number
  rssAfterGcKiB: number
  /** SIGTERM -> exit (ms) */
  stopMs: number
  /** s-0 resumed its session and got its queued message (loaded state only) */
  resumed?: string
}

export interface StartupRun {
  params: StartupParams
  empty: StartReading | null
  build: Result | null
  /** SIGTERM -> exit of the broker that built the state (its last write included) */
  buildStopMs: number
  /** rows in the file after the build, and its size (with the WAL) */
  rows: Record<string, number>
  fileBytes: number
  restarts: StartReading[]
  error?: string
}

/** A log line of ours (pino JSON). */
interface LogLine { time?: number, msg?: string, loadMs?: number, retained?: number, sessions?: number }

/** Starts ours on `dbPath` and reads its start-up lines. */
async function startOn(dbPath: string, state: StartReading['state'], check: boolean): Promise<StartReading> {
  const lines: LogLine[] = []
  let partial = ''
  const onOutput = (chunk: string) => {
    const parts = (partial + chunk).split('\n')
    partial = parts.pop() ?? ''
    for (const p of parts) {
      if (!p.startsWith('{')) continue
      try { lines.push(JSON.parse(p) as LogLine) } catch { /* not a log line */ }
    }
  }
  const b = await startBroker('ours', {
    dbPath, inspect: true, onOutput,
    // the start-up lines are at info; MQTT over TCP for the check (and the log line that names its port)
    tcp: true, oursEnv: { LOG_LEVEL: 'info' },
  })
  let stopped = false
  try {
    const rss = rssKiB(b.pid) ?? NaN
    const find = (re: RegExp) => lines.find((l) => re.test(l.msg ?? ''))
    // the line follows listen(), which /healthz answering already showed: it may still be in the pipe
    for (let i = 0; i < 100 && !find(/^listening on port/); i++) await sleep(20)
    const listening = find(/^listening on port/)
    const loaded = find(/^MQTT state loaded from/)
    if (!listening || !loaded) throw new Error(`ours: no "listening" / "MQTT state loaded" line\n${b.output().slice(-2000)}`)
    await collectGarbage(b.inspectorUrl!)
    await sleep(300)
    const rssAfterGc = rssKiB(b.pid) ?? NaN
    const resumed = check ? await resumeCheck(b) : undefined
    const t0 = performance.now()
    await b.stop()
    stopped = true
    return {
      state,
      listeningMs: listening.time! - b.spawnedAt,
      stateLoadedAtMs: loaded.time! - b.spawnedAt,
      loadMs: loaded.loadMs ?? NaN,
      retained: loaded.retained ?? NaN,
      sessions: loaded.sessions ?? NaN,
      rssKiB: rss,
      rssAfterGcKiB: rssAfterGc,
      stopMs: Math.round(performance.now() - t0),
      resumed,
    }
  } finally {
    if (!stopped) await b.stop()
  }
}

/** s-0 (subscribed to bench/s/0/a, a queued QoS 1 message there) resumes its session and gets that message. */
async function resumeCheck(b: BrokerHandle): Promise<string> {
  let got: string | null = null
  const acks: number[] = []
  const c = await connectClient(b.tcpUrl!, 's-0', {
    clean: false, timeoutMs: 10_000,
    // (it may arrive with the CONNACK, before the client is handed over: acknowledged below)
    onPacket: (p) => {
      if (p.cmd !== 'publish') return
      got ??= p.topic
      if (p.qos === 1 && p.messageId !== undefined) acks.push(p.messageId)
    },
  })
  const until = Date.now() + 3000
  while (got === null && Date.now() < until) await sleep(20)
  for (const id of acks) c.write(c.framing.puback(id))
  await c.end()
  return got === null ? 'no queued message within 3 s' : `yes (${got})`
}

/** Run one generator job in a process of its own (as bench/run.ts does). */
function runGen(job: Job, timeoutMs: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = track(fork(path.join(ROOT, 'bench/gen/main.ts'), [], {
      cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }))
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${job.scenario}: not done in ${timeoutMs} ms`)) }, timeoutMs)
    child.once('message', (m: { ok: boolean, result?: Result, error?: string }) => {
      clearTimeout(timer)
      if (m.ok) resolve(m.result!)
      else reject(new Error(m.error))
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${job.scenario}: generator exited (${code})`)) })
    child.send(job)
  })
}

/** Rows per table of the state file (read after the broker that wrote it has stopped). */
function countRows(dbPath: string): Record<string, number> {
  const db = new Database(dbPath, { readonly: true })
  try {
    const out: Record<string, number> = {}
    for (const t of ['mqtt_retained', 'mqtt_sessions', 'mqtt_subscriptions', 'mqtt_session_messages']) {
      out[t] = (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n
    }
    return out
  } finally {
    db.close()
  }
}

function fileBytes(dbPath: string): number {
  let n = 0
  for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) {
    try { n += fs.statSync(f).size } catch { /* not there */ }
  }
  return n
}

export async function runStartup(params: Partial<StartupParams>, beforeEach: () => Promise<void>): Promise<StartupRun> {
  const p = { ...STARTUP_DEFAULTS, ...params }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsmqtt-bench-startup-'))
  const run: StartupRun = { params: p, empty: null, build: null, buildStopMs: NaN, rows: {}, fileBytes: NaN, restarts: [] }
  const n = (x: number) => x.toLocaleString('en-US')
  try {
    await beforeEach()
    run.empty = await startOn(path.join(dir, 'empty.db'), 'empty', false)
    console.log(`  startup  empty state: listening ${run.empty.listeningMs} ms after spawn, loadMs ${run.empty.loadMs}, ` +
      `RSS ${mib(run.empty.rssKiB)} MiB (${mib(run.empty.rssAfterGcKiB)} after GC)`)

    const dbPath = path.join(dir, 'state.db')
    await beforeEach()
    const builder = await startBroker('ours', { dbPath, tcp: true })
    try {
      const job: BuildStateJob & { url: string, pid: number } = {
        url: builder.tcpUrl!, pid: builder.pid, scenario: 'build-state', sessions: p.sessions, concurrency: p.concurrency,
        retained: p.retained, queuedEvery: p.queuedEvery, payloadBytes: p.payloadBytes, publishers: 10, inflight: 100,
      }
      run.build = await runGen(job, 600_000)
      const d = run.build.details
      console.log(`  startup  built over TCP in ${(run.build.value / 1000).toFixed(1)} s: ${n(p.sessions)} sessions in ` +
        `${(Number(d.sessionsMs) / 1000).toFixed(1)} s (${n(Number(d.sessionsPerSec))}/s), ${n(p.retained)} retained in ` +
        `${(Number(d.retainedMs) / 1000).toFixed(1)} s, ${n(Number(d.queued))} queued in ${(Number(d.queuedMs) / 1000).toFixed(1)} s; ` +
        `builder RSS ${mib(Number(d.rssKiB))} MiB`)
    } finally {
      const t0 = performance.now()
      await builder.stop()
      run.buildStopMs = Math.round(performance.now() - t0)
    }
    run.rows = countRows(dbPath)
    run.fileBytes = fileBytes(dbPath)
    console.log(`  startup  file: ${Object.entries(run.rows).map(([t, c]) => `${t} ${n(c)}`).join(', ')}; ` +
      `${mib(run.fileBytes / 1024)} MiB; the builder stopped ${run.buildStopMs} ms after SIGTERM`)

    for (let i = 0; i < p.restarts; i++) {
      await beforeEach()
      const r = await startOn(dbPath, 'loaded', i === p.restarts - 1)
      run.restarts.push(r)
      console.log(`  startup  restart ${i + 1}: listening ${r.listeningMs} ms after spawn (state loaded at ${r.stateLoadedAtMs} ms), ` +
        `loadMs ${r.loadMs} (${n(r.retained)} retained, ${n(r.sessions)} sessions), RSS ${mib(r.rssKiB)} MiB ` +
        `(${mib(r.rssAfterGcKiB)} after GC), stopped in ${r.stopMs} ms${r.resumed ? `; s-0 resumed: ${r.resumed}` : ''}`)
    }
  } catch (err) {
    run.error = (err as Error).message
    console.log(`  startup  FAILED: ${run.error.split('\n').slice(0, 8).join('\n    ')}`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return run
}

const mib = (kib: number) => (Number.isFinite(kib) ? (kib / 1024).toFixed(1) : '-')

/** The start-up table (Markdown). */
export function startupReport(run: StartupRun): string {
  const p = run.params
  const n = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-')
  const cols = [run.empty, ...run.restarts]
  const head = ['', 'empty file', ...run.restarts.map((_, i) => `${n(p.retained)} retained + ${n(p.sessions)} sessions${run.restarts.length > 1 ? ` (start ${i + 1})` : ''}`)]
  const row = (label: string, f: (r: StartReading) => string) => [label, ...cols.map((r) => (r ? f(r) : '-'))]
  const rows = [
    row('spawn -> "listening" (ms)', (r) => n(r.listeningMs)),
    row('spawn -> "MQTT state loaded" (ms)', (r) => n(r.stateLoadedAtMs)),
    row('loadMs (logged)', (r) => n(r.loadMs)),
    row('retained / sessions loaded', (r) => `${n(r.retained)} / ${n(r.sessions)}`),
    row('RSS after start (MiB)', (r) => mib(r.rssKiB)),
    row('RSS after a full GC (MiB)', (r) => mib(r.rssAfterGcKiB)),
    row('SIGTERM -> exit (ms)', (r) => n(r.stopMs)),
  ]
  const d = run.build?.details
  const notes = [
    `State built through the broker (MQTT over TCP, ${p.concurrency} loops): ${n(p.sessions)} persistent sessions (clean session 0;`,
    `bench/s/<i>/a at QoS 1, and bench/s/<i>/+/b for even i), ${n(p.retained)} retained ${p.payloadBytes}-byte messages (QoS 1), and one`,
    `queued QoS 1 message in every ${p.queuedEvery}th session` +
      (d ? `: ${(run.build!.value / 1000).toFixed(1)} s (sessions ${(Number(d.sessionsMs) / 1000).toFixed(1)} s, retained ${(Number(d.retainedMs) / 1000).toFixed(1)} s); builder RSS ${mib(Number(d.rssKiB))} MiB.` : '.'),
    `File: ${Object.entries(run.rows).map(([t, c]) => `${t} ${n(c)}`).join(', ')}; ${mib(run.fileBytes / 1024)} MiB with its WAL.`,
    `Times from spawn are from the pino \`time\` of each log line (node + tsx start, migrations, loading, restoring, listen);`,
    `loadMs is what the broker logs for reading the file into memory. RSS: VmRSS right after /healthz answered, and after a`,
    `full GC through the inspector.` + (run.restarts.at(-1)?.resumed ? ` s-0 resumed its session after the restart: ${run.restarts.at(-1)!.resumed}.` : ''),
  ]
  return [`## Start-up on a large durable state (ours, MQTT_STATE=sqlite)`, markdownTable(head, rows), notes.join('\n'),
    ...(run.error ? [`FAILED: ${run.error.split('\n')[0]}`] : [])].join('\n\n')
}
