// Shared test helpers: a real app on a free port, a raw byte-level MQTT client, a real MQTT.js client,
// and waiting for broker events. Every test file uses these instead of writing its own.
import type { AddressInfo } from 'node:net'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { after } from 'node:test'
import { EventEmitter, once } from 'node:events'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import mqttPacket, { type Packet } from 'mqtt-packet'
import mqtt, { type IClientOptions, type ISubscriptionMap, type MqttClient } from 'mqtt'
import { buildApp, type App } from '../src/app.ts'
import type { BootConfig } from '../src/config.ts'
import type { SettingsValues } from '../src/settings/schema.ts'
import type { FailureEvent } from '../src/contracts/failure.ts'
import type { BrokerEvents } from '../src/mqtt/types.ts'

export const TEST_TOKEN = 'test-admin-token-0123456789abcdef'

export interface TestServer {
  app: App
  port: number
  /** http://127.0.0.1:PORT */
  url: string
  /** ws://127.0.0.1:PORT/mqtt */
  wsUrl: string
  token: string
  /** headers for /api/* */
  auth: { authorization: string }
  close(): Promise<void>
}

/** Builds the real app (`:memory:` database unless config.dbPath says otherwise), applies settings, listens on a free port. */
export async function startServer(
  opts: { settings?: Partial<SettingsValues>; config?: Partial<BootConfig>; logger?: boolean | object } = {},
): Promise<TestServer> {
  const app = await buildApp({
    // no rate limits unless a test asks (tests send hundreds of requests, refused ones too, from one address)
    config: {
      port: 0, host: '127.0.0.1', dbPath: ':memory:', adminToken: TEST_TOKEN, logLevel: 'silent',
      rateLimitApiPerMin: 0, rateLimitAuthFailuresPerMin: 0, ...opts.config,
    },
    logger: opts.logger ?? false,
  })
  if (opts.settings && Object.keys(opts.settings).length > 0) {
    app.settingsStore.update(opts.settings, { actor: 'test', comment: 'test setup' })
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  let closed = false
  return {
    app,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}${app.config.mqttPath}`,
    token: TEST_TOKEN,
    auth: { authorization: `Bearer ${TEST_TOKEN}` },
    async close() {
      if (closed) return
      closed = true
      await app.close()
    },
  }
}

/**
 * Starts `src/server.ts` (the real entry point, `npm start`) as a child process on a free port of 127.0.0.1;
 * resolves once it logs the port it listens on. `output` holds what it printed (stdout lines and stderr).
 */
export async function startServerProcess(env: Record<string, string>): Promise<{ child: ChildProcess; port: number; output: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: join(import.meta.dirname, '..'),
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  child.stderr!.setEncoding('utf8').on('data', (d: string) => output.push(d))
  const lines = createInterface({ input: child.stdout! })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${output.join('')}`)), 20000)
    lines.on('line', (line) => {
      output.push(line)
      const m = /"port":(\d+)/.exec(line)
      if (m && /listening/.test(line)) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${code}: ${output.join('\n')}`))
    })
  })
  return { child, port, output }
}

/** A temporary folder removed by the returned cleanup. */
export function tempDir(prefix = 'broker-test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Resolves with the first event `name` on `emitter` whose payload passes `match`, or rejects after `timeoutMs`. */
export function waitForEvent<T>(
  emitter: EventEmitter,
  name: string,
  match: (value: T) => boolean = () => true,
  timeoutMs = 3000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(name, listener)
      reject(new Error(`no matching '${name}' event within ${timeoutMs} ms`))
    }, timeoutMs)
    const listener = (value: T) => {
      if (!match(value)) return
      clearTimeout(timer)
      emitter.off(name, listener)
      resolve(value)
    }
    emitter.on(name, listener)
  })
}

/** Waits for the broker's next failure event passing `match`. */
/**
 * ms of the broker's own stalls given back to a client's deadline, read from a timeout record's detail. A stall of a
 * test process (it also runs the server: GC, another server starting on a loaded machine) is a stall of the broker,
 * and deadlines move by it, as they should: timing checks look at the client's share of the wait.
 */
export const stallGivenMs = (e: FailureEvent): number =>
  Number(/; (\d+) ms the broker itself was stalled were not counted/.exec(e.detail)?.[1] ?? 0)

/**
 * The client's share of a keepalive timeout, as the broker measured it: the silence its record's detail names ("nothing
 * received for N ms") less the broker's own stalls given back. Measured at the broker, so a slow CONNACK round trip
 * on a loaded machine does not shift it.
 */
export const keepaliveSilenceMs = (e: FailureEvent): number =>
  Number(/nothing received for (\d+) ms/.exec(e.detail)?.[1] ?? NaN) - stallGivenMs(e)

export const waitForFailure = (server: TestServer, match: (e: FailureEvent) => boolean = () => true, timeoutMs = 6000) =>
  waitForBrokerEvent(server, 'failure', match, timeoutMs)

/** Waits for the broker's next `name` event passing `match` (typed by the broker's event map). */
export function waitForBrokerEvent<K extends keyof BrokerEvents>(
  server: TestServer,
  name: K,
  match: (value: BrokerEvents[K][0]) => boolean = () => true,
  timeoutMs = 3000,
): Promise<BrokerEvents[K][0]> {
  return waitForEvent<BrokerEvents[K][0]>(server.app.broker as unknown as EventEmitter, name, match, timeoutMs)
}

/**
 * A byte-level MQTT client: a real WebSocket (subprotocol `mqtt` unless told otherwise) whose incoming bytes go
 * through one mqtt-packet parser. For split frames, slow CONNECTs and malformed packets.
 */
export class RawClient {
  readonly ws: WebSocket
  readonly packets: Packet[] = []
  closeCode: number | null = null
  private readonly events = new EventEmitter()
  private readonly parser: ReturnType<typeof mqttPacket.parser>

  private constructor(ws: WebSocket, protocolVersion: number) {
    this.ws = ws
    this.parser = mqttPacket.parser({ protocolVersion })
    this.parser.on('packet', (p: Packet) => {
      this.packets.push(p)
      this.events.emit('packet', p)
    })
    this.parser.on('error', (err: Error) => this.events.emit('parse-error', err))
    ws.on('message', (data: Buffer) => this.parser.parse(data))
    ws.on('close', (code: number) => {
      this.closeCode = code
      this.events.emit('close', code)
    })
    ws.on('error', () => {})
  }

  static async open(
    url: string,
    opts: { protocols?: string | string[]; protocolVersion?: number; headers?: Record<string, string> } = {},
  ): Promise<RawClient> {
    const ws = new WebSocket(url, opts.protocols ?? 'mqtt', { headers: opts.headers })
    const client = new RawClient(ws, opts.protocolVersion ?? 4)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)))
    })
    return client
  }

  /** Encodes a packet with mqtt-packet. */
  static encode(packet: Partial<Packet> & { cmd: Packet['cmd'] }, protocolVersion = 4): Buffer {
    return mqttPacket.generate(packet as Packet, { protocolVersion })
  }

  send(packet: Partial<Packet> & { cmd: Packet['cmd'] }, protocolVersion = 4): void {
    this.ws.send(RawClient.encode(packet, protocolVersion), { binary: true })
  }

  sendBytes(bytes: Buffer | Uint8Array, binary = true): void {
    this.ws.send(bytes, { binary })
  }

  /** The next packet (optionally of one type) not yet taken, waiting up to timeoutMs. */
  nextPacket(cmd?: Packet['cmd'], timeoutMs = 3000): Promise<Packet> {
    const idx = this.packets.findIndex((p) => cmd === undefined || p.cmd === cmd)
    if (idx >= 0) return Promise.resolve(this.packets.splice(idx, 1)[0])
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off('packet', onPacket)
        reject(new Error(`no ${cmd ?? 'packet'} within ${timeoutMs} ms`))
      }, timeoutMs)
      const onPacket = (p: Packet) => {
        if (cmd !== undefined && p.cmd !== cmd) return
        clearTimeout(timer)
        this.events.off('packet', onPacket)
        this.packets.splice(this.packets.indexOf(p), 1)
        resolve(p)
      }
      this.events.on('packet', onPacket)
    })
  }

  /** Resolves with the close code when the server closes the socket, rejects after timeoutMs. */
  closed(timeoutMs = 3000): Promise<number> {
    if (this.closeCode !== null || this.ws.readyState === WebSocket.CLOSED) return Promise.resolve(this.closeCode ?? 1006)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs)
      this.events.once('close', (code: number) => {
        clearTimeout(timer)
        resolve(code)
      })
    })
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN
  }

  /** CONNECT and wait for CONNACK. */
  async connect(fields: Record<string, unknown> = {}, protocolVersion = 4): Promise<Packet> {
    this.send(
      { cmd: 'connect', protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT', protocolVersion, clean: true, keepalive: 0, clientId: '', ...fields } as Packet,
      protocolVersion,
    )
    return this.nextPacket('connack')
  }

  close(): void {
    this.ws.terminate()
  }
}

/**
 * A real MQTT.js client over the WebSocket, resolved once connected (rejects on error or timeout).
 * `onClient` runs before any packet arrives (e.g. to attach a MessageLog that must see messages sent right after CONNACK).
 */
export async function connectMqtt(
  wsUrl: string,
  opts: IClientOptions = {},
  timeoutMs = 3000,
  onClient?: (client: MqttClient) => void,
): Promise<MqttClient> {
  const client = mqtt.connect(wsUrl, { reconnectPeriod: 0, connectTimeout: timeoutMs, protocolVersion: 4, ...opts })
  onClient?.(client)
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      once(client as unknown as EventEmitter, 'connect'),
      once(client as unknown as EventEmitter, 'error').then(([err]) => Promise.reject(err)),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('MQTT.js connect timed out')), timeoutMs) }),
    ])
  } catch (err) {
    client.end(true)
    throw err
  } finally {
    clearTimeout(timer)
  }
  return client
}

/** One message an MQTT.js client received. */
export interface ReceivedMessage {
  topic: string
  payload: Buffer
  packet: import('mqtt-packet').IPublishPacket
}

/** Records every message an MQTT.js client receives; `waitFor` resolves on the first (past or future) match. */
export class MessageLog {
  readonly messages: ReceivedMessage[] = []
  private readonly events = new EventEmitter()

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const m = { topic, payload, packet }
      this.messages.push(m)
      this.events.emit('message', m)
    })
  }

  /** Messages on `topic` so far. */
  on(topic: string): ReceivedMessage[] {
    return this.messages.filter((m) => m.topic === topic)
  }

  waitFor(match: (m: ReceivedMessage) => boolean, timeoutMs = 3000): Promise<ReceivedMessage> {
    const seen = this.messages.find(match)
    if (seen) return Promise.resolve(seen)
    return waitForEvent<ReceivedMessage>(this.events, 'message', match, timeoutMs)
  }

  /** Resolves with the messages on `topic` once there are `count` of them. */
  async waitForCount(topic: string, count: number, timeoutMs = 3000): Promise<ReceivedMessage[]> {
    if (this.on(topic).length < count) {
      await waitForEvent<ReceivedMessage>(this.events, 'message', () => this.on(topic).length >= count, timeoutMs)
    }
    return this.on(topic)
  }
}

/** MQTT.js options selecting a protocol version: 3 = MQTT 3.1 (protocol name MQIsdp), 4 = 3.1.1, 5 = 5.0. */
export function protocolOptions(protocolVersion: 3 | 4 | 5): IClientOptions {
  return protocolVersion === 3 ? { protocolVersion: 3, protocolId: 'MQIsdp' } : { protocolVersion }
}

let uniqueSeq = 0
/** A name unique within the process, short enough for an MQTT 3.1 client id (23 characters). */
export const uniqueId = (prefix: string) => `${prefix}${++uniqueSeq}`

/**
 * Publishes a QoS 1 marker on `topic` (to which `log`'s client is subscribed) and waits for it: whatever `pub`
 * published before has been routed by then, so "not delivered" can be asserted without sleeping.
 */
export async function barrier(pub: MqttClient, log: MessageLog, topic: string, timeoutMs = 3000): Promise<void> {
  const marker = uniqueId('marker-')
  await pub.publishAsync(topic, marker, { qos: 1 })
  await log.waitFor((m) => m.topic === topic && m.payload.toString() === marker, timeoutMs)
}

/** A started server plus factories for clients that are closed when the test ends. */
export interface BrokerKit {
  server: TestServer
  mqtt(opts?: IClientOptions, timeoutMs?: number, onClient?: (client: MqttClient) => void): Promise<MqttClient>
  raw(opts?: Parameters<typeof RawClient.open>[1]): Promise<RawClient>
  /**
   * A subscriber to `filters` (plus a private barrier topic) and a publisher, both MQTT.js with `clientOpts`;
   * `sync()` returns once everything the publisher sent before it has been routed.
   */
  watch(
    filters: ISubscriptionMap,
    clientOpts?: IClientOptions,
  ): Promise<{ sub: MqttClient; log: MessageLog; pub: MqttClient; sync(): Promise<void> }>
}

type TestContextLike = { after(fn: () => unknown): void }

/** A kit on `server` whose clients are closed by the returned function. */
function kitOn(server: TestServer): { kit: BrokerKit; closeClients(): void } {
  const clients: MqttClient[] = []
  const raws: RawClient[] = []
  const kit: BrokerKit = {
    server,
    async mqtt(o = {}, timeoutMs, onClient) {
      const c = await connectMqtt(server.wsUrl, o, timeoutMs, onClient)
      // a later error (e.g. the server closing it on purpose) must not crash the run; tests assert what they expect
      c.on('error', () => {})
      clients.push(c)
      return c
    },
    async raw(o = {}) {
      const r = await RawClient.open(server.wsUrl, o)
      raws.push(r)
      return r
    },
    async watch(filters, clientOpts = {}) {
      let log!: MessageLog
      const sub = await kit.mqtt(clientOpts, undefined, (c) => (log = new MessageLog(c)))
      const bar = uniqueId('barrier/')
      await sub.subscribeAsync({ ...filters, [bar]: { qos: 1 } })
      const pub = await kit.mqtt(clientOpts)
      return { sub, log, pub, sync: () => barrier(pub, log, bar) }
    },
  }
  return {
    kit,
    closeClients() {
      for (const c of clients) c.end(true)
      for (const r of raws) r.close()
    },
  }
}

/** A server of its own for one test (for tests that change settings); clients, then the server, closed in `t.after`. */
export async function brokerKit(t: TestContextLike, opts: Parameters<typeof startServer>[0] = {}): Promise<BrokerKit> {
  const server = await startServer(opts)
  const { kit, closeClients } = kitOn(server)
  t.after(async () => {
    closeClients()
    await server.close()
  })
  return kit
}

/**
 * One server for a whole test file, started on first use and closed after the file; each test's clients are closed
 * in its `t.after`. Call at the top level of the file. Tests sharing it use unique client ids and topics (uniqueId).
 */
export function sharedBrokerKit(opts: Parameters<typeof startServer>[0] = {}): (t: TestContextLike) => Promise<BrokerKit> {
  let server: Promise<TestServer> | undefined
  after(async () => {
    if (server) await (await server).close()
  })
  return async (t) => {
    const { kit, closeClients } = kitOn(await (server ??= startServer(opts)))
    t.after(closeClients)
    return kit
  }
}

/** An admin API call over HTTP with the server's token: the status and the parsed JSON body (null when empty). */
export async function apiCall(server: TestServer, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...server.auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, json: text ? JSON.parse(text) : null }
}

/** Resolves after ms. For pacing split frames, not for waiting on results (use events). */
export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Resolves once `cond()` holds (checked every 10 ms); rejects naming `what` after timeoutMs. */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not met within ${timeoutMs} ms: ${what}`)
    await delay(10)
  }
}

export const CHROMIUM_PATH = '/usr/bin/chromium'
export const hasChromium = () => existsSync(CHROMIUM_PATH)

/** The protocol versions a feature test runs in, one line each. */
export type ProtocolVersion = 3 | 4 | 5
export const PROTOCOL_VERSIONS: readonly { name: string; pv: ProtocolVersion }[] = [
  { name: 'MQTT 3.1', pv: 3 },
  { name: 'MQTT 3.1.1', pv: 4 },
  { name: 'MQTT 5.0', pv: 5 },
]
