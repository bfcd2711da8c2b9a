// The attack scenarios, generator side: each runs in a generator process of its own (bench/gen/main.ts), never in
// a broker's, and is bounded in time and in count. The bench (bench/attacks.ts) samples the broker's RSS meanwhile
// and runs a probe (below, in a third process) to see whether the broker still answers.
//
// An attack tells the bench when it starts and ends (`notify`), after its set-up and before it lets go of its
// sockets, so that the RSS peak and the probe's answers are read over the attack itself. Every socket it opened is
// destroyed before it reports.
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import mqtt from 'mqtt-packet'
import type { IPublishPacket, Packet } from 'mqtt-packet'
import { BenchClient, packetFrame, pubackFrame, wsFrame, connectFrame, DISCONNECT_FRAME, pool } from '../lib/wsclient.ts'
import { sleep } from '../lib/proc.ts'
import type { Result } from './scenarios.ts'

interface Target { url: string, pid: number }

export type AttackJob =
  /** `retained` messages of `retainedBytes` are stored first; then one SUBSCRIBE lists `#` `repeats` times (at `qos`), and the client never reads */
  | Target & { scenario: 'attack-retained', retained: number, retainedBytes: number, repeats: number, qos: 0 | 1, holdMs: number }
  /** QoS 1 PUBLISHes to the client's own QoS 1 subscription, as fast as the socket takes them, never reading */
  | Target & { scenario: 'attack-flood', durationMs: number, payloadBytes: number, maxMessages: number, tailMs: number }
  /** new client ids, clean session 0: CONNECT, CONNACK, DISCONNECT, `concurrency` loops, until `sessions` or `maxMs` */
  | Target & { scenario: 'attack-sessions', sessions: number, concurrency: number, maxMs: number, tailMs: number }
  /** `sockets` WebSockets each sending the first `prefixBytes` of a CONNECT whose header declares more, then nothing */
  | Target & { scenario: 'attack-slowconnect', sockets: number, prefixBytes: number, concurrency: number, holdMs: number }

/** The probe: a client that publishes to itself every `intervalMs`, and a fresh connection every `connectEveryMs`. */
export type ProbeJob = Target & { scenario: 'probe', intervalMs: number, connectEveryMs: number, timeoutMs: number, maxMs: number }

export type AttackPhase = 'ready' | 'attack-start' | 'attack-end'
export type Notify = (phase: AttackPhase) => void

/** Set by a `{ stop: true }` message from the bench (bench/gen/main.ts): the probe ends, an attack ends early. */
let stopRequested = false
export function requestStop(): void { stopRequested = true }

const tag = Math.random().toString(36).slice(2, 8)
const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d

export function runAttack(job: AttackJob | ProbeJob, notify: Notify): Promise<Result> {
  switch (job.scenario) {
    case 'attack-retained': return retainedFlood(job, notify)
    case 'attack-flood': return qos1Flood(job, notify)
    case 'attack-sessions': return sessions(job, notify)
    case 'attack-slowconnect': return slowConnects(job, notify)
    case 'probe': return probe(job, notify)
  }
}

/** Sleep `ms`, or less if the bench asks to stop. */
async function hold(ms: number): Promise<void> {
  const until = performance.now() + ms
  while (!stopRequested && performance.now() < until) await sleep(Math.min(50, until - performance.now()))
}

function publish(topic: string, payload: Buffer, qos: 0 | 1, messageId: number, retain = false): Buffer {
  const p: IPublishPacket = { cmd: 'publish', topic, payload, qos, dup: false, retain }
  if (qos > 0) p.messageId = messageId
  return packetFrame(p)
}

/**
 * (a) `retained` retained messages of `retainedBytes` (published at QoS 1, each acknowledged before the attack), then
 * one client sends one SUBSCRIBE listing `#` `repeats` times at `qos` and never reads what comes back. A broker that
 * answers each repeat with every retained message owes it repeats x retained x retainedBytes. At QoS 0 only an
 * output bound holds that back; at QoS 1 a bound on in-flight and queued messages does too.
 */
