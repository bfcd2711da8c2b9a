// The load scenarios. Each runs inside a generator process (bench/gen/main.ts), never in the broker's process,
// drives one broker through raw ws + mqtt-packet clients (or raw TCP + mqtt-packet ones: a job's `url` is ws://...
// or mqtt://...; every scenario but the storm takes either), and returns numbers measured over `measureMs` after
// `warmupMs`. Every scenario bounds what it has in flight, and ends its clients with DISCONNECT.
import fs from 'node:fs'
import { performance } from 'node:perf_hooks'
import { WebSocket } from 'ws'
import type { Packet, IPublishPacket } from 'mqtt-packet'
import {
  BenchClient, connectClient, framing, transportOf, wsFrame, pool, type MqttClient, type Framing,
} from '../lib/wsclient.ts'
import { rssKiB, cpuMs, machineBusyMs, sleep } from '../lib/proc.ts'

export interface Timing { warmupMs: number, measureMs: number }

/**
 * Every job names the broker's URL and process id (for RSS and CPU readings). The URL's scheme is the transport:
 * ws://HOST:PORT/PATH a WebSocket, mqtt://HOST:PORT plain TCP (the storm takes a WebSocket URL only).
 */
interface Target extends Spread { url: string, pid: number }

/**
 * A job on several broker processes (the cluster bench, bench/cluster.ts): `fanin`, `fanout`, `qos1` and `latency`
 * connect their publishers to `pubUrls` and their subscribers to `subUrls` (client i of a role to url i mod n; the
 * one `url` when absent); the CPU share of the broker is then the sum over `pids`, and `busPid` (NATS or Redis) is
 * read apart from the rest of the machine. A job with either list waits until every route is in place before it
 * starts (routesReady).
 */
export interface Spread {
  pubUrls?: string[]
  subUrls?: string[]
  /** every broker process the job's clients reach (their CPU is summed); `pid` when absent */
  pids?: number[]
  /** the message bus between them (nats-server, redis-server): its CPU is reported apart */
  busPid?: number
}

export type Job =
  | Target & { scenario: 'fanin', timing: Timing, publishers: number, payloadBytes: number, window: number, batch: number }
  | Target & { scenario: 'fanout', timing: Timing, subscribers: number, payloadBytes: number, window: number, batch: number }
  | Target & { scenario: 'qos1' | 'qos1-persistent', timing: Timing, publishers: number, payloadBytes: number, inflight: number }
  | Target & RetainedJob
  | Target & BuildStateJob
  | Target & { scenario: 'latency', timing: Timing, publishers: number, payloadBytes: number, rate: number }
  | Target & { scenario: 'connect', timing: Timing, concurrency: number }
  | Target & { scenario: 'memory', clients: number, concurrency: number, settleMs: number, inspectorUrl?: string }
  | Target & { scenario: 'failstorm', durationMs: number, concurrency: number }

/**
 * `retained`: `publishers` clients publish one retained message of `payloadBytes` to each of `topics` distinct topics
 * (bench/r/<i>) at QoS 1, each with at most `inflight` awaiting PUBACK; then `subscribers` clients, connected
 * beforehand, each send one SUBSCRIBE to `filter` (QoS 0) at the same moment, and the scenario waits until every one
 * has received every retained message.
 */
export interface RetainedJob {
  scenario: 'retained'
  topics: number
  payloadBytes: number
  publishers: number
  inflight: number
  subscribers: number
  filter: string
  /** bounds of the two phases (a broker that drops or stalls ends the scenario with what arrived) */
  publishTimeoutMs: number
  deliveryTimeoutMs: number
}

/**
 * `build-state` (for the start-up scenario, bench/startup.ts): `sessions` persistent sessions (clean session 0,
 * client ids s-<i>, each with 1 or 2 subscriptions: bench/s/<i>/a at QoS 1, and bench/s/<i>/+/b at QoS 0 for even
 * i), created by `concurrency` loops of CONNECT, SUBSCRIBE, DISCONNECT; then `retained` retained messages
 * (bench/r/<i>, QoS 1); then one QoS 1 message to bench/s/<i>/a for every `queuedEvery`-th session, queued there
 * while it is offline.
 */
export interface BuildStateJob {
  scenario: 'build-state'
  sessions: number
  concurrency: number
  retained: number
  queuedEvery: number
  payloadBytes: number
  publishers: number
  inflight: number
}

export interface Result {
  /** the headline figure of the scenario */
  value: number
  unit: string
  /** everything else worth keeping */
  details: Record<string, number | string>
}

export function runJob(job: Job): Promise<Result> {
  switch (job.scenario) {
    case 'fanin': return fanIn(job)
    case 'fanout': return fanOut(job)
    case 'qos1': return qos1(job)
    case 'qos1-persistent': return qos1(job)
    case 'retained': return retained(job)
    case 'build-state': return buildState(job)
    case 'latency': return latency(job)
    case 'connect': return connectRate(job)
    case 'memory': return memory(job)
    case 'failstorm': return storm(job)
  }
}

const tag = Math.random().toString(36).slice(2, 8) // client ids unique per generator process

function payload(bytes: number): Buffer {
  return Buffer.alloc(bytes, 0x61)
}

function publishFrame(f: Framing, topic: string, body: Buffer, qos: 0 | 1 = 0, messageId = 1): Buffer {
  const p: IPublishPacket = { cmd: 'publish', topic, payload: body, qos, dup: false, retain: false }
  if (qos > 0) p.messageId = messageId
  return f.packet(p)
}

