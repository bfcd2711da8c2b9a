// What an idle connection holds in our server's heap: starts ours with --heapsnapshot-signal, takes a heap snapshot
// before and after N idle clients, and prints the difference per connection by constructor (self sizes).
//
//   npx tsx bench/heap-diff.ts [N=2000]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startBroker } from './peers/brokers.ts'
import { BenchClient, pool } from './lib/wsclient.ts'
import { sleep, rssKiB } from './lib/proc.ts'
const N = Number(process.argv[2] ?? 2000)
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsmqtt-heap-'))
const b = await startBroker('ours', { oursNodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] })
async function snap(): Promise<string> {
  const before = new Set(fs.readdirSync(dir))
  process.kill(b.pid, 'SIGUSR2')
  await sleep(300)
  await fetch(`${b.httpUrl}/healthz`) // answered once the (blocking) snapshot is written
  await sleep(300)
  const f = fs.readdirSync(dir).find((x) => !before.has(x) && x.endsWith('.heapsnapshot'))
  if (!f) throw new Error('no snapshot')
  return path.join(dir, f)
}
function summary(file: string) {
  const j = JSON.parse(fs.readFileSync(file, 'utf8'))
  const f = j.snapshot.meta.node_fields as string[]
  const types = j.snapshot.meta.node_types[0] as string[]
  const w = f.length, ti = f.indexOf('type'), ni = f.indexOf('name'), si = f.indexOf('self_size')
  const m = new Map<string, { n: number, s: number }>()
  let total = 0
  for (let i = 0; i < j.nodes.length; i += w) {
    const t = types[j.nodes[i + ti]]
    const name = t === 'object' || t === 'closure' ? `${t}:${j.strings[j.nodes[i + ni]]}` : t
    const e = m.get(name) ?? { n: 0, s: 0 }
    e.n++; e.s += j.nodes[i + si]; total += j.nodes[i + si]
    m.set(name, e)
  }
  return { m, total }
}
try {
  await pool(Array.from({ length: 200 }, (_, i) => i), 20, async (i) => (await BenchClient.connect(b.wsUrl, `w${i}`)).end())
  await sleep(1000)
  const s0 = await snap()
  const r0 = rssKiB(b.pid)
  const clients = await pool(Array.from({ length: N }, (_, i) => i), 50, (i) => BenchClient.connect(b.wsUrl, `idle-${i}`))
  await sleep(2000)
  const s1 = await snap()
  const r1 = rssKiB(b.pid)
  const a = summary(s0), z = summary(s1)
  console.log(`heap self total ${(a.total / 1024).toFixed(0)} KiB -> ${(z.total / 1024).toFixed(0)} KiB: ${((z.total - a.total) / N).toFixed(0)} B/conn; RSS ${r0} -> ${r1} KiB (inflated by the snapshots)`)
  const rows = [...z.m].map(([k, v]) => ({ k, dn: v.n - (a.m.get(k)?.n ?? 0), ds: v.s - (a.m.get(k)?.s ?? 0) })).sort((x, y) => y.ds - x.ds).slice(0, 40)
  for (const r of rows) console.log(`${(r.ds / N).toFixed(0).padStart(6)} B/conn  ${(r.dn / N).toFixed(2).padStart(6)} per conn  ${r.k}`)
  await pool(clients, 200, (c) => c.end())
} finally {
  await b.stop()
  fs.rmSync(dir, { recursive: true, force: true })
}