async function retainedFlood(job: Extract<AttackJob, { scenario: 'attack-retained' }>, notify: Notify): Promise<Result> {
  const setup = await BenchClient.connect(job.url, `atk-ret-setup-${tag}`)
  const body = Buffer.alloc(job.retainedBytes, 0x72)
  let acked = 0
  const window = 100
  await new Promise<void>((resolve, reject) => {
    let sent = 0
    const timer = setTimeout(() => reject(new Error(`retained set-up: ${acked} of ${job.retained} acknowledged in 20 s`)), 20_000)
    const next = () => { if (sent < job.retained) { sent++; setup.write(publish(`attack/retained/${sent}`, body, 1, sent, true)) } }
    setup.onPacket = (p: Packet) => {
      if (p.cmd !== 'puback') return
      if (++acked === job.retained) { clearTimeout(timer); resolve() } else next()
    }
    for (let i = 0; i < window; i++) next()
  })
  await setup.end()
  await sleep(500)

  const subscribe = packetFrame({
    cmd: 'subscribe', messageId: 1, subscriptions: Array.from({ length: job.repeats }, () => ({ topic: '#', qos: job.qos })),
  })
  const attacker = await BenchClient.connect(job.url, `atk-ret-${tag}`)
  attacker.ws.pause() // never reads again: everything the broker sends stays with the broker (and the kernel buffers)
  notify('attack-start')
  const t0 = performance.now()
  attacker.write(subscribe)
  await hold(job.holdMs)
  notify('attack-end')
  attacker.destroy()
  return {
    value: round((performance.now() - t0) / 1000, 2),
    unit: 's',
    details: {
      retained: job.retained, retainedBytes: job.retainedBytes, repeats: job.repeats, qos: job.qos,
      subscribeBytes: subscribe.length, owedIfRepeatedMiB: round((job.repeats * job.retained * job.retainedBytes) / 1048576),
    },
  }
}

/**
 * (b) One client, subscribed at QoS 1 to its own topic, writes QoS 1 PUBLISHes to it as fast as its socket takes
 * them for `durationMs` (at most `maxMessages`), and reads nothing: neither the PUBACKs nor the deliveries.
 */
async function qos1Flood(job: Extract<AttackJob, { scenario: 'attack-flood' }>, notify: Notify): Promise<Result> {
  const topic = `attack/flood/${tag}`
  const c = await BenchClient.connect(job.url, `atk-flood-${tag}`)
  await c.subscribe(topic, 1)
  c.ws.pause()
  const perBatch = 8 // ~8.6 KB per write with 1 KiB payloads
  const body = Buffer.alloc(job.payloadBytes, 0x66)
  // packet ids 1..512 in turn (the broker keeps no state for an incoming QoS 1 id: reuse is fine)
  const batches = Array.from({ length: 64 }, (_, b) =>
    Buffer.concat(Array.from({ length: perBatch }, (_, k) => publish(topic, body, 1, b * perBatch + k + 1))))
  let sent = 0
  let waits = 0
  let waitedMs = 0
  let longestWaitMs = 0
  let closed = false
  c.socket.once('close', () => { closed = true })
  notify('attack-start')
  const t0 = performance.now()
  let b = 0
  const LOCAL_BUFFER = 1 << 20 // what this side buffers before waiting for the kernel (and the broker) to take it
  while (!stopRequested && !closed && sent < job.maxMessages && performance.now() - t0 < job.durationMs) {
    c.socket.write(batches[b])
    b = (b + 1) % batches.length
    sent += perBatch
    if (c.socket.writableLength > LOCAL_BUFFER) {
      const w0 = performance.now()
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, job.durationMs - (w0 - t0)))
        function done() { clearTimeout(timer); c.socket.off('drain', done); c.socket.off('close', done); resolve() }
        c.socket.once('drain', done)
        c.socket.once('close', done)
      })
      const w = performance.now() - w0
      waits++
      waitedMs += w
      longestWaitMs = Math.max(longestWaitMs, w)
    } else if (sent % (perBatch * 128) === 0) {
      await new Promise<void>((r) => setImmediate(r)) // let I/O, timers (and the stop message) in
    }
  }
  const seconds = (performance.now() - t0) / 1000
  const unsent = c.socket.writableLength
  await hold(job.tailMs)
  notify('attack-end')
  c.destroy()
  return {
    value: Math.round(sent / seconds),
    unit: 'msg/s written',
    details: {
      messagesWritten: sent, payloadBytes: job.payloadBytes, seconds: round(seconds, 2), mibWritten: round((sent * (job.payloadBytes + 50)) / 1048576),
      waitsForRoom: waits, waitedMs: Math.round(waitedMs), longestWaitMs: Math.round(longestWaitMs),
      unsentBytesAtEnd: unsent, closedByBroker: closed ? 'yes' : 'no',
    },
  }
}