/** What the job's clients write: WebSocket frames or raw MQTT packets. */
const framingOf = (job: Target) => framing(transportOf(job.url))

/**
 * Rates of the counters `read` returns over [warmup end, warmup end + measure], plus the CPU share the broker
 * (`pid`) and this generator used meanwhile (100 = one core): a broker near 100 was the limit, a generator near 100
 * may have been.
 */
async function measureRates<K extends string>(
  t: Timing, pid: number | number[], read: () => Record<K, number>, busPid?: number,
): Promise<Record<K | CpuKeys, number> & { busCpuPct?: number, perBrokerCpuPct?: string }> {
  await sleep(t.warmupMs)
  const a = read()
  const cpu = cpuMeter(pid, busPid)
  const t0 = performance.now()
  await sleep(t.measureMs)
  const b = read()
  const elapsed = performance.now() - t0
  const out = { ...cpu() } as Record<K | CpuKeys, number> & { busCpuPct?: number, perBrokerCpuPct?: string }
  for (const k of Object.keys(a) as K[]) (out as Record<K, number>)[k] = ((b[k] - a[k]) * 1000) / elapsed
  return out
}

type CpuKeys = 'brokerCpuPct' | 'genCpuPct' | 'otherCpuPct' | 'windowStartUs' | 'windowEndUs'

/** Monotonic µs, the clock V8's CPU profiles use (so a profile can be cut to the measurement window). */
const monoUs = () => Number(process.hrtime.bigint() / 1000n)

/** Summed CPU time (ms) of processes (NaN if one is unreadable). */
const cpuOf = (pids: number[]) => pids.reduce((a, p) => a + (cpuMs(p) ?? NaN), 0)

/**
 * Starts a CPU reading; the function it returns gives the shares (100 = one core) since then of the broker, this
 * generator, and everything else on the machine (other processes disturb a run: a high `otherCpuPct` marks a
 * noisy one). `pid` may be several broker processes (summed; `perBrokerCpuPct` gives each, "a/b/c"); a `busPid`'s
 * share is `busCpuPct`, not counted in `otherCpuPct`.
 */
function cpuMeter(pid: number | number[], busPid?: number): () => Record<CpuKeys, number> & { busCpuPct?: number, perBrokerCpuPct?: string } {
  const pids = Array.isArray(pid) ? pid : [pid]
  const each = pids.map((p) => cpuMs(p))
  const brokerA = cpuOf(pids)
  const busA = busPid === undefined ? 0 : cpuMs(busPid) ?? NaN
  const genA = process.cpuUsage()
  const machineA = machineBusyMs()
  const t0 = performance.now()
  const windowStartUs = monoUs()
  return () => {
    const windowEndUs = monoUs()
    const elapsed = performance.now() - t0
    const brokerB = cpuOf(pids)
    const busB = busPid === undefined ? 0 : cpuMs(busPid) ?? NaN
    const machineB = machineBusyMs()
    const g = process.cpuUsage(genA)
    const broker = brokerB - brokerA
    const bus = busB - busA
    const gen = (g.user + g.system) / 1000
    const machine = machineA !== null && machineB !== null ? machineB - machineA : NaN
    const pct = (ms: number) => Math.round((ms * 100) / elapsed)
    const out: Record<CpuKeys, number> & { busCpuPct?: number, perBrokerCpuPct?: string } = {
      brokerCpuPct: pct(broker), genCpuPct: pct(gen), otherCpuPct: Math.max(0, pct(machine - broker - gen - (Number.isFinite(bus) ? bus : 0))), windowStartUs, windowEndUs,
    }
    if (busPid !== undefined) out.busCpuPct = pct(bus)
    if (pids.length > 1) out.perBrokerCpuPct = pids.map((p, i) => pct((cpuMs(p) ?? NaN) - (each[i] ?? NaN))).join('/')
    return out
  }
}

/** The broker processes a job's CPU share is read over. */
const brokerPids = (job: Target) => job.pids ?? job.pid

/** What a spread job adds to its details: the bus's CPU share and each broker process's. */
function spreadDetails(r: { busCpuPct?: number, perBrokerCpuPct?: string }): Record<string, number | string> {
  const out: Record<string, number | string> = {}
  if (r.busCpuPct !== undefined) out.busCpuPct = r.busCpuPct
  if (r.perBrokerCpuPct !== undefined) out.perBrokerCpuPct = r.perBrokerCpuPct
  return out
}

/** Whether a job spreads its clients over several URLs (and so waits for its routes). */
const spread = (job: Target) => job.pubUrls !== undefined || job.subUrls !== undefined

/** The URL of client `i` of a role (publishers: pubUrls, subscribers: subUrls), round robin; `url` when absent. */
function urlOf(job: Target, role: 'pub' | 'sub', i: number): string {
  const urls = role === 'pub' ? job.pubUrls : job.subUrls
  return urls && urls.length > 0 ? urls[i % urls.length] : job.url
}

/** The barrier's probe: a QoS 0 PUBLISH with an empty payload (no scenario publishes one: never counted). */
const isProbe = (p: Packet) => p.cmd === 'publish' && (p.payload as Buffer).length === 0

/**
 * On several nodes a subscription reaches the other nodes' routing a moment after its SUBACK (NATS interest, a
 * Redis SUBSCRIBE). Every publisher sends a probe (an empty QoS 0 PUBLISH) on its topic every 100 ms until each
 * subscriber has had one from every publisher's topic (`seen[j]`: the probe topics subscriber j got, filled by the
 * scenario's onPacket): then every route is in place. Returns the ms it took.
 */
