// Client-id ownership (src/cluster/ownership.ts) as two nodes see it, on one owners bucket of the machine's NATS (a
// name per test, deleted after it): the old owner is always asked to release, whatever its heartbeat looks like; a
// gone owner is answered for by NATS at once; a node that missed the request gives the client id up when it checks
// its keys (verify), writing nothing.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '@nats-io/transport-node'
import { Kvm } from '@nats-io/kv'
import { destroyBuckets } from '../../src/cluster/buckets.ts'
import { Ownership, RELEASE_TIMEOUT_MS } from '../../src/cluster/ownership.ts'
import type { ClusterPeer } from '../../src/contracts/cluster.ts'
import { clusterName, NATS_URL } from './cluster.ts'

/** A peer that records the releases asked of it. */
function recordingPeer() {
  const released: { clientId: string; by: string; write: boolean }[] = []
  const peer: ClusterPeer = {
    routeRemote() {},
    routeShared() {},
    adoptSessions: () => ({ sessions: 0, wills: 0 }),
    redeliver() {},
    async releaseSession(clientId, by, opts) {
      released.push({ clientId, by, write: opts?.write ?? true })
    },
  }
  return { peer, released }
}

/** Two nodes' ownership on one new owners bucket, each on its own NATS connection. */
async function twoNodes(t: TestContext) {
  const name = clusterName()
  const [nc1, nc2] = await Promise.all([connect({ servers: NATS_URL }), connect({ servers: NATS_URL })])
  t.after(async () => {
    await destroyBuckets(nc1, name)
    await Promise.all([nc1.close(), nc2.close()])
  })
  const kv1 = await new Kvm(nc1).create(`${name}_owners`, { history: 1 })
  const kv2 = await new Kvm(nc2).open(`${name}_owners`)
  const one = new Ownership(nc1, kv1, { nodeId: 'node-1', boot: 'b1', clusterName: name })
  const two = new Ownership(nc2, kv2, { nodeId: 'node-2', boot: 'b2', clusterName: name })
  return { one, two, nc1 }
}

test('a claim asks the living owner to release, and counts a take-over; the session is read again for what it missed', async (t) => {
  const { one, two } = await twoNodes(t)
  const rec = recordingPeer()
  one.attach(rec.peer)
  await one.claim('dev-1')
  one.check('dev-1')
  await two.claim('dev-1')
  assert.deepEqual(rec.released, [{ clientId: 'dev-1', by: 'node-2', write: true }])
  assert.equal(two.takeovers, 1)
  assert.equal(two.takeMoved('dev-1'), true)
  assert.equal(await two.ownerOf('dev-1'), 'node-2')
  assert.equal(one.held, 0)
})

test('an owner that is gone (no subscriber) does not hold a claim up: NATS answers for it at once', async (t) => {
  const { one, two } = await twoNodes(t)
  // node 1 never listens for releases: as a node that died
  await one.claim('dev-2')
  const t0 = Date.now()
  await two.claim('dev-2')
  const took = Date.now() - t0
  assert.ok(took < RELEASE_TIMEOUT_MS / 2, `the claim took ${took} ms`)
  assert.equal(two.takeovers, 0)
  // (what was published after the dead owner's last write is read again for the session)
  assert.equal(two.takeMoved('dev-2'), true)
  assert.equal(await two.ownerOf('dev-2'), 'node-2')
})

test('a node that missed the release request gives the client id up when it checks its keys, writing nothing', async (t) => {
  const { one, two } = await twoNodes(t)
  await one.claim('dev-3')
  one.check('dev-3')
  await one.claim('dev-4')
  one.check('dev-4')
  // node 2 takes dev-3 while node 1 cannot hear it (not listening yet: as while its NATS connection was down)
  await two.claim('dev-3')
  const rec = recordingPeer()
  one.attach(rec.peer)
  assert.equal(await one.verify(), 1)
  assert.deepEqual(rec.released, [{ clientId: 'dev-3', by: 'node-2', write: false }])
  assert.equal(one.held, 1)
  assert.equal(one.lostFound, 1)
  // what it still owns stays; a second check finds nothing more
  assert.equal(await one.ownerOf('dev-4'), 'node-1')
  assert.equal(await one.verify(), 0)
  assert.equal(await two.ownerOf('dev-3'), 'node-2')
})

test('a client id whose owner key another node took and then let go is given up too; session writes wait from a lost NATS connection until the check has run', async (t) => {
  const { one, two } = await twoNodes(t)
  await one.claim('dev-5')
  one.check('dev-5')
  // node 1 cannot hear: node 2 takes dev-5, its client leaves with a clean session, the owner key is deleted
  one.suspend()
  await two.claim('dev-5')
  two.check('dev-5')
  await two.drop('dev-5')
  assert.equal(await one.ownerOf('dev-5'), null)
  let settled = false
  void one.settled().then(() => { settled = true })
  await new Promise((r) => setTimeout(r, 100))
  assert.equal(settled, false, 'writes wait while the check has not run')
  const rec = recordingPeer()
  one.attach(rec.peer)
  assert.equal(await one.verify(), 1)
  assert.deepEqual(rec.released, [{ clientId: 'dev-5', by: 'another node', write: false }])
  await new Promise((r) => setImmediate(r))
  assert.equal(settled, true)
  assert.equal(one.held, 0)
})
