// Start and stop the brokers under test, each in its own process on 127.0.0.1:
//  ours      - the real server (`node --import tsx src/server.ts`) on a tmp SQLite file, MQTT_STATE=sqlite (retained
//              messages and sessions written behind to it); for a TCP run (`tcp`) also with MQTT_TCP_PORT=0, the port
//              read from its log line "MQTT over TCP on mqtt://HOST:PORT"
//  ours:memory - the same with MQTT_STATE=memory (retained messages and sessions in memory only; --state=sqlite,memory)
//  ours:wallclock - the same with STALL_CREDIT=off: connect and keepalive deadlines on the wall clock alone, the
//              broker's own stalls counted against clients, as before the stall clock (the reconnect storm compares)
//  ours+acl  - the same, with the ACL rules of bench/lib/acl.ts created through the API before the run (--acl=N)
//  before    - the same server built from an older tree (BENCH_BEFORE_DIR, default /tmp/broker-before): the
//              attack scenarios compare it with ours
//  aedes     - bench/peers/aedes.ts (Aedes behind a ws server, and behind a net server for TCP)
//  aedes:redis - the same with mqemitter-redis on StartOptions.aedesRedisUrl as its emitter: one process of an Aedes
//              cluster (the cluster bench, bench/cluster.ts, starts several on one Redis)
//  mosquitto - /usr/sbin/mosquitto with a websockets listener (socket_domain ipv4) and a TCP listener beside it;
//              `persistence false`, or `persistence true` in its tmp folder when asked (mosquittoPersistence)
import { spawn, fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { track, stopChild, freePort, waitFor, canConnect } from '../lib/proc.ts'
import { installAcl } from '../lib/acl.ts'

export type PeerName = 'ours' | 'ours:memory' | 'ours:wallclock' | 'ours+acl' | 'before' | 'aedes' | 'aedes:redis' | 'mosquitto'
/** What `--peers` defaults to for the load scenarios; `before` is asked for by name (the attacks include it). */
export const ALL_PEERS: PeerName[] = ['ours', 'aedes', 'mosquitto']
/** Every name `--peers` accepts (`ours+acl` is added by `--acl=N`, `ours:memory` by `--state=...,memory`, not named). */
export const KNOWN_PEERS: PeerName[] = ['ours', 'before', 'aedes', 'mosquitto']

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The older tree the `before` peer runs: `git worktree add /tmp/broker-before <commit>` and `npm ci` there. */
export const BEFORE_DIR = path.resolve(process.env.BENCH_BEFORE_DIR ?? '/tmp/broker-before')

/** Why the `before` peer cannot run (null when it can). */
export function beforeMissing(): string | null {
  if (!fs.existsSync(path.join(BEFORE_DIR, 'src/server.ts'))) {
    return `before: no tree at ${BEFORE_DIR} (git worktree add ${BEFORE_DIR} <commit> && cd ${BEFORE_DIR} && npm ci; or set BENCH_BEFORE_DIR)`
  }
  if (!fs.existsSync(path.join(BEFORE_DIR, 'node_modules/tsx'))) return `before: ${BEFORE_DIR} has no node_modules (npm ci there)`
  return null
}
const MOSQUITTO_CANDIDATES = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto']

export interface BrokerHandle {
  name: PeerName
  pid: number
  wsUrl: string
  /** mqtt://127.0.0.1:PORT, MQTT over plain TCP (ours: only when started with `tcp`) */
  tcpUrl?: string
  /** ours only: http://127.0.0.1:PORT and the admin token for /api/* */
  httpUrl?: string
  adminToken?: string
  /** node brokers started with `inspect`: the inspector's WebSocket URL (to force a garbage collection) */
  inspectorUrl?: string
  /** last lines the process wrote (for error messages) */
  output(): string
  /** Date.now() when the process was spawned */
  spawnedAt: number
  stop(): Promise<void>
}

export function mosquittoPath(): string | null {
  return MOSQUITTO_CANDIDATES.find((p) => fs.existsSync(p)) ?? null
}

/** Ours: change settings through PATCH /api/settings with its admin token (throws when refused). */
export async function patchSettings(b: BrokerHandle, values: Record<string, unknown>, comment: string): Promise<void> {
  const res = await fetch(`${b.httpUrl}/api/settings`, {
    method: 'PATCH', headers: { authorization: `Bearer ${b.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ values, comment }),
  })
  if (!res.ok) throw new Error(`PATCH /api/settings: ${res.status} ${await res.text()}`)
}

export interface StartOptions {
  /** extra node flags for our server (e.g. ['--cpu-prof', '--cpu-prof-dir=bench-output/profiles']) */
  oursNodeArgs?: string[]
  /** extra env for our server */
  oursEnv?: Record<string, string>
  /**
   * ours: this SQLite file instead of a fresh one in a tmp folder, kept when the broker stops (to start it again on
   * the same state)
   */
  dbPath?: string
  /** ours: every chunk the process writes (stdout and stderr), as it arrives */
  onOutput?: (chunk: string) => void
  /**
   * ours (and before): also listen for MQTT over plain TCP (MQTT_TCP_PORT=0: any free port, read from the log line
   * it writes at info level, so LOG_LEVEL=info: nothing on the TCP path logs at info per connection or message).
   * Aedes and Mosquitto always have their TCP listener.
   */
  tcp?: boolean
  /** node brokers (ours, aedes): open the inspector on 127.0.0.1, so that the bench can ask for a full GC */
  inspect?: boolean
  /** ours+acl: how many ACL rules to create (bench/lib/acl.ts) */
  aclRules?: number
  /**
   * mosquitto: its own defaults for queues (max_queued_messages 1000, max_inflight_messages 20) instead of the
   * generous ones the load scenarios use; the attack scenarios run every broker with its defaults
   */
  mosquittoDefaults?: boolean
  /**
   * mosquitto: `persistence true` with its file in the tmp folder (it keeps everything in memory and writes the file
   * every autosave_interval, 1800 s by default, and at exit), instead of `persistence false`
   */
  mosquittoPersistence?: boolean
  /** aedes:redis: the Redis its mqemitter-redis uses (redis://127.0.0.1:6379) */
  aedesRedisUrl?: string
}

export async function startBroker(name: PeerName, opts: StartOptions = {}): Promise<BrokerHandle> {
  switch (name) {
    case 'ours': return startOurs(opts, ROOT, 'ours')
    case 'ours:memory': return startOurs(opts, ROOT, 'ours:memory')
    case 'ours:wallclock': return startOurs({ ...opts, oursEnv: { STALL_CREDIT: 'off', ...opts.oursEnv } }, ROOT, 'ours:wallclock')
    case 'before': {
      const missing = beforeMissing()
      if (missing) throw new Error(missing)
      return startOurs(opts, BEFORE_DIR, 'before')
    }
    case 'ours+acl': {
      const b = await startOurs(opts, ROOT, 'ours+acl')
      try {
        await installAcl(b.httpUrl!, b.wsUrl, b.adminToken!, opts.aclRules ?? 100)
      } catch (err) {
        await b.stop()
        throw err
      }
      return b
    }
    case 'aedes': return startAedes(opts)
    case 'aedes:redis': {
      if (!opts.aedesRedisUrl) throw new Error('aedes:redis: no aedesRedisUrl')
      return startAedes(opts, 'aedes:redis')
    }
    case 'mosquitto': return startMosquitto(opts)
  }
}

/** Keep the last ~8 KiB a child printed, and keep its pipes drained. */
function capture(child: ChildProcess): () => string {
  let tail = ''
  const keep = (d: Buffer) => { tail = (tail + d.toString('utf8')).slice(-8192) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  return () => tail
}

function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `wsmqtt-bench-${prefix}-`))
}

async function startOurs(opts: StartOptions, root: string, name: 'ours' | 'ours:memory' | 'ours:wallclock' | 'ours+acl' | 'before'): Promise<BrokerHandle> {
  const port = await freePort()
  const dir = opts.dbPath === undefined ? tmpDir(name === 'before' ? 'before' : 'ours') : null
  const removeDir = () => { if (dir !== null) fs.rmSync(dir, { recursive: true, force: true }) }
  // where retained messages and sessions live (the `before` tree predates MQTT_STATE and ignores it)
  const stateEnv: Record<string, string> = name === 'before' ? {} : { MQTT_STATE: name === 'ours:memory' ? 'memory' : 'sqlite' }
  const adminToken = 'bench-' + randomBytes(12).toString('hex')
  const inspect = opts.inspect ? ['--inspect=127.0.0.1:0'] : []
  const tcpEnv: Record<string, string> = opts.tcp ? { MQTT_TCP_PORT: '0', LOG_LEVEL: 'info' } : {}
  const spawnedAt = Date.now()
  const child = track(spawn(process.execPath, [...inspect, ...(opts.oursNodeArgs ?? []), '--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DB_PATH: opts.dbPath ?? path.join(dir!, 'bench.db'),
      LOG_LEVEL: 'warn',
      ADMIN_TOKEN: adminToken,
      ...stateEnv,
      ...tcpEnv,
      ...opts.oursEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  }))
  const output = capture(child)
  if (opts.onOutput) {
    const onOutput = opts.onOutput
    child.stdout?.on('data', (d: Buffer) => onOutput(d.toString('utf8')))
    child.stderr?.on('data', (d: Buffer) => onOutput(d.toString('utf8')))
  }
  // the TCP listener's port, from its log line (looked for as output arrives: the tail may have moved on)
  let tcpPort: number | null = null
  let seen = ''
  const look = (d: Buffer) => {
    if (tcpPort !== null) return
    seen = (seen + d.toString('utf8')).slice(-4096)
    const m = /MQTT over TCP on mqtt:\/\/[^\s"]+:(\d+)/.exec(seen)
    if (m) tcpPort = Number(m[1])
  }
  if (opts.tcp) {
    child.stdout?.on('data', look)
    child.stderr?.on('data', look)
  }
  const httpUrl = `http://127.0.0.1:${port}`
  try {
    await waitFor(name, async () => (await fetch(`${httpUrl}/healthz`)).ok, 30_000, child)
    if (opts.tcp) {
      await waitFor(`${name}: the log line "MQTT over TCP on mqtt://HOST:PORT" (a tree without MQTT_TCP_PORT?)`,
        async () => tcpPort !== null, 5000, child)
    }
  } catch (err) {
    await stopChild(child)
    removeDir()
    throw new Error(`${(err as Error).message}\n${output()}`)
  }
  return {
    name, pid: child.pid!, wsUrl: `ws://127.0.0.1:${port}/mqtt`, httpUrl, adminToken, output, spawnedAt,
    tcpUrl: tcpPort !== null ? `mqtt://127.0.0.1:${tcpPort}` : undefined,
    inspectorUrl: opts.inspect ? await inspectorUrl(output) : undefined,
    async stop() {
      await stopChild(child, 5000)
      removeDir()
    },
  }
}

async function startAedes(opts: StartOptions, name: 'aedes' | 'aedes:redis' = 'aedes'): Promise<BrokerHandle> {
  const spawnedAt = Date.now()
  const child = track(fork(path.join(ROOT, 'bench/peers/aedes.ts'), [], {
    cwd: ROOT,
    execArgv: [...(opts.inspect ? ['--inspect=127.0.0.1:0'] : []), '--import', 'tsx'],
    env: { ...process.env, PORT: '0', ...(name === 'aedes:redis' ? { AEDES_REDIS_URL: opts.aedesRedisUrl } : {}) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  }))
  const output = capture(child)
  const { port, tcpPort } = await new Promise<{ port: number, tcpPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`aedes: not ready after 20000 ms\n${output()}`)), 20_000)
    child.once('message', (m: { port: number, tcpPort: number }) => { clearTimeout(timer); resolve(m) })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`aedes exited (${code})\n${output()}`)) })
  })
  return {
    name, pid: child.pid!, wsUrl: `ws://127.0.0.1:${port}/mqtt`, tcpUrl: `mqtt://127.0.0.1:${tcpPort}`, output, spawnedAt,
    inspectorUrl: opts.inspect ? await inspectorUrl(output) : undefined,
    stop: () => stopChild(child),
  }
}