async function routesReady(pubs: Array<{ c: MqttClient, topic: string }>, seen: Array<Set<string>>, timeoutMs = 20_000): Promise<number> {
  const want = new Set(pubs.map((p) => p.topic)).size
  const frames = new Map(pubs.map((p) => [p.topic, p.c.framing.packet({ cmd: 'publish', topic: p.topic, payload: Buffer.alloc(0), qos: 0, dup: false, retain: false })]))
  const t0 = performance.now()
  while (!seen.every((s) => s.size >= want)) {
    if (performance.now() - t0 > timeoutMs) {
      throw new Error(`routes not in place after ${timeoutMs} ms: subscribers had probes from ${seen.map((s) => s.size).join('/')} of ${want} topics`)
    }
    for (const p of pubs) if (!p.c.closed) p.c.write(frames.get(p.topic)!)
    await sleep(100)
  }
  await sleep(200) // probes still on their way arrive before the run (and are not counted anyway)
  return Math.round(performance.now() - t0)
}

async function endAll(clients: MqttClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.drained(2000)))
  await pool(clients, 100, (c) => c.end(2000))
}

/**
 * A closed loop over QoS 0 publishing: publishers write `batch` frames at a time while fewer than `window` messages
 * (deliveries for fan-out) are outstanding, so the measure is the rate the broker sustains with a bounded queue,
 * not how much it can buffer. A broker that drops messages would stall the loop: after 500 ms without progress the
 * outstanding messages are counted as lost and the loop goes on.
 */
class QoS0Loop {
  sent = 0 // messages x fan-out factor
  delivered = 0
  lost = 0
  private running = true
  private scheduled = false
  private rr = 0
  private readonly blocked: boolean[]
  private lastDelivered = -1
  private stalls = 0
  private readonly watchdog: NodeJS.Timeout

  constructor(
    private readonly pubs: MqttClient[],
    private readonly frames: Buffer[],
    private readonly perWrite: number, // deliveries per write (batch x fan-out)
    private readonly limit: number, // outstanding deliveries allowed
  ) {
    this.blocked = pubs.map(() => false)
    this.watchdog = setInterval(() => this.checkStall(), 250)
  }

  onDelivery(): void {
    this.delivered++
    if (!this.scheduled && this.sent - this.delivered <= this.limit - this.perWrite) {
      this.scheduled = true
      queueMicrotask(() => this.pump())
    }
  }

  pump(): void {
    this.scheduled = false
    if (!this.running) return
    const n = this.pubs.length
    let skipped = 0
    while (this.sent - this.delivered < this.limit && skipped < n) {
      const i = this.rr
      this.rr = (i + 1) % n
      if (this.blocked[i]) { skipped++; continue }
      skipped = 0
      this.sent += this.perWrite
      if (!this.pubs[i].write(this.frames[i])) {
        this.blocked[i] = true
        this.pubs[i].socket.once('drain', () => { this.blocked[i] = false; this.pump() })
      }
    }
  }

  private checkStall(): void {
    if (this.delivered === this.lastDelivered && this.sent - this.delivered > 0) {
      if (++this.stalls >= 2) {
        this.lost += this.sent - this.delivered
        this.sent = this.delivered
        this.stalls = 0
        this.pump()
      }
    } else {
      this.stalls = 0
    }
    this.lastDelivered = this.delivered
  }

  stop(): void {
    this.running = false
    clearInterval(this.watchdog)
  }
}

async function fanIn(job: Extract<Job, { scenario: 'fanin' }>): Promise<Result> {
  let loop: QoS0Loop | null = null
  const f = framingOf(job)
  const sub = await connectClient(urlOf(job, 'sub', 0), `fanin-sub-${tag}`)
  await sub.subscribe('bench/fanin/+', 0)
  const seen = [new Set<string>()]
  sub.onPacket = spread(job)
    ? (p) => { if (p.cmd !== 'publish') return; if (isProbe(p)) seen[0].add(p.topic); else loop?.onDelivery() }
    : (p) => { if (p.cmd === 'publish') loop?.onDelivery() }
  const pubs = await pool(Array.from({ length: job.publishers }, (_, i) => i), 20,
    (i) => connectClient(urlOf(job, 'pub', i), `fanin-pub-${i}-${tag}`))
  const routesMs = spread(job) ? await routesReady(pubs.map((c, i) => ({ c, topic: `bench/fanin/${i}` })), seen) : undefined
  const body = payload(job.payloadBytes)
  const frames = pubs.map((_, i) => Buffer.concat(Array.from({ length: job.batch }, () => publishFrame(f, `bench/fanin/${i}`, body))))
  loop = new QoS0Loop(pubs, frames, job.batch, job.window)
  const l = loop
  loop.pump()
  const r = await measureRates(job.timing, brokerPids(job), () => ({ delivered: l.delivered }), job.busPid)
  loop.stop()
  const details = { transport: f.transport, lost: loop.lost, publishers: job.publishers, payloadBytes: job.payloadBytes, window: job.window, brokerCpuPct: r.brokerCpuPct, genCpuPct: r.genCpuPct, otherCpuPct: r.otherCpuPct, windowStartUs: r.windowStartUs, windowEndUs: r.windowEndUs,
    ...(routesMs === undefined ? {} : { routesMs, ...spreadDetails(r) }) }
  await endAll([...pubs, sub])
  return { value: r.delivered, unit: 'msg/s', details }
}