/** A client-to-server WebSocket close frame (code 1000), masked with the zero key. */
const CLOSE_FRAME = Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])

/**
 * One cheap session cycle on a raw TCP socket (an attacker needs no WebSocket library): the upgrade request, once
 * the 101 is in the CONNECT, once the CONNACK is in DISCONNECT and a close frame, then the socket is ended. Resolves
 * with the CONNACK's return code; rejects on anything else or after `timeoutMs`.
 */
function sessionCycle(url: URL, upgrade: Buffer, connect: Buffer, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(url.port), url.hostname)
    s.setNoDelay(true)
    let buf: Buffer = Buffer.alloc(0)
    let mqttBytes: Buffer = Buffer.alloc(0)
    let upgraded = false
    let settled = false
    const timer = setTimeout(() => done(new Error('timeout')), timeoutMs)
    function done(err: Error | null, code?: number) {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) { s.destroy(); reject(err); return }
      s.end(Buffer.concat([DISCONNECT_FRAME, CLOSE_FRAME]))
      // the broker closes after the close frame; a socket it leaves open goes after 3 s
      setTimeout(() => s.destroy(), 3000).unref()
      resolve(code!)
    }
    s.once('connect', () => s.write(upgrade))
    s.once('error', (err) => done(err))
    s.once('close', () => done(new Error('closed')))
    s.on('data', (d: Buffer) => {
      if (settled) return
      buf = buf.length ? Buffer.concat([buf, d]) : d
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        if (!/^HTTP\/1\.1 101/.test(buf.toString('latin1', 0, 16))) return done(new Error(`upgrade refused: ${buf.toString('latin1', 0, 12)}`))
        upgraded = true
        buf = buf.subarray(end + 4)
        s.write(connect)
      }
      // the server's frames (unmasked; a broker may split a packet over several), their payloads joined
      while (buf.length >= 2) {
        const len7 = buf[1] & 0x7f
        const head = len7 === 126 ? 4 : len7 === 127 ? 10 : 2
        if (buf.length < head) break
        const len = len7 === 126 ? buf.readUInt16BE(2) : len7 === 127 ? Number(buf.readBigUInt64BE(2)) : len7
        if (buf.length < head + len) break
        if ((buf[0] & 0x0f) === 0x08) return done(new Error('closed by the broker before CONNACK'))
        mqttBytes = Buffer.concat([mqttBytes, buf.subarray(head, head + len)])
        buf = buf.subarray(head + len)
      }
      // the CONNACK: 0x20 0x02 flags code (MQTT 3.1.1)
      if (mqttBytes.length < 4) return
      if (mqttBytes[0] !== 0x20) return done(new Error(`no CONNACK: ${mqttBytes.subarray(0, 4).toString('hex')}`))
      done(null, mqttBytes[3])
    })
  })
}

