// Points of the issues that no other test showed: SIGINT as well as SIGTERM ends the server gracefully, and a
// packet identifier 0 is a broken rule [MQTT-2.3.1-1] that closes only its own connection.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { join } from 'node:path'
import type { IDisconnectPacket } from 'mqtt'
import { brokerKit, connectMqtt, startServerProcess, tempDir, waitForFailure } from './helpers.ts'

test('SIGINT: v5 clients get DISCONNECT 0x8B, the rest are closed, the process exits 0', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const { child, port, output } = await startServerProcess({ DB_PATH: join(tmp.dir, 'broker.db'), ADMIN_TOKEN: 'sigint-test-token-0123456789' })
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const wsUrl = `ws://127.0.0.1:${port}/mqtt`
  const v5 = await connectMqtt(wsUrl, { protocolVersion: 5, clientId: 'sigint-v5' })
  const v3 = await connectMqtt(wsUrl, { protocolVersion: 4, clientId: 'sigint-v3' })
  t.after(() => {
    v5.end(true)
    v3.end(true)
  })
  const disconnect = new Promise<IDisconnectPacket>((resolve) => v5.once('disconnect', resolve))
  const closed = Promise.all([v5, v3].map((c) => new Promise<void>((resolve) => c.once('close', () => resolve()))))
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>

  child.kill('SIGINT')
  assert.equal((await disconnect).reasonCode, 0x8b, 'Server shutting down')
  await closed
  const [code, signal] = await exited
  assert.equal(signal, null, 'the process ended itself instead of dying of the signal')
  assert.equal(code, 0, output.join('\n'))
  assert.ok(output.some((line) => /shutting down/.test(line) && /SIGINT/.test(line)), output.join('\n'))
})

// hand-built, since an encoder may refuse packet identifier 0
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff])
const str = (s: string) => Buffer.concat([u16(Buffer.byteLength(s)), Buffer.from(s)])
const packet = (first: number, ...body: Buffer[]) => {
  const b = Buffer.concat(body)
  assert.ok(b.length < 128, 'one-byte remaining length')
  return Buffer.concat([Buffer.from([first, b.length]), b])
}
/** The empty property block MQTT 5 puts after the variable header. */
const props = (pv: 4 | 5) => Buffer.from(pv === 5 ? [0] : [])

const ZERO_ID: { name: string; bytes: (pv: 4 | 5) => Buffer; detail: RegExp }[] = [
  { name: 'PUBLISH at QoS 1', bytes: (pv) => packet(0x32, str('gap/t'), u16(0), props(pv), Buffer.from('x')), detail: /PUBLISH at QoS > 0 with packet identifier 0/ },
  { name: 'PUBLISH at QoS 2', bytes: (pv) => packet(0x34, str('gap/t'), u16(0), props(pv), Buffer.from('x')), detail: /PUBLISH at QoS > 0 with packet identifier 0/ },
  { name: 'SUBSCRIBE', bytes: (pv) => packet(0x82, u16(0), props(pv), str('gap/f'), Buffer.from([1])), detail: /SUBSCRIBE with packet identifier 0/ },
  { name: 'UNSUBSCRIBE', bytes: (pv) => packet(0xa2, u16(0), props(pv), str('gap/f')), detail: /UNSUBSCRIBE with packet identifier 0/ },
]

test('a packet identifier 0 is a protocol error that closes only that connection (MQTT 3.1.1 and 5.0)', async (t) => {
  const kit = await brokerKit(t)
  const w = await kit.watch({ 'gap/#': { qos: 1 } })
  for (const pv of [4, 5] as const) {
    for (const c of ZERO_ID) {
      await t.test(`MQTT ${pv === 5 ? '5.0' : '3.1.1'}: ${c.name}`, async () => {
        const clientId = `zero-id-${pv}-${c.name.replace(/\W+/g, '-')}`
        const raw = await kit.raw({ protocolVersion: pv })
        await raw.connect({ clientId }, pv)
        const failure = waitForFailure(kit.server, (e) => e.clientId === clientId)
        raw.sendBytes(c.bytes(pv))
        const e = await failure
        assert.equal(e.reason, 'protocol_error', e.detail)
        assert.equal(e.phase, 'connected')
        assert.match(e.detail, c.detail)
        if (pv === 5) assert.equal(((await raw.nextPacket('disconnect')) as IDisconnectPacket).reasonCode, 0x82)
        await raw.closed()
        // nothing it sent was routed, and the others are still served
        await w.sync()
        assert.deepEqual(w.log.on('gap/t'), [])
        assert.ok(w.sub.connected && w.pub.connected)
      })
    }
  }
})