async function fanOut(job: Extract<Job, { scenario: 'fanout' }>): Promise<Result> {
  let loop: QoS0Loop | null = null
  const f = framingOf(job)
  const perSub = new Array<number>(job.subscribers).fill(0)
  const seen = Array.from({ length: job.subscribers }, () => new Set<string>())
  const subs = await pool(Array.from({ length: job.subscribers }, (_, i) => i), 25, async (i) => {
    const c = await connectClient(urlOf(job, 'sub', i), `fanout-sub-${i}-${tag}`)
    await c.subscribe('bench/fanout/t', 0)
    c.onPacket = spread(job)
      ? (p) => { if (p.cmd !== 'publish') return; if (isProbe(p)) seen[i].add(p.topic); else { perSub[i]++; loop?.onDelivery() } }
      : (p) => { if (p.cmd === 'publish') { perSub[i]++; loop?.onDelivery() } }
    return c
  })
  const pub = await connectClient(urlOf(job, 'pub', 0), `fanout-pub-${tag}`)
  const routesMs = spread(job) ? await routesReady([{ c: pub, topic: 'bench/fanout/t' }], seen) : undefined
  const body = payload(job.payloadBytes)
  const frame = Buffer.concat(Array.from({ length: job.batch }, () => publishFrame(f, 'bench/fanout/t', body)))
  loop = new QoS0Loop([pub], [frame], job.batch * job.subscribers, job.window * job.subscribers)
  const l = loop
  loop.pump()
  const r = await measureRates(job.timing, brokerPids(job), () => ({ delivered: l.delivered }), job.busPid)
  loop.stop()
  const details = {
    transport: f.transport, lost: loop.lost, subscribers: job.subscribers, payloadBytes: job.payloadBytes, brokerCpuPct: r.brokerCpuPct, genCpuPct: r.genCpuPct, otherCpuPct: r.otherCpuPct, windowStartUs: r.windowStartUs, windowEndUs: r.windowEndUs,
    perSubscriberMin: Math.min(...perSub), perSubscriberMax: Math.max(...perSub),
    ...(routesMs === undefined ? {} : { routesMs, ...spreadDetails(r) }),
  }
  await endAll([...subs, pub])
  return { value: r.delivered, unit: 'deliveries/s', details }
}

/** Batch PUBACKs from one client into one write per tick. */
function acker(c: MqttClient): (id: number) => void {
  let ids: number[] = []
  const size = c.framing.pubackBytes
  const flush = () => {
    const buf = Buffer.allocUnsafe(ids.length * size)
    for (let k = 0; k < ids.length; k++) c.framing.puback(ids[k]).copy(buf, k * size)
    ids = []
    if (!c.closed) c.write(buf)
  }
  return (id) => {
    if (ids.length === 0) queueMicrotask(flush)
    ids.push(id)
  }
}

/**
 * QoS 1 publishers -> one wildcard QoS 1 subscriber that acknowledges everything. Each publisher keeps `inflight`
 * PUBLISHes awaiting PUBACK (a slot is re-sent with the same packet id when acknowledged); a global bound on
 * published-but-not-delivered messages keeps a broker that acknowledges before delivering from queueing without end.
 * `qos1-persistent`: the same with a persistent subscriber (clean session 0, a fixed client id), so that every
 * delivery is an in-flight entry of a session that outlives its connection (what a durable broker may have to write).
 */
