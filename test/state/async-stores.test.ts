// Stores may answer asynchronously (a clustered store reads over the network): the session read at CONNECT and the
// retained read at SUBSCRIBE. The core must keep each connection's packets in order while it waits. Driven through
// the core with stores that answer after a delay, and a transport that records what the broker writes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { Broker } from '../../src/mqtt/broker.ts'
import { MemoryRetainedStore } from '../../src/mqtt/retained.ts'
import { MemorySessionStore } from '../../src/mqtt/session.ts'
import { DEFAULT_SETTINGS } from '../../src/settings/schema.ts'
import { newSession, type Message, type Session } from '../../src/contracts/state.ts'
import type { Transport } from '../../src/contracts/connection.ts'
import { RawClient, until } from '../helpers.ts'

const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Sessions read as a remote store would: resume() answers after 30 ms. */
class SlowSessions extends MemorySessionStore {
  reads = 0
  override resume(clientId: string): Promise<Session | undefined> {
    this.reads++
    return wait(30).then(() => this.get(clientId))
  }
}

/** Retained messages matched after 30 ms. */
class SlowRetained extends MemoryRetainedStore {
  reads = 0
  override match(filter: string, now: number): Promise<Message[]> {
    this.reads++
    return wait(30).then(() => super.match(filter, now))
  }
}

function recordingClient(broker: Broker) {
  const packets: Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  parser.on('packet', (p) => packets.push(p))
  const transport: Transport = { write: (b) => { parser.parse(b); return true }, end() {}, destroy() {}, pause() {}, resume() {} }
  const meta = { transport: 'ws' as const, remoteAddress: '127.0.0.1', remotePort: 1, userAgent: null, origin: null, subprotocol: null, openedAt: Date.now() }
  return { input: broker.handleConnection(transport, meta), packets }
}

const summary = (p: Packet) => p.cmd === 'publish' ? `publish ${p.topic} ${p.payload.toString()}${p.retain ? ' (retained)' : ''}` : p.cmd

test('a CONNECT, SUBSCRIBE and PUBLISH in one frame are handled in order while both stores answer late', async (t) => {
  const sessions = new SlowSessions()
  const retained = new SlowRetained()
  const broker = new Broker({ settings: { version: 1, values: { ...DEFAULT_SETTINGS } }, sessions, retained })
  t.after(() => broker.close())
  retained.set({ topic: 'cfg/old', payload: Buffer.from('stored'), qos: 0, retain: true, properties: null, expiresAt: 0, from: null },
    { maxMessages: 10, maxBytes: 1000 })

  const { input, packets } = recordingClient(broker)
  input.push(Buffer.concat([
    RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: false, keepalive: 0, clientId: 'slow',
      properties: { sessionExpiryInterval: 60 } } as Packet, 5),
    RawClient.encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'cfg/#', qos: 1 }] } as Packet, 5),
    RawClient.encode({ cmd: 'publish', topic: 'cfg/new', payload: Buffer.from('live'), qos: 1, messageId: 2, retain: false, dup: false } as Packet, 5),
  ]))
  await until(() => packets.length >= 5, '5 packets from the broker', 3000)
  assert.equal(sessions.reads, 1)
  assert.equal(retained.reads, 1)
  // without holding the PUBLISH while the retained read waited, "live" would overtake "stored"
  assert.deepEqual(packets.map(summary), ['connack', 'suback', 'publish cfg/old stored (retained)', 'publish cfg/new live', 'puback'])
})

test('a session read that fails refuses the CONNECT with Server busy; the broker goes on', async (t) => {
  class FailingSessions extends MemorySessionStore {
    override resume(): Promise<Session | undefined> {
      return Promise.reject(new Error('store unreachable'))
    }
  }
  const broker = new Broker({ settings: { version: 1, values: { ...DEFAULT_SETTINGS } }, sessions: new FailingSessions() })
  t.after(() => broker.close())
  const failures: string[] = []
  broker.on('failure', (e) => failures.push(`${e.reason}: ${e.detail}`))
  const { input, packets } = recordingClient(broker)
  input.push(RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: 'x' } as Packet, 5))
  await until(() => packets.length >= 1, '1 packet from the broker', 3000)
  assert.equal(packets[0]?.cmd, 'connack')
  assert.equal((packets[0] as { reasonCode?: number }).reasonCode, 0x89)
  assert.match(failures[0] ?? '', /^connect_rejected: the session of client "x" could not be read \(Error: store unreachable\)/)
})

