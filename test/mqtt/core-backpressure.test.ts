// A subscriber that stops reading: the broker buffers a bounded amount for it, then drops its QoS 0 messages
// (counted) instead of growing without end; the subscriber stays connected, and other subscribers get everything.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Packet } from 'mqtt-packet'
import { brokerKit, RawClient, waitForBrokerEvent, until } from '../helpers.ts'
import { clientFrame, rawUpgrade } from '../raw-websocket.ts'
import { DEFAULT_SETTINGS } from '../../src/settings/schema.ts'

const MAX_BUFFERED_BYTES = DEFAULT_SETTINGS.maxOutputBytes

const BINARY = 0x2
const encode = (p: Record<string, unknown> & { cmd: Packet['cmd'] }) => RawClient.encode(p as Packet)

test('a subscriber that stops reading loses QoS 0 messages beyond a bound; others get all of them', async (t) => {
  const kit = await brokerKit(t)
  const broker = kit.server.app.broker
  const TOTAL = 30_000

  // the stalled subscriber: a hand-upgraded TCP socket, so that it can simply stop reading
  const slow = await rawUpgrade(kit.server.port)
  t.after(() => slow.destroy())
  const subscribed = waitForBrokerEvent(kit.server, 'connected', (e) => e.clientId === 'stalled')
  slow.write(clientFrame(BINARY, encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'stalled' })))
  slow.write(clientFrame(BINARY, encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] })))
  await subscribed
  const fast = await kit.raw()
  await fast.connect({ clientId: 'reader', keepalive: 0 })
  fast.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] })
  await fast.nextPacket('suback')
  slow.pause()
  await until(() => broker.connections().find((c) => c.clientId === 'stalled')?.subscriptions === 1, 'subscribed', 15_000)

  const frame = encode({ cmd: 'publish', topic: 'flood/x', payload: Buffer.alloc(1024, 0x61), qos: 0, retain: false, dup: false })
  const pub = await kit.raw()
  await pub.connect({ clientId: 'flooder', keepalive: 0 })
  // in batches the reading subscriber keeps up with (half the bound each), so only the stalled one falls behind
  const BATCH = 500
  const batch = Buffer.concat(Array.from({ length: BATCH }, () => frame))
  for (let sent = BATCH; sent <= TOTAL; sent += BATCH) {
    pub.sendBytes(batch)
    await until(() => fast.packets.length >= sent, `${sent} read`, 15_000)
  }
  assert.ok(fast.packets.every((p) => p.cmd === 'publish'))
  fast.packets.length = 0

  const dropped = broker.stats.messagesDropped
  assert.ok(dropped > 0, 'the stalled subscriber lost some QoS 0 messages')
  // what went to it or waits for it is bounded: the kernel's and the socket's buffers plus the broker's bound
  const held = (TOTAL - dropped) * frame.length
  assert.ok(held >= MAX_BUFFERED_BYTES)
  assert.ok(held < 24 * 1024 * 1024, `${Math.round(held / 1024)} KiB went to or waits for the stalled client`)
  assert.ok(broker.connections().some((c) => c.clientId === 'stalled'), 'still connected')
  // once it reads again it gets what was held, then new messages again
  let received = 0
  slow.on('data', (chunk: Buffer) => (received += chunk.length))
  slow.resume()
  await until(() => received >= held, 'what was held', 15_000)
  const before = broker.stats.messagesDelivered
  const droppedBefore = broker.stats.messagesDropped
  pub.sendBytes(frame)
  await fast.nextPacket('publish')
  await until(() => broker.stats.messagesDelivered === before + 2, 'delivered to both', 15_000)
  assert.equal(broker.stats.messagesDropped, droppedBefore, 'delivered to both, not dropped')
})