/**
 * (c) `concurrency` loops of: WebSocket open, CONNECT with a new client id and clean session 0 (a session the broker
 * keeps after the client goes), CONNACK, DISCONNECT, close; until `sessions` connects or `maxMs`. Raw sockets
 * (sessionCycle), so that the generator is not what limits the rate.
 */
async function sessions(job: Extract<AttackJob, { scenario: 'attack-sessions' }>, notify: Notify): Promise<Result> {
  const url = new URL(job.url)
  const upgrade = Buffer.from([
    `GET ${url.pathname} HTTP/1.1`, `Host: ${url.host}`, 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: mqtt', '', '',
  ].join('\r\n'), 'latin1')
  let created = 0
  let started = 0
  let refused = 0
  let errors = 0
  const errorKinds = new Map<string, number>()
  const refusals = new Map<number, number>()
  notify('attack-start')
  const t0 = performance.now()
  const going = () => !stopRequested && started < job.sessions && performance.now() - t0 < job.maxMs
  async function loop() {
    while (going()) {
      const id = `atk-sess-${tag}-${started++}`
      try {
        const code = await sessionCycle(url, upgrade, connectFrame(id, 60, false), 5000)
        if (code === 0) created++
        else { refused++; refusals.set(code, (refusals.get(code) ?? 0) + 1) }
      } catch (err) {
        errors++
        const k = (err as Error).message.slice(0, 40)
        errorKinds.set(k, (errorKinds.get(k) ?? 0) + 1)
        await sleep(5)
      }
    }
  }
  await Promise.all(Array.from({ length: job.concurrency }, loop))
  const seconds = (performance.now() - t0) / 1000
  await hold(job.tailMs)
  notify('attack-end')
  return {
    value: created,
    unit: 'sessions',
    details: {
      sessionsCreated: created, attempted: started, refused, errors, seconds: round(seconds, 2),
      perSecond: Math.round(created / seconds), target: job.sessions,
      refusals: [...refusals].map(([code, n]) => `CONNACK ${code} x${n}`).join(', ') || 'none',
      errorKinds: [...errorKinds].map(([k, n]) => `${k} x${n}`).join(', ') || 'none',
    },
  }
}

/**
 * (d) `sockets` WebSockets, each sending, in one frame, the first `prefixBytes` of a CONNECT that declares more (a
 * Will of 65000 bytes and a password of 65000 bytes: about 130 KB, under every broker's packet size limit), then
 * nothing, for `holdMs` from the first socket on. Counts the sockets the broker closed meanwhile.
 */
async function slowConnects(job: Extract<AttackJob, { scenario: 'attack-slowconnect' }>, notify: Notify): Promise<Result> {
  const connect = mqtt.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `atk-slow-${tag}`, keepalive: 60, clean: true,
    will: { topic: 'attack/will', payload: Buffer.alloc(65000, 0x77), qos: 0, retain: false },
    username: 'attacker', password: Buffer.alloc(65000, 0x70),
  } as Packet, { protocolVersion: 4 })
  const prefix = connect.subarray(0, Math.min(job.prefixBytes, connect.length - 1))
  const frame = wsFrame(prefix)
  const sockets: BenchClient[] = []
  let closedByBroker = 0
  let refused = 0
  const lifetimes: number[] = []
  let maxOpen = 0
  let open = 0
  let ending = false // from then on, a close is this side's
  notify('attack-start')
  const t0 = performance.now()
  const openOne = async () => {
    if (stopRequested || performance.now() - t0 > job.holdMs) return
    let c: BenchClient
    try {
      c = await BenchClient.open(job.url, { timeoutMs: 5000 })
    } catch {
      refused++
      return
    }
    sockets.push(c)
    const opened = performance.now()
    open++
    maxOpen = Math.max(maxOpen, open)
    c.ws.once('close', () => {
      open--
      if (!ending) { closedByBroker++; lifetimes.push(performance.now() - opened) }
    })
    c.write(frame)
  }
  await pool(Array.from({ length: job.sockets }, (_, i) => i), job.concurrency, openOne)
  const openedInMs = performance.now() - t0
  await hold(job.holdMs - (performance.now() - t0))
  const openAtEnd = open
  notify('attack-end')
  ending = true
  for (const c of sockets) c.destroy()
  lifetimes.sort((a, b) => a - b)
  return {
    value: maxOpen,
    unit: 'sockets held at most',
    details: {
      socketsOpened: sockets.length, refusedOrFailed: refused, openedInMs: Math.round(openedInMs),
      prefixBytes: prefix.length, declaredConnectBytes: connect.length, heldMiB: round((sockets.length * prefix.length) / 1048576),
      maxOpen, openAtEnd, closedByBroker,
      medianLifetimeMs: lifetimes.length ? Math.round(lifetimes[Math.floor(lifetimes.length / 2)]) : 'none closed',
    },
  }
}

