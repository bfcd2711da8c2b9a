// Graceful shutdown: SIGTERM to the real server process tells MQTT 5 clients (DISCONNECT 0x8B), closes the rest,
// closes sockets still sending their upgrade, and exits 0. A shutdown is not a failure.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { IDisconnectPacket, MqttClient } from 'mqtt'
import type { FailureEvent } from '../src/contracts/failure.ts'
import { startServer, connectMqtt, tempDir, RawClient } from './helpers.ts'
import { tcpConnect, closedAfter } from './raw-websocket.ts'

const ROOT = join(import.meta.dirname, '..')

/** The next `name` event of an MQTT.js client (its typed emitter does not fit `events.once`). */
const next = <T extends unknown[]>(client: MqttClient, name: 'disconnect' | 'close'): Promise<T> =>
  new Promise((resolve) => client.once(name, (...args: unknown[]) => resolve(args as T)))

/** Starts `src/server.ts` as a child process on a free port; resolves once it logs the port it listens on. */
async function startChild(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  child.stderr.setEncoding('utf8').on('data', (d: string) => output.push(d))
  const lines = createInterface({ input: child.stdout })
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

test('SIGTERM: v5 clients get DISCONNECT 0x8B, all clients are closed, the process exits 0', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const { child, port, output } = await startChild({ DB_PATH: join(tmp.dir, 'broker.db'), ADMIN_TOKEN: 'shutdown-test-token-0123456789' })
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const wsUrl = `ws://127.0.0.1:${port}/mqtt`

  const v5 = await connectMqtt(wsUrl, { protocolVersion: 5, clientId: 'shutdown-v5' })
  const v3 = await connectMqtt(wsUrl, { protocolVersion: 4, clientId: 'shutdown-v3' })
  t.after(() => {
    v5.end(true)
    v3.end(true)
  })
  const disconnect = next<[IDisconnectPacket]>(v5, 'disconnect')
  const v5Closed = next(v5, 'close')
  const v3Closed = next(v3, 'close')
  // and a socket still sending its upgrade request, which must not hold the shutdown up
  const stalled = await tcpConnect(port)
  t.after(() => stalled.destroy())
  stalled.write('GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  const stalledClosed = closedAfter(stalled, Date.now(), 9000)

  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  child.kill('SIGTERM')

  const [packet] = await disconnect
  assert.equal(packet.reasonCode, 0x8b, 'Server shutting down')
  await Promise.all([v5Closed, v3Closed, stalledClosed])
  const [code, signal] = await exited
  assert.equal(signal, null)
  assert.equal(code, 0, output.join('\n'))
})

test('app.close(): clients are closed without a single failure record, stalled upgrades too', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const failures: FailureEvent[] = []
  server.app.broker.on('failure', (e) => failures.push(e))

  const v5 = await connectMqtt(server.wsUrl, { protocolVersion: 5, clientId: 'close-v5' })
  const v3 = await connectMqtt(server.wsUrl, { protocolVersion: 4, clientId: 'close-v3' })
  t.after(() => {
    v5.end(true)
    v3.end(true)
  })
  // a WebSocket that has not sent its CONNECT yet, and a socket in the middle of its upgrade request
  const waiting = await RawClient.open(server.wsUrl)
  t.after(() => waiting.close())
  const stalled = await tcpConnect(server.port)
  t.after(() => stalled.destroy())
  stalled.write('GET /mqtt HTTP/1.1\r\n')

  const disconnect = next<[IDisconnectPacket]>(v5, 'disconnect')
  const closedAll = Promise.all([next(v5, 'close'), next(v3, 'close'), waiting.closed(), closedAfter(stalled, Date.now())])
  await server.close()
  assert.equal((await disconnect)[0].reasonCode, 0x8b)
  await closedAll
  assert.deepEqual(failures, [], 'a shutdown is not a failure')
})
