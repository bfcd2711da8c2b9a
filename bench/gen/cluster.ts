// Idle clients spread over the nodes of a cluster, generator side (`npm run bench -- --cluster`, bench/cluster.ts):
// the `memory` scenario of ./scenarios.ts for several broker processes at once. Each node's connect path is warmed
// up first (200 connect/disconnect cycles, as in `memory`), then each node's RSS is read (the lowest of three
// readings, and after a full GC through its inspector), `clients` idle clients (keepalive 60 s, no traffic) connect,
// client i to node i mod n, and after they settled each node is read again.
import { connectClient, pool, type MqttClient } from '../lib/wsclient.ts'
import { rssKiB, sleep } from '../lib/proc.ts'
import { collectGarbage, warmConnectPath, type Result } from './scenarios.ts'

export interface SpreadMemoryJob {
  scenario: 'spread-memory'
  nodes: Array<{ url: string, pid: number, inspectorUrl?: string }>
  clients: number
  concurrency: number
  settleMs: number
}

const tag = Math.random().toString(36).slice(2, 8)
const round2 = (n: number) => Math.round(n * 100) / 100

/** The lowest of three RSS readings of each node (after a full GC of each first when `gc`). */
async function readings(job: SpreadMemoryJob, gc: boolean): Promise<number[]> {
  const out = job.nodes.map(() => Infinity)
  for (let k = 0; k < 3; k++) {
    if (gc) await Promise.all(job.nodes.map((n) => (n.inspectorUrl ? collectGarbage(n.inspectorUrl) : undefined)))
    job.nodes.forEach((n, j) => {
      const r = rssKiB(n.pid)
      if (r === null) throw new Error(`cannot read /proc/${n.pid}/status`)
      out[j] = Math.min(out[j], r)
    })
    await sleep(300)
  }
  return out
}

export async function spreadMemory(job: SpreadMemoryJob): Promise<Result> {
  const n = job.nodes.length
  await Promise.all(job.nodes.map((node, j) => warmConnectPath(node.url, (i) => `smem-warm-${j}-${i}-${tag}`)))
  await sleep(job.settleMs)
  const gc = job.nodes.every((x) => x.inspectorUrl !== undefined)
  const before = await readings(job, false)
  const beforeGc = gc ? await readings(job, true) : before
  const perNode = job.nodes.map(() => 0)
  const clients: MqttClient[] = await pool(Array.from({ length: job.clients }, (_, i) => i), job.concurrency, (i) => {
    perNode[i % n]++
    return connectClient(job.nodes[i % n].url, `smem-${i}-${tag}`, { timeoutMs: 20_000 })
  })
  await sleep(job.settleMs)
  const after = await readings(job, false)
  const afterGc = gc ? await readings(job, true) : after
  const details: Record<string, number | string> = { nodes: n, clients: job.clients }
  job.nodes.forEach((_, j) => {
    details[`n${j}Clients`] = perNode[j]
    details[`n${j}RssBeforeKiB`] = before[j]
    details[`n${j}RssAfterKiB`] = after[j]
    details[`n${j}PerClientKiB`] = round2((after[j] - before[j]) / perNode[j])
    details[`n${j}RssBeforeGcKiB`] = beforeGc[j]
    details[`n${j}RssAfterGcKiB`] = afterGc[j]
    details[`n${j}PerClientAfterGcKiB`] = round2((afterGc[j] - beforeGc[j]) / perNode[j])
  })
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0)
  details.perConnKiB = round2((sum(after) - sum(before)) / job.clients)
  details.perConnAfterGcKiB = round2((sum(afterGc) - sum(beforeGc)) / job.clients)
  details.gc = gc ? 'yes' : 'no'
  await pool(clients, 200, (c) => c.end(3000))
  return { value: Number(details.perConnAfterGcKiB), unit: 'KiB/conn', details }
}