/**
 * The probe: one client subscribed (QoS 1) to its own topic publishes to it (QoS 1) every `intervalMs` and times
 * each round trip through the broker; every `connectEveryMs` a fresh connection times its CONNECT -> CONNACK. An
 * answer later than `timeoutMs` counts as none. Runs until the bench says stop (or `maxMs`); reports every sample
 * with its wall-clock time, so that the bench can pick those taken during the attack.
 */
async function probe(job: ProbeJob, notify: Notify): Promise<Result> {
  const topic = `probe/${tag}`
  const c = await BenchClient.connect(job.url, `probe-${tag}`, { keepalive: 30 })
  await c.subscribe(topic, 1)
  const rtt: Array<[at: number, ms: number | null]> = []
  const connects: Array<[at: number, ms: number | null]> = []
  const pending = new Map<number, { at: number, t: number, timer: NodeJS.Timeout }>()
  let probeClosedAt: number | null = null
  c.onClose = () => { probeClosedAt = Date.now() }
  c.onPacket = (p) => {
    if (p.cmd !== 'publish') return
    if (p.qos === 1) c.write(pubackFrame(p.messageId!))
    const seq = (p.payload as Buffer).readUInt32BE(0)
    const hit = pending.get(seq)
    if (!hit) return
    clearTimeout(hit.timer)
    pending.delete(seq)
    rtt.push([hit.at, round(performance.now() - hit.t, 2)])
  }
  let seq = 0
  const tick = setInterval(() => {
    if (c.closed) return
    const s = ++seq
    const body = Buffer.alloc(16)
    body.writeUInt32BE(s, 0)
    const at = Date.now()
    const timer = setTimeout(() => { pending.delete(s); rtt.push([at, null]) }, job.timeoutMs)
    pending.set(s, { at, t: performance.now(), timer })
    c.write(publish(topic, body, 1, (s % 65535) + 1))
  }, job.intervalMs)
  let n = 0
  const live = new Set<Promise<void>>()
  const connectTick = setInterval(() => {
    const at = Date.now()
    const t = performance.now()
    const p: Promise<void> = BenchClient.connect(job.url, `probe-c-${tag}-${n++}`, { timeoutMs: job.timeoutMs }).then(
      async (k) => { connects.push([at, round(performance.now() - t, 2)]); await k.end(1000) },
      () => { connects.push([at, null]) },
    ).finally(() => live.delete(p))
    live.add(p)
  }, job.connectEveryMs)
  notify('ready')
  await hold(job.maxMs)
  clearInterval(tick)
  clearInterval(connectTick)
  await Promise.all(live)
  for (const [, p] of pending) clearTimeout(p.timer)
  await c.end(1000)
  return {
    value: rtt.length,
    unit: 'probes',
    details: { rtt: JSON.stringify(rtt), connects: JSON.stringify(connects), probeClosedAt: probeClosedAt ?? 'never' },
  }
}