async function qos1(job: Extract<Job, { scenario: 'qos1' | 'qos1-persistent' }>): Promise<Result> {
  const persistent = job.scenario === 'qos1-persistent'
  let delivered = 0
  let acked = 0
  let published = 0
  let running = true
  const globalLimit = job.publishers * job.inflight
  const parked: Array<() => void> = []
  const f = framingOf(job)
  const sub = await connectClient(urlOf(job, 'sub', 0), persistent ? 'qos1-persistent-sub' : `qos1-sub-${tag}`, { clean: !persistent })
  await sub.subscribe('bench/qos1/+', 1)
  const ackSub = acker(sub)
  const seen = [new Set<string>()]
  const probing = spread(job)
  sub.onPacket = (p) => {
    if (p.cmd !== 'publish') return
    if (probing && isProbe(p)) { seen[0].add(p.topic); return }
    delivered++
    if (p.qos === 1) ackSub(p.messageId!)
    while (parked.length > 0 && published - delivered < globalLimit) parked.pop()!()
  }
  const body = payload(job.payloadBytes)
  const pubs = await pool(Array.from({ length: job.publishers }, (_, i) => i), 20, async (i) => {
    const c = await connectClient(urlOf(job, 'pub', i), `qos1-pub-${i}-${tag}`)
    const slots = Array.from({ length: job.inflight }, (_, k) => publishFrame(f, `bench/qos1/${i}`, body, 1, k + 1))
    const send = (k: number) => {
      if (!running || c.closed) return
      if (published - delivered >= globalLimit) { parked.push(() => send(k)); return }
      published++
      c.write(slots[k])
    }
    c.onPacket = (p: Packet) => {
      if (p.cmd !== 'puback') return
      acked++
      send(p.messageId! - 1)
    }
    return { c, topic: `bench/qos1/${i}`, start: () => { for (let k = 0; k < job.inflight; k++) send(k) } }
  })
  const routesMs = probing ? await routesReady(pubs, seen) : undefined
  for (const p of pubs) p.start()
  const r = await measureRates(job.timing, brokerPids(job), () => ({ delivered, acked }), job.busPid)
  running = false
  await sleep(200) // let in-flight acknowledgements finish
  const details = { transport: f.transport, persistentSubscriber: persistent ? 'yes' : 'no', deliveredTotal: delivered, ackedPerSec: Math.round(r.acked), deliveredPerSec: Math.round(r.delivered), publishers: job.publishers, inflight: job.inflight, brokerCpuPct: r.brokerCpuPct, genCpuPct: r.genCpuPct, otherCpuPct: r.otherCpuPct, windowStartUs: r.windowStartUs, windowEndUs: r.windowEndUs,
    ...(routesMs === undefined ? {} : { routesMs, ...spreadDetails(r) }) }
  await endAll([...pubs.map((p) => p.c), sub])
  return { value: Math.min(r.acked, r.delivered), unit: 'msg/s', details }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

/**
 * QoS 1 at a fixed total rate, publish time in the payload, delivery latency at the subscriber. A spread job has a
 * subscriber per URL of `subUrls` (each gets every message: the same messages, sent at the same moments, timed on
 * each path) and gives each one's percentiles as s<j>P50Ms, s<j>P99Ms, ...; the headline is the first subscriber's.
 */
async function latency(job: Extract<Job, { scenario: 'latency' }>): Promise<Result> {
  let measuring = false
  let sentMeasured = 0
  const f = framingOf(job)
  const probing = spread(job)
  const subCount = probing ? Math.max(1, job.subUrls?.length ?? 1) : 1
  const samples: number[][] = Array.from({ length: subCount }, () => [])
  const seen = Array.from({ length: subCount }, () => new Set<string>())
  const subs = await Promise.all(Array.from({ length: subCount }, async (_, j) => {
    const sub = await connectClient(urlOf(job, 'sub', j), `lat-sub-${j}-${tag}`)
    await sub.subscribe('bench/lat/+', 1)
    const ackSub = acker(sub)
    const mine = samples[j]
    sub.onPacket = (p) => {
      if (p.cmd !== 'publish') return
      if (p.qos === 1) ackSub(p.messageId!)
      const body = p.payload as Buffer
      if (probing && body.length === 0) { seen[j].add(p.topic); return }
      const sentAt = body.readDoubleLE(0)
      const measured = body[8] === 1
      if (measured) mine.push(performance.now() - sentAt)
    }
    return sub
  }))
  const bodyLen = Math.max(job.payloadBytes, 9)
  const pubs = await pool(Array.from({ length: job.publishers }, (_, i) => i), 20, async (i) => {
    const c = await connectClient(urlOf(job, 'pub', i), `lat-pub-${i}-${tag}`)
    // the packet id sits just before the payload (MQTT 3.1.1), in a frame as in a raw packet: patched per message
    const template = publishFrame(f, `bench/lat/${i}`, payload(bodyLen), 1, 1)
    return { c, template, nextId: 1, topic: `bench/lat/${i}` }
  })
  const routesMs = probing ? await routesReady(pubs, seen) : undefined
  let sent = 0
  let rr = 0
  const start = performance.now()
  const tick = setInterval(() => {
    const due = Math.floor(((performance.now() - start) * job.rate) / 1000)
    while (sent < due) {
      const p = pubs[rr]
      rr = (rr + 1) % pubs.length
      const f = Buffer.from(p.template)
      const bodyAt = f.length - bodyLen
      f.writeUInt16BE(p.nextId, bodyAt - 2)
      p.nextId = p.nextId === 65535 ? 1 : p.nextId + 1
      f[bodyAt + 8] = measuring ? 1 : 0
      if (measuring) sentMeasured++
      f.writeDoubleLE(performance.now(), bodyAt)
      p.c.write(f)
      sent++
    }
  }, 1)
  await sleep(job.timing.warmupMs)
  measuring = true
  const cpu = cpuMeter(brokerPids(job), job.busPid)
  await sleep(job.timing.measureMs)
  measuring = false
  const cpuShares = cpu()
  clearInterval(tick)
  await sleep(1000) // late deliveries still count
  const stats = samples.map((s) => {
    const sorted = s.slice().sort((a, b) => a - b)
    return {
      p50Ms: round(percentile(sorted, 0.5)), p99Ms: round(percentile(sorted, 0.99)),
      p999Ms: round(percentile(sorted, 0.999)), maxMs: round(sorted[sorted.length - 1] ?? NaN), received: s.length,
    }
  })
  const perSub: Record<string, number> = {}
  if (probing) {
    stats.forEach((st, j) => {
      perSub[`s${j}P50Ms`] = st.p50Ms
      perSub[`s${j}P99Ms`] = st.p99Ms
      perSub[`s${j}P999Ms`] = st.p999Ms
      perSub[`s${j}MaxMs`] = st.maxMs
      perSub[`s${j}Received`] = st.received
    })
  }
  const { busCpuPct, perBrokerCpuPct, ...shares } = cpuShares
  const details = {
    p50Ms: stats[0].p50Ms, p99Ms: stats[0].p99Ms, p999Ms: stats[0].p999Ms, maxMs: stats[0].maxMs,
    transport: f.transport, rate: job.rate, sent: sentMeasured, received: stats[0].received, lost: sentMeasured - stats[0].received, ...shares,
    ...(routesMs === undefined ? {} : { routesMs, subscribers: subCount, ...perSub, ...spreadDetails({ busCpuPct, perBrokerCpuPct }) }),
  }
  await endAll([...pubs.map((p) => p.c), ...subs])
  return { value: details.p50Ms, unit: 'ms p50', details }
}

function round(n: number, digits = 3): number {
  const f = 10 ** digits
  return Math.round(n * f) / f
}

/**
 * `concurrency` loops, each: WebSocket open (or TCP connect), CONNECT, CONNACK, DISCONNECT and close (the WebSocket
 * closing handshake, or a TCP FIN), again and again.
 */
async function connectRate(job: Extract<Job, { scenario: 'connect' }>): Promise<Result> {
  let done = 0
  let errors = 0
  let running = true
  let n = 0
  const closing = new Set<MqttClient>()
  async function loop(w: number) {
    while (running) {
      try {
        const c = await connectClient(job.url, `conn-${w}-${n++}-${tag}`, { timeoutMs: 5000 })
        done++
        c.write(c.framing.disconnect)
        c.close()
        closing.add(c)
        const t = setTimeout(() => c.destroy(), 3000)
        c.whenClosed(() => { clearTimeout(t); closing.delete(c) })
      } catch {
        errors++
        await sleep(10)
      }
    }
  }
  const loops = Array.from({ length: job.concurrency }, (_, w) => loop(w))
  const r = await measureRates(job.timing, job.pid, () => ({ done, errors }))
  running = false
  await Promise.all(loops)
  await waitClosed(closing, 3000)
  return { value: r.done, unit: 'connects/s', details: { transport: transportOf(job.url), errorsPerSec: round(r.errors, 1), concurrency: job.concurrency, brokerCpuPct: r.brokerCpuPct, genCpuPct: r.genCpuPct, otherCpuPct: r.otherCpuPct, windowStartUs: r.windowStartUs, windowEndUs: r.windowEndUs } }
}

async function waitClosed(set: Set<MqttClient>, ms: number) {
  const until = Date.now() + ms
  while (set.size > 0 && Date.now() < until) await sleep(50)
  for (const c of set) c.destroy()
}

/**
 * RSS of the broker before and after `clients` idle connections (CONNECTed, keepalive 60, no traffic): as it is (the
 * lowest of a few readings), and, for a node broker started with the inspector, after a full garbage collection
 * (what the clients hold, without garbage that happened to be collected or not).
 */
/**
 * Warm up a broker's connect path (200 connect/disconnect cycles, 20 at a time) before its memory is read, so that
 * code and pools it creates once are not charged per client.
 */
export async function warmConnectPath(url: string, clientId: (i: number) => string): Promise<void> {
  await pool(Array.from({ length: 200 }, (_, i) => i), 20, async (i) => {
    const c = await connectClient(url, clientId(i))
    await c.end()
  })
}

async function memory(job: Extract<Job, { scenario: 'memory' }>): Promise<Result> {
  await warmConnectPath(job.url, (i) => `mem-warm-${i}-${tag}`)
  await sleep(job.settleMs)
  const readings = async (gc: boolean): Promise<number[]> => {
    const out: number[] = []
    for (let i = 0; i < 3; i++) {
      if (gc) await collectGarbage(job.inspectorUrl!)
      const r = rssKiB(job.pid)
      if (r !== null) out.push(r)
      await sleep(300)
    }
    if (out.length === 0) throw new Error(`cannot read /proc/${job.pid}/status`)
    return out
  }
  const gc = job.inspectorUrl !== undefined
  const before = await readings(false)
  const beforeGc = gc ? await readings(true) : []
  const clients = await pool(Array.from({ length: job.clients }, (_, i) => i), job.concurrency,
    (i) => connectClient(job.url, `mem-${i}-${tag}`, { timeoutMs: 20_000 }))
  await sleep(job.settleMs)
  const after = await readings(false)
  const afterGc = gc ? await readings(true) : []
  const perConn = (a: number[], z: number[]) => round((Math.min(...z) - Math.min(...a)) / job.clients, 2)
  const details = {
    transport: transportOf(job.url),
    clients: job.clients,
    rssBeforeKiB: Math.min(...before), rssAfterKiB: Math.min(...after),
    rssReadingsKiB: `${before.join(' ')} -> ${after.join(' ')}`,
    // a broker without a garbage collector (mosquitto) holds no garbage: its figure is the same
    perConnAfterGcKiB: gc ? perConn(beforeGc, afterGc) : perConn(before, after),
    rssReadingsAfterGcKiB: gc ? `${beforeGc.join(' ')} -> ${afterGc.join(' ')}` : 'no GC can be forced',
  }
  await pool(clients, 200, (c) => c.end(3000))
  return { value: perConn(before, after), unit: 'KiB/conn', details }
}

/** Ask a node process for a full garbage collection through its inspector (Chrome DevTools Protocol). */
export async function collectGarbage(inspectorUrl: string): Promise<void> {
  await inspectorCall(inspectorUrl, 'HeapProfiler.collectGarbage')
}

/** One call of the Chrome DevTools protocol through a Node process's inspector; resolves with its result. */
export function inspectorCall<T = unknown>(inspectorUrl: string, method: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(inspectorUrl, { perMessageDeflate: false })
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`inspector: no answer to ${method}`)) }, 10_000)
    ws.once('error', (err) => { clearTimeout(timer); reject(err) })
    ws.once('open', () => ws.send(JSON.stringify({ id: 1, method })))
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { id?: number, result?: T }
      if (m.id !== 1) return
      clearTimeout(timer)
      ws.close()
      resolve(m.result as T)
    })
  })
}

