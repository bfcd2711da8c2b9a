// One broker process after another on the same SQLite file, for the restart and crash tests.
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import type { IConnackPacket } from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { connectMqtt, startServerProcess, tempDir, TEST_TOKEN } from '../helpers.ts'

/** One broker process after another on the same database file. */
export class BrokerProcess {
  child: ChildProcess | null = null
  port = 0
  constructor(readonly dbPath: string) {}

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/mqtt`
  }

  /** how long the last start took, ms */
  startMs = 0

  async start(env: Record<string, string> = {}): Promise<void> {
    const t0 = Date.now()
    const started = await startServerProcess({ DB_PATH: this.dbPath, ADMIN_TOKEN: TEST_TOKEN, ...env })
    this.child = started.child
    this.port = started.port
    this.startMs = Date.now() - t0
  }

  /** SIGTERM: the graceful stop. */
  async stop(): Promise<void> {
    const child = this.child!
    this.child = null
    if (child.exitCode !== null) return
    const exited = new Promise((r) => child.once('exit', r))
    child.kill('SIGTERM')
    await exited
  }

  /** kill -9: nothing runs after it. Returns the time it was sent. */
  async crash(): Promise<number> {
    const child = this.child!
    this.child = null
    const exited = new Promise((r) => child.once('exit', r))
    const at = Date.now()
    child.kill('SIGKILL')
    await exited
    return at
  }

  kill(): void {
    this.child?.kill('SIGKILL')
  }
}

export function setup(t: { after(fn: () => void | Promise<void>): void }): BrokerProcess {
  const tmp = tempDir('restart-')
  const broker = new BrokerProcess(join(tmp.dir, 'broker.db'))
  t.after(() => {
    broker.kill()
    tmp.cleanup()
  })
  return broker
}

/** An MQTT.js client that records every message from its first packet on. */
export async function recorder(url: string, opts: Parameters<typeof connectMqtt>[1]) {
  const got: { topic: string; payload: string; retain: boolean; qos: number }[] = []
  let connack: IConnackPacket | null = null
  const client = await connectMqtt(url, opts, 5000, (c) => {
    c.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos }))
    c.on('connect', (p) => { connack = p })
  })
  return { client, got, connack: () => connack! }
}

export const end = (c: MqttClient) => new Promise<void>((r) => c.end(false, {}, () => r()))