async function startMosquitto(opts: StartOptions): Promise<BrokerHandle> {
  const bin = mosquittoPath()
  if (!bin) throw new Error('mosquitto: not installed (apt-get install mosquitto)')
  const dir = tmpDir('mosquitto')
  const wsPort = await freePort()
  const tcpPort = await freePort()
  const conf = path.join(dir, 'mosquitto.conf')
  fs.writeFileSync(conf, [
    'per_listener_settings false',
    'allow_anonymous true',
    ...(opts.mosquittoPersistence ? ['persistence true', `persistence_location ${dir}/`, 'persistence_file mosquitto.db'] : ['persistence false']),
    // generous queues: the generator keeps its own bounded window, nothing should be dropped for lack of room
    ...(opts.mosquittoDefaults ? [] : ['max_queued_messages 1000000', 'max_inflight_messages 0']),
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'connection_messages false',
    `listener ${tcpPort} 127.0.0.1`,
    `listener ${wsPort} 127.0.0.1`,
    'protocol websockets',
    'socket_domain ipv4',
    '',
  ].join('\n'))
  const spawnedAt = Date.now()
  const child = track(spawn(bin, ['-c', conf], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }))
  const output = capture(child)
  try {
    await waitFor('mosquitto', async () => (await canConnect(wsPort)) && (await canConnect(tcpPort)), 10_000, child)
  } catch (err) {
    await stopChild(child)
    fs.rmSync(dir, { recursive: true, force: true })
    throw new Error(`${(err as Error).message}\n${output()}`)
  }
  return {
    name: 'mosquitto', pid: child.pid!, wsUrl: `ws://127.0.0.1:${wsPort}/mqtt`, tcpUrl: `mqtt://127.0.0.1:${tcpPort}`, output, spawnedAt,
    async stop() {
      await stopChild(child)
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The inspector URL node prints at start ("Debugger listening on ws://127.0.0.1:PORT/ID"). */
async function inspectorUrl(output: () => string): Promise<string> {
  let url: string | undefined
  await waitFor('inspector', async () => (url = /Debugger listening on (ws:\/\/\S+)/.exec(output())?.[1]) !== undefined, 5000)
  return url!
}