const STORM_MODES = ['publish-first', 'garbage', 'early-close'] as const

/**
 * A storm of failing connections from `concurrency` loops for `durationMs`: each opens a WebSocket and then sends a
 * PUBLISH before CONNECT (protocol_error), sends bytes that are no MQTT packet (protocol_error), or closes before
 * sending anything (closed_before_connect), in turn.
 */
async function storm(job: Extract<Job, { scenario: 'failstorm' }>): Promise<Result> {
  if (transportOf(job.url) !== 'ws') throw new Error('failstorm: WebSocket only')
  const publishFirst = publishFrame(framing('ws'), 'storm/x', Buffer.from('boom'))
  const garbage = wsFrame(Buffer.from([0x00, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xde, 0xad, 0xbe, 0xef]))
  const count = { attempts: 0, closedByServer: 0, earlyClose: 0, errors: 0 }
  let running = true
  async function loop(w: number) {
    let k = w
    while (running) {
      const mode = STORM_MODES[k++ % STORM_MODES.length]
      try {
        const c = await BenchClient.open(job.url, { timeoutMs: 5000 })
        count.attempts++
        if (mode === 'early-close') {
          count.earlyClose++
          c.destroy()
          continue
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => { c.destroy(); resolve() }, 3000)
          c.ws.once('close', () => { clearTimeout(t); count.closedByServer++; resolve() })
          c.write(mode === 'publish-first' ? publishFirst : garbage)
        })
      } catch {
        count.errors++
        await sleep(5)
      }
    }
  }
  const t0 = performance.now()
  const cpu = cpuMeter(job.pid)
  const loops = Array.from({ length: job.concurrency }, (_, w) => loop(w))
  await sleep(job.durationMs)
  running = false
  const cpuShares = cpu()
  await Promise.all(loops)
  const secs = (performance.now() - t0) / 1000
  return {
    value: round(count.attempts / secs, 1),
    unit: 'failing connections/s',
    details: { ...count, seconds: round(secs, 2), concurrency: job.concurrency, ...cpuShares },
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** Reads a process's RSS every `everyMs`; `stop()` gives the highest reading. */
function rssSampler(pid: number, everyMs = 50): { stop(): number } {
  let peak = rssKiB(pid) ?? NaN
  const timer = setInterval(() => {
    const r = rssKiB(pid)
    if (r !== null && !(r <= peak)) peak = r
  }, everyMs)
  return { stop() { clearInterval(timer); return peak } }
}

/** VmHWM (the highest RSS since the process started) in KiB, from /proc/<pid>/status (null if unreadable). */
function hwmKiB(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

/**
 * Publish one QoS 1 message of `body` to each of `topics` from `c`, with at most `inflight` awaiting PUBACK (a packet
 * id is used again once acknowledged); resolves when every one is acknowledged.
 */
function publishAllQos1(c: MqttClient, topics: string[], body: Buffer, retain: boolean, inflight: number, timeoutMs: number): Promise<void> {
  if (topics.length === 0) return Promise.resolve()
  return new Promise((resolve, reject) => {
    let next = 0
    let acked = 0
    const timer = setTimeout(() => reject(new Error(`${acked} of ${topics.length} PUBACKs after ${timeoutMs} ms`)), timeoutMs)
    const send = (messageId: number) => {
      if (next >= topics.length || c.closed) return
      c.write(c.framing.packet({ cmd: 'publish', topic: topics[next++], payload: body, qos: 1, messageId, retain, dup: false }))
    }
    c.onClose = () => { clearTimeout(timer); reject(new Error(`closed after ${acked} of ${topics.length} PUBACKs`)) }
    c.onPacket = (p) => {
      if (p.cmd !== 'puback') return
      if (++acked === topics.length) {
        clearTimeout(timer)
        c.onClose = () => {}
        resolve()
      } else send(p.messageId!)
    }
    c.socket.cork()
    for (let id = 1; id <= inflight && id <= topics.length; id++) send(id)
    c.socket.uncork()
  })
}

/** The topics of `all` that publisher `i` of `n` publishes (every n-th). */
function share<T>(all: T[], i: number, n: number): T[] {
  return all.filter((_, k) => k % n === i)
}

/**
 * Retained messages in bulk: the time to store `topics` retained messages (every PUBLISH acknowledged), then the
 * time until `subscribers` fresh subscriptions to `filter`, made at the same moment, have each received all of them;
 * the broker's RSS throughout (sampled every 50 ms, and its VmHWM).
 */
async function retained(job: Extract<Job, { scenario: 'retained' }>): Promise<Result> {
  const f = framingOf(job)
  const rss = rssSampler(job.pid)
  const body = payload(job.payloadBytes)
  const topics = range(job.topics).map((k) => `bench/r/${k}`)
  const pubs = await pool(range(job.publishers), 20, (i) => connectClient(job.url, `ret-pub-${i}-${tag}`))
  const rssIdleKiB = rssKiB(job.pid) ?? NaN
  const pubCpu = cpuMeter(job.pid)
  const t0 = performance.now()
  await Promise.all(pubs.map((c, i) => publishAllQos1(c, share(topics, i, job.publishers), body, true, job.inflight, job.publishTimeoutMs)))
  const publishMs = performance.now() - t0
  const pubShares = pubCpu()
  await endAll(pubs)

  const received = new Array<number>(job.subscribers).fill(0)
  const doneAt = new Array<number>(job.subscribers).fill(NaN)
  let done = 0
  let total = 0
  let atQos1 = 0
  const subs = await pool(range(job.subscribers), 25, async (i) => {
    const c = await connectClient(job.url, `ret-sub-${i}-${tag}`)
    const ack = acker(c)
    c.onPacket = (p) => {
      if (p.cmd !== 'publish') return
      total++
      // a broker that does not downgrade a retained QoS 1 message to the subscription's QoS 0 (Aedes, for a wildcard
      // filter) gets its PUBACK all the same
      if (p.qos === 1) { atQos1++; ack(p.messageId!) }
      if (++received[i] === job.topics) {
        doneAt[i] = performance.now()
        done++
      }
    }
    return c
  })
  await sleep(200)
  const rssBeforeSubscribeKiB = rssKiB(job.pid) ?? NaN
  const subscribe = f.packet({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: job.filter, qos: 0 }] })
  const delCpu = cpuMeter(job.pid)
  const t1 = performance.now()
  for (const c of subs) c.write(subscribe)
  // until all have everything, the bound, or 10 s without a single delivery
  let lastTotal = -1
  let lastProgress = performance.now()
  while (done < job.subscribers && performance.now() - t1 < job.deliveryTimeoutMs && performance.now() - lastProgress < 10_000) {
    await sleep(20)
    if (total !== lastTotal) { lastTotal = total; lastProgress = performance.now() }
  }
  const allDone = done === job.subscribers
  const ended = allDone ? 'complete' : performance.now() - t1 >= job.deliveryTimeoutMs ? `bound of ${job.deliveryTimeoutMs} ms reached` : 'stalled: nothing arrived for 10 s'
  const deliveryMs = allDone ? Math.max(...doneAt) - t1 : NaN
  const delShares = delCpu()
  const rssEndKiB = rssKiB(job.pid) ?? NaN
  const sampledPeakKiB = rss.stop()
  const hwm = hwmKiB(job.pid)
  const sortedDone = doneAt.filter(Number.isFinite).map((t) => t - t1).sort((a, b) => a - b)
  const details = {
    transport: f.transport, topics: job.topics, payloadBytes: job.payloadBytes, publishQos: 1, subscribers: job.subscribers,
    filter: job.filter, subscriptionQos: 0,
    publishMs: round(publishMs, 1), storedPerSec: Math.round(job.topics / (publishMs / 1000)),
    deliveryMs: round(deliveryMs, 1),
    // (when some subscriber is short: what arrived over the time until the last delivery)
    deliveriesPerSec: allDone ? Math.round((job.subscribers * job.topics) / (deliveryMs / 1000)) : Math.round(total / ((lastProgress - t1) / 1000)),
    firstSubscriberDoneMs: round(sortedDone[0] ?? NaN, 1), medianSubscriberDoneMs: round(percentile(sortedDone, 0.5), 1),
    subscribersComplete: done, delivered: total, missing: job.subscribers * job.topics - total, ended, deliveredAtQos1: atQos1,
    lastDeliveryAtMs: round(lastProgress - t1, 1),
    rssIdleKiB, rssBeforeSubscribeKiB, rssEndKiB, rssPeakSampledKiB: sampledPeakKiB,
    // VmHWM: the true peak (a 50 ms sampler may miss a short one); the sampled one when it cannot be read
    rssPeakKiB: hwm ?? sampledPeakKiB,
    publishBrokerCpuPct: pubShares.brokerCpuPct, publishGenCpuPct: pubShares.genCpuPct,
    brokerCpuPct: delShares.brokerCpuPct, genCpuPct: delShares.genCpuPct,
    otherCpuPct: Math.max(pubShares.otherCpuPct, delShares.otherCpuPct),
    windowStartUs: pubShares.windowStartUs, windowEndUs: delShares.windowEndUs,
  }
  await endAll(subs)
  return { value: details.deliveryMs, unit: 'ms', details }
}

