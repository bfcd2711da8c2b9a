// Test clusters on the machine's NATS (127.0.0.1:4222, JetStream on): each test run names its own cluster, so its
// subjects, buckets and streams never meet another run's, and deletes what it made at the end.
import { randomBytes } from 'node:crypto'
import { connect } from '@nats-io/transport-node'
import { destroyBuckets } from '../../src/cluster/buckets.ts'
import { startServer, type TestServer } from '../helpers.ts'
import type { BootConfig } from '../../src/config.ts'
import type { SettingsValues } from '../../src/settings/schema.ts'

export const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222'

/** A cluster name no other run uses. */
export const clusterName = (): string => `t${randomBytes(5).toString('hex')}`

/** Delete every JetStream stream of a test cluster (its KV buckets are streams named KV_<cluster>_...). */
export async function dropCluster(name: string, url = NATS_URL): Promise<void> {
  const nc = await connect({ servers: url.split(',') })
  try {
    await destroyBuckets(nc, name)
  } finally {
    await nc.close()
  }
}

export interface TestCluster {
  name: string
  nodes: TestServer[]
  close(): Promise<void>
}

/**
 * `count` nodes of one new cluster in this process, each with its own SQLite replica in memory. `keepStreams`: close()
 * leaves the cluster's streams in place (a test that runs a NATS of its own and removes it whole).
 */
export async function startCluster(count: number, opts: { config?: Partial<BootConfig>; settings?: Partial<SettingsValues>; keepStreams?: boolean } = {}): Promise<TestCluster> {
  const name = clusterName()
  const nodes: TestServer[] = []
  try {
    for (let i = 0; i < count; i++) {
      nodes.push(await startServer({ settings: opts.settings, config: { natsUrl: NATS_URL, clusterName: name, nodeId: `node-${'abcdefgh'[i]}`, ...opts.config } }))
    }
  } catch (err) {
    await Promise.allSettled(nodes.map((n) => n.close()))
    await dropCluster(name, opts.config?.natsUrl ?? NATS_URL)
    throw err
  }
  return {
    name,
    nodes,
    async close() {
      await Promise.allSettled(nodes.map((n) => n.close()))
      if (!opts.keepStreams) await dropCluster(name, opts.config?.natsUrl ?? NATS_URL)
    },
  }
}
