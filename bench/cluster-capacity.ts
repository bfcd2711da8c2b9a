// What the shared parts of a cluster take per second on this machine, for the scale plan in the README:
//   1. client-id claims: the compare-and-set (and the index key) each CONNECT writes to the owners bucket, at
//      200 at a time, on the machine's NATS (one server: buckets of 1 replica; a NATS cluster writes 3 replicas);
//   2. failure records shipped to PostgreSQL: the control plane's INSERT of 500 rows a batch with its NOTIFY, into
//      its own table (migrations/pg), on the machine's PostgreSQL.
// Each uses names of its own (a cluster name, a database) and removes them at the end.
//   npx tsx bench/cluster-capacity.ts [claims=20000] [failureRows=200000]
import { randomBytes } from 'node:crypto'
import { connect } from '@nats-io/transport-node'
import { Kvm } from '@nats-io/kv'
import pg from 'pg'
import { Ownership } from '../src/cluster/ownership.ts'
import { destroyBuckets } from '../src/cluster/buckets.ts'
import { migrate } from '../src/control/migrate.ts'

const claims = Number(process.argv[2] ?? 20_000)
const failureRows = Number(process.argv[3] ?? 200_000)
const NATS = process.env.NATS_URL ?? 'nats://127.0.0.1:4222'
const PG = process.env.PG_SERVER ?? 'postgres://root@127.0.0.1:5432'

async function claimRate(): Promise<void> {
  const name = `cap${randomBytes(4).toString('hex')}`
  const nc = await connect({ servers: NATS })
  try {
    const kv = await new Kvm(nc).create(`${name}_owners`, { history: 1 })
    const own = new Ownership(nc, kv, { nodeId: 'node-1', boot: 'b1', clusterName: name })
    let next = 0
    const t0 = performance.now()
    await Promise.all(Array.from({ length: 200 }, async () => {
      while (next < claims) await own.claim(`client-${next++}`)
    }))
    const s = (performance.now() - t0) / 1000
    console.log(`client-id claims (new ids, 200 at a time): ${claims} in ${s.toFixed(2)} s = ${Math.round(claims / s)}/s`)
    // a claim from another node: the same ids again, now owned by a node that is gone (asked; NATS answers that
    // nobody listens)
    const other = new Ownership(nc, kv, { nodeId: 'node-2', boot: 'b2', clusterName: name })
    next = 0
    const t1 = performance.now()
    await Promise.all(Array.from({ length: 200 }, async () => {
      while (next < claims) await other.claim(`client-${next++}`)
    }))
    const s1 = (performance.now() - t1) / 1000
    console.log(`client-id claims (ids owned by a dead node): ${claims} in ${s1.toFixed(2)} s = ${Math.round(claims / s1)}/s`)
  } finally {
    await destroyBuckets(nc, name)
    await nc.close()
  }
}

async function failureShipRate(): Promise<void> {
  const db = `cap_${randomBytes(5).toString('hex')}`
  const admin = new pg.Client({ connectionString: `${PG}/test` })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${db}`)
  const pool = new pg.Pool({ connectionString: `${PG}/${db}`, max: 2 })
  try {
    await migrate(pool, async () => {})
    const cols = ['node', 'source', 'source_id', 'occurred_at', 'transport', 'reason', 'phase', 'client_id', 'remote_address',
      'duration_ms', 'bytes_received', 'packets_received', 'first_bytes_hex', 'detail', 'hint', 'settings_version']
    const batch = 500
    const t0 = performance.now()
    for (let done = 0; done < failureRows; done += batch) {
      const params: unknown[] = []
      const tuples: string[] = []
      for (let i = 0; i < batch; i++) {
        const id = done + i
        const row = ['node-1', 'bench', id, Date.now(), 'ws', 'connect_timeout', 'awaiting_connect', `client-${id}`, '10.0.0.1',
          5000, 17, 0, '101100044d5154540402003c', 'the client sent 17 of 41 bytes of its CONNECT in 5000 ms', 'a slow or lossy link; raise connectTimeoutMs', 1]
        tuples.push(`(${row.map((_, k) => `$${params.length + k + 1}`).join(', ')})`)
        params.push(...row)
      }
      const c = await pool.connect()
      try {
        await c.query('BEGIN')
        await c.query(`INSERT INTO failures (${cols.join(', ')}) VALUES ${tuples.join(', ')} ON CONFLICT (node, source, source_id) DO NOTHING`, params)
        await c.query('SELECT pg_notify($1, $2)', ['cap_failures', 'node-1'])
        await c.query('COMMIT')
      } finally {
        c.release()
      }
    }
    const s = (performance.now() - t0) / 1000
    console.log(`failure records shipped to PostgreSQL (one node, ${batch} a batch): ${failureRows} in ${s.toFixed(2)} s = ${Math.round(failureRows / s)}/s`)
  } finally {
    await pool.end()
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
    await admin.end()
  }
}

await claimRate()
await failureShipRate()
