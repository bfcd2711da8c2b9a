// Shared test helpers: a real app on a free port, a raw byte-level MQTT client, a real MQTT.js client,
// and waiting for broker events. Every test file uses these instead of writing its own.
import type { AddressInfo } from 'node:net'
import { EventEmitter, once } from 'node:events'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import mqttPacket, { type Packet } from 'mqtt-packet'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { buildApp, type App } from '../src/app.ts'
import type { BootConfig } from '../src/config.ts'
import type { SettingsValues } from '../src/settings/schema.ts'
import type { FailureEvent } from '../src/failures/schema.ts'

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
    config: { port: 0, host: '127.0.0.1', dbPath: ':memory:', adminToken: TEST_TOKEN, logLevel: 'silent', ...opts.config },
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
export function waitForFailure(
  server: TestServer,
  match: (e: FailureEvent) => boolean = () => true,
  timeoutMs = 3000,
): Promise<FailureEvent> {
  return waitForEvent<FailureEvent>(server.app.broker as unknown as EventEmitter, 'failure', match, timeoutMs)
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

/** A real MQTT.js client over the WebSocket, resolved once connected (rejects on error or timeout). */
export async function connectMqtt(wsUrl: string, opts: IClientOptions = {}, timeoutMs = 3000): Promise<MqttClient> {
  const client = mqtt.connect(wsUrl, { reconnectPeriod: 0, connectTimeout: timeoutMs, protocolVersion: 4, ...opts })
  try {
    await Promise.race([
      once(client, 'connect'),
      once(client, 'error').then(([err]) => Promise.reject(err)),
      new Promise((_, reject) => setTimeout(() => reject(new Error('MQTT.js connect timed out')), timeoutMs)),
    ])
  } catch (err) {
    client.end(true)
    throw err
  }
  return client
}

/** Resolves after ms. For pacing split frames, not for waiting on results (use events). */
export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const CHROMIUM_PATH = '/usr/bin/chromium'
export const hasChromium = () => existsSync(CHROMIUM_PATH)