/** The state the start-up scenario loads (see BuildStateJob), built through the broker itself. */
async function buildState(job: Extract<Job, { scenario: 'build-state' }>): Promise<Result> {
  const body = payload(job.payloadBytes)
  const t0 = performance.now()
  let subscriptions = 0
  await pool(range(job.sessions), job.concurrency, async (i) => {
    const c = await connectClient(job.url, `s-${i}`, { clean: false, timeoutMs: 30_000 })
    const subs: Array<{ topic: string, qos: 0 | 1 }> = [{ topic: `bench/s/${i}/a`, qos: 1 }]
    if (i % 2 === 0) subs.push({ topic: `bench/s/${i}/+/b`, qos: 0 })
    await c.subscribeAll(subs, 30_000)
    subscriptions += subs.length
    await c.end(5000)
  })
  const sessionsMs = performance.now() - t0
  const pubs = await pool(range(job.publishers), 20, (i) => connectClient(job.url, `build-pub-${i}-${tag}`))
  const t1 = performance.now()
  const retainedTopics = range(job.retained).map((k) => `bench/r/${k}`)
  await Promise.all(pubs.map((c, i) => publishAllQos1(c, share(retainedTopics, i, pubs.length), body, true, job.inflight, 300_000)))
  const retainedMs = performance.now() - t1
  const t2 = performance.now()
  const queuedTopics = range(job.sessions).filter((i) => i % job.queuedEvery === 0).map((i) => `bench/s/${i}/a`)
  await Promise.all(pubs.map((c, i) => publishAllQos1(c, share(queuedTopics, i, pubs.length), body, false, job.inflight, 300_000)))
  const queuedMs = performance.now() - t2
  await endAll(pubs)
  const details = {
    sessions: job.sessions, subscriptions, retained: job.retained, queued: queuedTopics.length, payloadBytes: job.payloadBytes,
    sessionsMs: Math.round(sessionsMs), sessionsPerSec: Math.round(job.sessions / (sessionsMs / 1000)),
    retainedMs: Math.round(retainedMs), queuedMs: Math.round(queuedMs),
    rssKiB: rssKiB(job.pid) ?? NaN, rssPeakKiB: hwmKiB(job.pid) ?? NaN,
  }
  return { value: Math.round(performance.now() - t0), unit: 'ms', details }
}
