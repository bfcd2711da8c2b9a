// A 3-server NATS cluster with JetStream for one test, on free ports, in its own temporary folder; each server can
// be killed (kill -9) and the rest keep the cluster (JetStream needs 2 of 3 for its meta leader and R3 streams).
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { delay, tempDir } from '../helpers.ts'

export const NATS_SERVER = '/usr/sbin/nats-server'

/** A port nothing listens on (taken and let go). */
export async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  await new Promise((r) => srv.close(r))
  return port
}

export interface NatsCluster {
  /** nats://a,nats://b,nats://c */
  url: string
  ports: number[]
  servers: (ChildProcess | null)[]
  /** kill -9 of server i */
  kill(i: number): Promise<void>
  close(): Promise<void>
}

export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const tmp = tempDir('nats-cluster-')
  const ports = await Promise.all(Array.from({ length: size }, freePort))
  const routePorts = await Promise.all(Array.from({ length: size }, freePort))
  const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(',')
  const output: string[] = []
  const servers: (ChildProcess | null)[] = ports.map((port, i) => {
    const child = spawn(NATS_SERVER, [
      '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(tmp.dir, `s${i}`), '--server_name', `s${i}`,
      '--cluster_name', 'testcluster', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes,
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stderr!.setEncoding('utf8').on('data', (d: string) => output.push(`s${i}: ${d}`))
    return child
  })
  const url = ports.map((p) => `nats://127.0.0.1:${p}`).join(',')
  const cluster: NatsCluster = {
    url, ports, servers,
    async kill(i) {
      const child = servers[i]
      if (child === null || child.exitCode !== null) return
      servers[i] = null
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGKILL')
      await exited
    },
    async close() {
      for (let i = 0; i < servers.length; i++) await cluster.kill(i)
      tmp.cleanup()
    },
  }
  try {
    // JetStream is ready once the servers have elected a meta leader and answer account info
    const nc = await retryConnect(url)
    try {
      const end = Date.now() + 20000
      for (;;) {
        try {
          const jsm = await jetstreamManager(nc, { timeout: 1000 })
          await jsm.getAccountInfo()
          break
        } catch (err) {
          if (Date.now() > end) throw new Error(`the NATS cluster's JetStream is not ready: ${String(err)} ${output.slice(-3).join(' | ')}`)
          await delay(200)
        }
      }
    } finally {
      await nc.close()
    }
  } catch (err) {
    await cluster.close()
    throw err
  }
  return cluster
}

async function retryConnect(url: string) {
  for (let i = 0; ; i++) {
    try {
      return await connect({ servers: url.split(','), timeout: 1000 })
    } catch (err) {
      if (i > 50) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}
