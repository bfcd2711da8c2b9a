// Clusters for the cluster bench (bench/cluster.ts), on this machine's services, all on 127.0.0.1:
//  - ours: `n` processes of our server (started as the `ours` peer: bench/peers/brokers.ts) with NATS_URL,
//    DATABASE_URL, NODE_ID and CLUSTER_NAME; each start has a cluster name of its own (the prefix of its NATS subjects,
//    KV buckets and streams) and a PostgreSQL database of its own (CREATE DATABASE bench_<random> on the `test`
//    database); stopping the cluster deletes its JetStream streams (every one named KV_<name>_... or <name>_...) and
//    drops the database, and so does a Ctrl-C (onAbort);
//  - Aedes: `n` processes of the `aedes:redis` peer on one Redis (mqemitter-redis).
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import pg from 'pg'
import { connect } from '@nats-io/transport-node'
import { destroyBuckets } from '../../src/cluster/buckets.ts'
import { startBroker, ROOT, type BrokerHandle } from '../peers/brokers.ts'
import { canConnect, onAbort } from './proc.ts'

export const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222'
/** PostgreSQL as the bench's admin: the `test` database, where it creates and drops a database per cluster */
export const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://root@127.0.0.1:5432/test'
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'

const portOf = (url: string, fallback: number) => Number(new URL(url).port || fallback)

/** Why a kind of cluster cannot run here (null when it can). */
export async function oursClusterMissing(): Promise<string | null> {
  if (!(await canConnect(portOf(NATS_URL, 4222), new URL(NATS_URL).hostname))) return `no NATS at ${NATS_URL} (BENCH_NATS_URL)`
  try {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL })
    await c.connect()
    await c.end()
  } catch (err) {
    return `no PostgreSQL at ${PG_ADMIN_URL} (BENCH_PG_URL): ${(err as Error).message}`
  }
  return null
}

export async function aedesClusterMissing(): Promise<string | null> {
  if (!fs.existsSync(`${ROOT}/node_modules/mqemitter-redis/package.json`)) return 'mqemitter-redis is not installed (npm install -D mqemitter-redis)'
  if (!(await canConnect(portOf(REDIS_URL, 6379), new URL(REDIS_URL).hostname))) return `no Redis at ${REDIS_URL} (BENCH_REDIS_URL)`
  return null
}

/**
 * The pid of the process listening on 127.0.0.1:`port` (the machine's nats-server or redis-server: other work may
 * run more of them on other ports), for its CPU; null if it cannot be found (another user's process, no /proc).
 */
export function pidListeningOn(port: number): number | null {
  const inodes = new Set<string>()
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try { text = fs.readFileSync(file, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // sl local_address rem_address st ... inode (field 9); st 0A = LISTEN
      if (f.length > 9 && f[3] === '0A' && parseInt(f[1].split(':')[1], 16) === port) inodes.add(f[9])
    }
  }
  if (inodes.size === 0) return null
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    let fds: string[] = []
    try { fds = fs.readdirSync(`/proc/${d}/fd`) } catch { continue }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${d}/fd/${fd}`))
        if (m && inodes.has(m[1])) return Number(d)
      } catch { /* closed meanwhile */ }
    }
  }
  return null
}

async function adminQuery(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL })
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

/** Delete every JetStream stream of a cluster (its KV buckets are streams named KV_<cluster>_...). */
export async function dropStreams(name: string): Promise<number> {
  const nc = await connect({ servers: NATS_URL.split(','), timeout: 5000 })
  try {
    return await destroyBuckets(nc, name)
  } finally {
    await nc.close()
  }
}

export interface Cluster {
  kind: 'ours' | 'aedes:redis'
  nodes: BrokerHandle[]
  /** ours: its CLUSTER_NAME and database */
  name?: string
  database?: string
  /** the bus between the nodes (nats-server, redis-server), for its CPU; null if not found */
  busPid: number | null
  stop(): Promise<void>
}

/** `n` nodes of ours in a new cluster (its own cluster name and database); `inspect`: each with the inspector. */
export async function startOursCluster(n: number, opts: { inspect?: boolean, nodeArgs?: (i: number) => string[] } = {}): Promise<Cluster> {
  const id = randomBytes(5).toString('hex')
  const name = `bench${id}`
  const database = `bench_${id}`
  let dbMade = false
  const undo = async () => {
    await dropStreams(name).catch((err) => console.log(`  (cluster ${name}: streams not deleted: ${(err as Error).message})`))
    if (dbMade) await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch((err) => console.log(`  (database ${database} not dropped: ${(err as Error).message})`))
  }
  const forget = onAbort(undo)
  const nodes: BrokerHandle[] = []
  const teardown = async () => {
    await Promise.allSettled(nodes.map((b) => b.stop()))
    await undo()
    forget()
  }
  try {
    await adminQuery(`CREATE DATABASE ${database}`)
    dbMade = true
    const dbUrl = new URL(PG_ADMIN_URL)
    dbUrl.pathname = `/${database}`
    const start = (i: number) => startBroker('ours', {
      inspect: opts.inspect,
      oursNodeArgs: opts.nodeArgs?.(i),
      oursEnv: { NATS_URL, DATABASE_URL: dbUrl.toString(), NODE_ID: `node-${i + 1}`, CLUSTER_NAME: name },
    })
    // the first alone (it creates the schema and the cluster's buckets), then the others together (they find them)
    nodes.push(await start(0))
    const rest = await Promise.allSettled(Array.from({ length: n - 1 }, (_, i) => start(i + 1)))
    for (const r of rest) if (r.status === 'fulfilled') nodes.push(r.value)
    const failed = rest.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
  } catch (err) {
    await teardown()
    throw err
  }
  return { kind: 'ours', nodes, name, database, busPid: pidListeningOn(portOf(NATS_URL, 4222)), stop: teardown }
}

/** `n` processes of Aedes with mqemitter-redis on one Redis. */
export async function startAedesCluster(n: number, opts: { inspect?: boolean } = {}): Promise<Cluster> {
  const nodes: BrokerHandle[] = []
  const teardown = async () => { await Promise.allSettled(nodes.map((b) => b.stop())) }
  try {
    for (let i = 0; i < n; i++) nodes.push(await startBroker('aedes:redis', { inspect: opts.inspect, aedesRedisUrl: REDIS_URL }))
  } catch (err) {
    await teardown()
    throw err
  }
  return { kind: 'aedes:redis', nodes, busPid: pidListeningOn(portOf(REDIS_URL, 6379)), stop: teardown }
}