test('connectTimeoutMs ends when the CONNECT has arrived: a session read slower than it is not the client\'s fault', async (t) => {
  class LateSessions extends MemorySessionStore {
    override resume(clientId: string): Promise<Session | undefined> {
      return wait(500).then(() => this.get(clientId))
    }
  }
  const broker = new Broker({ settings: { version: 1, values: { ...DEFAULT_SETTINGS, connectTimeoutMs: 150 } }, sessions: new LateSessions() })
  t.after(() => broker.close())
  const failures: string[] = []
  broker.on('failure', (e) => failures.push(`${e.reason}: ${e.detail}`))
  const { input, packets } = recordingClient(broker)
  input.push(RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: 'patient' } as Packet, 5))
  await until(() => packets.length >= 1, '1 packet from the broker', 3000)
  assert.equal(packets[0]?.cmd, 'connack')
  assert.equal((packets[0] as { reasonCode?: number }).reasonCode, 0)
  assert.deepEqual(failures, [])
  assert.equal(broker.clientCount, 1)
})

test('a CONNECT the broker cannot serve in serveConnectTimeoutMs is answered Server busy, blamed on the broker; the session read that comes later is held here offline: it routes, queues and sends its Will', async (t) => {
  let answer: (() => void) | null = null
  /** As a clustered store: resume() fetches the session from elsewhere (here: when the test says), forget() exists. */
  class StuckSessions extends MemorySessionStore {
    override resume(clientId: string): Session | undefined | Promise<Session | undefined> {
      if (clientId !== 'stuck') return super.resume(clientId)
      return new Promise<void>((r) => { answer = r }).then(() => {
        const fetched = newSession(clientId, 600)
        fetched.subscriptions.set('parked/#', { clientId, filter: 'parked/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionIds: [] })
        fetched.will = { topic: 'wills/stuck', payload: Buffer.from('gone'), qos: 0, retain: false, properties: null, delaySec: 0, expirySec: undefined }
        fetched.disconnectedAt = Date.now()
        this.set(fetched)
        return fetched
      })
    }
    forget(clientId: string): Promise<void> {
      this.delete(clientId)
      return Promise.resolve()
    }
  }
  const sessions = new StuckSessions()
  const broker = new Broker({ settings: { version: 1, values: { ...DEFAULT_SETTINGS, connectTimeoutMs: 100 } }, sessions, serveConnectTimeoutMs: 300 })
  t.after(() => broker.close())
  const failures: { reason: string; detail: string; hint: string }[] = []
  broker.on('failure', (e) => failures.push(e))
  const { input, packets } = recordingClient(broker)
  const sent = Date.now()
  input.push(RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: false, keepalive: 0, clientId: 'stuck',
    properties: { sessionExpiryInterval: 600 } } as Packet, 5))
  await until(() => packets.length >= 1, '1 packet from the broker', 3000)
  const took = Date.now() - sent
  assert.equal(packets[0]?.cmd, 'connack')
  assert.equal((packets[0] as { reasonCode?: number }).reasonCode, 0x89)
  assert.ok(took >= 280, `answered ${took} ms after the CONNECT: the broker's bound, not connectTimeoutMs (100 ms)`)
  assert.equal(failures.length, 1)
  assert.equal(failures[0].reason, 'connect_rejected')
  assert.match(failures[0].detail, /CONNECT arrived whole, but the broker could not serve it within 300 ms/)
  assert.match(failures[0].hint, /the broker was the slow side, not the client/)
  assert.equal(broker.clientCount, 0)

  // a watcher of Wills; then the read answers at last
  const watcher = recordingClient(broker)
  watcher.input.push(Buffer.concat([
    RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: 'watcher' } as Packet, 5),
    RawClient.encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'wills/#', qos: 0 }] } as Packet, 5),
  ]))
  await until(() => watcher.packets.length >= 2, 'the watcher\'s CONNACK and SUBACK', 3000)
  answer!()
  await until(() => watcher.packets.some((p) => p.cmd === 'publish'), 'the Will of the parked session', 2000)
  assert.deepEqual(watcher.packets.filter((p) => p.cmd === 'publish').map(summary), ['publish wills/stuck gone'])
  // its subscription routes here: a message for it is queued while its client is away
  watcher.input.push(RawClient.encode({ cmd: 'publish', topic: 'parked/1', payload: Buffer.from('kept'), qos: 1, messageId: 2, retain: false, dup: false } as Packet, 5))
  await until(() => (sessions.get('stuck')?.queue?.length ?? 0) > 0, 'a message queued for the parked session', 2000)
  assert.equal(sessions.get('stuck')?.queue?.length, 1)
})
