// The keepalive policy (maxKeepaliveSec, serverKeepaliveSec, allowZeroKeepalive), maxPacketSize and maxConnections,
// in MQTT 3.1.1 and 5.0: MQTT 5 clients are told (Server Keep Alive, Maximum Packet Size, reason codes and strings),
// MQTT 3.x clients are refused with a CONNACK return code, and every refusal is a failure event.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { IConnackPacket, IDisconnectPacket, Packet } from 'mqtt-packet'
import type { FailureEvent } from '../../src/contracts/failure.ts'
import { brokerKit, delay, RawClient, keepaliveSilenceMs, stallGivenMs, waitForFailure } from '../helpers.ts'

type Connack = IConnackPacket & { returnCode?: number }
const LATE_MS = 700

describe('keepalive policy, packet size and connection limits', { concurrency: 4 }, () => {
  test('maxKeepaliveSec: MQTT 5 asking more gets Server Keep Alive = max and is held to it', async (t) => {
    const kit = await brokerKit(t, { settings: { maxKeepaliveSec: 1 } })
    const raw = await kit.raw({ protocolVersion: 5 })
    const failure = waitForFailure(kit.server, (e) => e.clientId === 'v5-long-ka', 15_000)
    const connack = await raw.connect({ clientId: 'v5-long-ka', keepalive: 600 }, 5) as Connack
    assert.equal(connack.reasonCode, 0)
    assert.equal(connack.properties?.serverKeepAlive, 1)
    const live = kit.server.app.broker.connections().find((c) => c.clientId === 'v5-long-ka')
    assert.equal(live?.keepaliveSec, 1)
    assert.equal(live?.requestedKeepaliveSec, 600)
    const e = await failure
    assert.equal(e.reason, 'keepalive_timeout')
    const disconnect = await raw.nextPacket('disconnect') as IDisconnectPacket
    assert.equal(disconnect.reasonCode, 0x8d) // Keep Alive timeout
    const elapsed = keepaliveSilenceMs(e)
    assert.ok(elapsed >= 1400 && elapsed <= 1500 + LATE_MS, `dropped after ${elapsed} ms of the client's time`)
  })

  test('maxKeepaliveSec: MQTT 3.1.1 asking more is refused (identifier rejected) and logged', async (t) => {
    const kit = await brokerKit(t, { settings: { maxKeepaliveSec: 60 } })
    const raw = await kit.raw()
    const failure = waitForFailure(kit.server, (e) => e.reason === 'connect_rejected')
    const connack = await raw.connect({ clientId: 'v3-long-ka', keepalive: 61 }) as Connack
    assert.equal(connack.returnCode, 0x02)
    await raw.closed()
    const e = await failure
    assert.equal(e.clientId, 'v3-long-ka')
    assert.equal(e.keepaliveSec, 61)
    assert.equal(e.protocolVersion, 4)
    assert.equal(e.phase, 'awaiting_connect')
    assert.match(e.detail, /keepalive 61 s, above maxKeepaliveSec 60/)
    assert.match(e.hint, /maxKeepaliveSec/)
    // at the limit is fine
    const ok = await kit.raw()
    assert.equal((await ok.connect({ clientId: 'v3-ok-ka', keepalive: 60 }) as Connack).returnCode, 0)
  })

  test('maxKeepaliveSec: MQTT.js 3.1.1 asking more gets an error, MQTT.js 5 adopts the Server Keep Alive', async (t) => {
    const kit = await brokerKit(t, { settings: { maxKeepaliveSec: 30 } })
    await assert.rejects(kit.mqtt({ clientId: 'js-v3-long', keepalive: 120 }), /Identifier rejected|identifier/i)
    const js5 = await kit.mqtt({ clientId: 'js-v5-long', keepalive: 120, protocolVersion: 5 })
    assert.equal((js5 as unknown as { keepalive: number }).keepalive, 30)
  })

  test('serverKeepaliveSec: every MQTT 5 client is told it and held to it; MQTT 3.1.1 keeps its own', async (t) => {
    const kit = await brokerKit(t, { settings: { serverKeepaliveSec: 1 } })
    const v5 = await kit.raw({ protocolVersion: 5 })
    const failure = waitForFailure(kit.server, (e) => e.clientId === 'v5-server-ka', 15_000)
    const connack = await v5.connect({ clientId: 'v5-server-ka', keepalive: 0 }, 5) as Connack
    assert.equal(connack.properties?.serverKeepAlive, 1)
    const v3 = await kit.raw()
    await v3.connect({ clientId: 'v3-own-ka', keepalive: 0 })
    const e = await failure
    assert.equal(e.reason, 'keepalive_timeout')
    assert.equal(e.keepaliveSec, 1)
    assert.ok(v3.isOpen, 'MQTT 3.1.1 is not told a Server Keep Alive and keeps keepalive 0')
    const v5b = await kit.raw({ protocolVersion: 5 })
    const connackB = await v5b.connect({ clientId: 'v5-server-ka-b', keepalive: 5 }, 5) as Connack
    assert.equal(connackB.properties?.serverKeepAlive, 1, 'a lower client keepalive is raised to it too')
  })

  test('allowZeroKeepalive false: MQTT 5 gets Server Keep Alive = maxKeepaliveSec, MQTT 3.1.1 is refused', async (t) => {
    const kit = await brokerKit(t, { settings: { allowZeroKeepalive: false, maxKeepaliveSec: 120 } })
    const v5 = await kit.raw({ protocolVersion: 5 })
    const connack5 = await v5.connect({ clientId: 'v5-zero', keepalive: 0 }, 5) as Connack
    assert.equal(connack5.reasonCode, 0)
    assert.equal(connack5.properties?.serverKeepAlive, 120)
    const v3 = await kit.raw()
    const failure = waitForFailure(kit.server, (e) => e.reason === 'connect_rejected')
    const connack3 = await v3.connect({ clientId: 'v3-zero', keepalive: 0 }) as Connack
    assert.equal(connack3.returnCode, 0x02)
    const e = await failure
    assert.equal(e.clientId, 'v3-zero')
    assert.equal(e.keepaliveSec, 0)
    assert.match(e.detail, /keepalive 0/)
    assert.match(e.hint, /allowZeroKeepalive/)
    // a v5 client with a keepalive of its own keeps it
    const v5b = await kit.raw({ protocolVersion: 5 })
    const connackB = await v5b.connect({ clientId: 'v5-own', keepalive: 20 }, 5) as Connack
    assert.equal(connackB.properties?.serverKeepAlive, undefined)
  })

  test('maxPacketSize: advertised to MQTT 5; a larger PUBLISH gets DISCONNECT 0x95 (v5) or a close (v3.1.1)', async (t) => {
    const kit = await brokerKit(t, { settings: { maxPacketSize: 256 } })
    const others = await kit.mqtt({ clientId: 'bystander' })
    const v5 = await kit.raw({ protocolVersion: 5 })
    const connack = await v5.connect({ clientId: 'v5-big' }, 5) as Connack
    assert.equal(connack.properties?.maximumPacketSize, 256)
    const failure5 = waitForFailure(kit.server, (e) => e.clientId === 'v5-big')
    v5.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(300), qos: 0, retain: false, dup: false }, 5)
    const d = await v5.nextPacket('disconnect') as IDisconnectPacket
    assert.equal(d.reasonCode, 0x95)
    await v5.closed()
    const e5 = await failure5
    assert.equal(e5.reason, 'packet_too_large')
    assert.equal(e5.phase, 'connected')
    assert.match(e5.detail, /PUBLISH of \d+ bytes; maxPacketSize is 256/)
    assert.match(e5.hint, /maxPacketSize/)

    const v3 = await kit.raw()
    await v3.connect({ clientId: 'v3-big' })
    const failure3 = waitForFailure(kit.server, (e) => e.clientId === 'v3-big')
    v3.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(300), qos: 0, retain: false, dup: false })
    await v3.closed()
    assert.equal((await failure3).reason, 'packet_too_large')
    // exactly at the limit passes
    const fits = await kit.raw()
    await fits.connect({ clientId: 'v3-fits' })
    const bytes = RawClient.encode({ cmd: 'publish', topic: 't', payload: Buffer.alloc(256 - 6), qos: 0, retain: false, dup: false } as Packet)
    assert.equal(bytes.length, 256)
    fits.sendBytes(bytes)
    fits.send({ cmd: 'pingreq' })
    await fits.nextPacket('pingresp')
    assert.ok(others.connected)
  })

  test('maxPacketSize: judged from the fixed header, before the body arrives', async (t) => {
    const kit = await brokerKit(t, { settings: { maxPacketSize: 1024 } })
    const raw = await kit.raw()
    await raw.connect({ clientId: 'header-only' })
    const full = RawClient.encode({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(100_000), qos: 0, retain: false, dup: false } as Packet)
    const failure = waitForFailure(kit.server, (e) => e.clientId === 'header-only')
    raw.sendBytes(full.subarray(0, 8)) // fixed header (declaring ~100 kB) and a few bytes
    const e = await failure
    assert.equal(e.reason, 'packet_too_large')
    assert.ok(e.bytesReceived < 100, `refused after ${e.bytesReceived} bytes`)
    assert.match(e.detail, new RegExp(`PUBLISH of ${full.length} bytes`))
  })

  test('maxPacketSize: a lower value reaches live connections from their next packet', async (t) => {
    const kit = await brokerKit(t)
    const raw = await kit.raw()
    await raw.connect({ clientId: 'shrunk' })
    kit.server.app.settingsStore.update({ maxPacketSize: 100 }, { actor: 'test' })
    const failure = waitForFailure(kit.server, (e) => e.clientId === 'shrunk')
    raw.send({ cmd: 'publish', topic: 't', payload: Buffer.alloc(200), qos: 0, retain: false, dup: false })
    assert.equal((await failure).reason, 'packet_too_large')
  })

  test('maxConnections: over it, MQTT 5 gets CONNACK 0x97 with a reason string, MQTT 3.1.1 gets 0x03', async (t) => {
    const kit = await brokerKit(t, { settings: { maxConnections: 2 } })
    const failures: FailureEvent[] = []
    kit.server.app.broker.on('failure', (e) => failures.push(e))
    await kit.mqtt({ clientId: 'first' })
    const second = await kit.raw()
    await second.connect({ clientId: 'second' })

    const v5 = await kit.raw({ protocolVersion: 5 })
    const c5 = await v5.connect({ clientId: 'third-v5' }, 5) as Connack
    assert.equal(c5.reasonCode, 0x97)
    assert.match(String(c5.properties?.reasonString), /maxConnections 2/)
    await v5.closed()
    const v3 = await kit.raw()
    const c3 = await v3.connect({ clientId: 'third-v3' }) as Connack
    assert.equal(c3.returnCode, 0x03)
    await v3.closed()
    await assert.rejects(kit.mqtt({ clientId: 'third-js' }), /Server unavailable|unavailable/i)

    const rejected = failures.filter((e) => e.reason === 'connect_rejected')
    assert.deepEqual(rejected.map((e) => e.clientId).sort(), ['third-js', 'third-v3', 'third-v5'])
    assert.match(rejected[0].hint, /maxConnections/)
    // a client id already connected may take its own place over
    const again = await kit.raw()
    assert.equal((await again.connect({ clientId: 'second' }) as Connack).returnCode, 0)
    assert.equal(failures.filter((e) => e.reason === 'taken_over').length, 1)
    // room again once one leaves; a raised limit applies to the next CONNECT
    again.send({ cmd: 'disconnect' })
    await again.closed()
    const fourth = await kit.raw()
    assert.equal((await fourth.connect({ clientId: 'fourth' }) as Connack).returnCode, 0)
    kit.server.app.settingsStore.update({ maxConnections: 3 }, { actor: 'test' })
    const fifth = await kit.raw({ protocolVersion: 5 })
    assert.equal((await fifth.connect({ clientId: 'fifth' }, 5) as Connack).reasonCode, 0)
  })

  test('taken_over: the older connection gets DISCONNECT 0x8E (v5) and a failure event', async (t) => {
    const kit = await brokerKit(t)
    const old = await kit.raw({ protocolVersion: 5 })
    await old.connect({ clientId: 'twin', keepalive: 30 }, 5)
    const failure = waitForFailure(kit.server, (e) => e.reason === 'taken_over')
    const fresh = await kit.raw({ protocolVersion: 5 })
    assert.equal((await fresh.connect({ clientId: 'twin' }, 5) as Connack).reasonCode, 0)
    assert.equal((await old.nextPacket('disconnect') as IDisconnectPacket).reasonCode, 0x8e)
    await old.closed()
    const e = await failure
    assert.equal(e.clientId, 'twin')
    assert.equal(e.phase, 'connected')
    assert.match(e.detail, /connected again from 127\.0\.0\.1:\d+/)
    await delay(50)
    assert.ok(fresh.isOpen)
  })

  test('a throwing listener on the broker events cannot break a connection being served', async (t) => {
    const kit = await brokerKit(t, { settings: { connectTimeoutMs: 300 } })
    const boom = () => {
      throw new Error('listener bug')
    }
    kit.server.app.broker.on('connected', boom)
    kit.server.app.broker.on('failure', boom)
    kit.server.app.broker.on('disconnected', boom)
    const raw = await kit.raw()
    assert.equal((await raw.connect({ clientId: 'survivor', keepalive: 0 }) as Connack).returnCode, 0)
    raw.send({ cmd: 'pingreq' })
    await raw.nextPacket('pingresp')
    const silent = await kit.raw()
    await silent.closed() // the connect timeout still ends it, though the failure listener throws
    raw.send({ cmd: 'disconnect' })
    await raw.closed()
  })

  test('an unsupported protocol level is refused with CONNACK 0x01 and logged', async (t) => {
    const kit = await brokerKit(t)
    const raw = await kit.raw()
    const bytes = RawClient.encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'v6' } as Packet)
    bytes[8] = 6 // protocol level byte
    const failure = waitForFailure(kit.server, (e) => e.reason === 'connect_rejected')
    raw.sendBytes(bytes)
    assert.equal((await raw.nextPacket('connack') as Connack).returnCode, 0x01)
    const e = await failure
    assert.match(e.detail, /protocol level 6/)
  })
})
