// No kept byte prefix holds a secret: every CONNECT's password and v5 Authentication Data are masked, at every
// cut of the bytes (a failure may keep any prefix of a CONNECT still arriving), and the rest stays readable.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet'
import { REDACTED, redactSecrets } from '../../src/mqtt/wire.ts'

const PASSWORD = 'S3cr3t-pässwörd!'
const AUTH_DATA = 'auth-data-BLOB-42'

const encode = (p: Packet, protocolVersion: number) => mqttPacket.generate(p, { protocolVersion })

/** [start, end) of `needle` in `hay` (it must occur once). */
function span(hay: Buffer, needle: string): [number, number] {
  const at = hay.indexOf(Buffer.from(needle))
  assert.ok(at >= 0 && hay.indexOf(Buffer.from(needle), at + 1) < 0, `${needle} occurs once`)
  return [at, at + Buffer.byteLength(needle)]
}

const connect = (extra: Partial<IConnectPacket>, protocolVersion: 4 | 5): IConnectPacket => ({
  cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean: true, keepalive: 30, clientId: 'c1', ...extra,
})

const CASES: Array<[string, Buffer, string[]]> = [
  ['3.1.1, username and password', encode(connect({ username: 'alice', password: Buffer.from(PASSWORD) }, 4), 4), [PASSWORD]],
  ['3.1.1, Will, username and password', encode(connect({
    username: 'alice', password: Buffer.from(PASSWORD), will: { topic: 'will/t', payload: Buffer.from('bye'), qos: 1, retain: false },
  }, 4), 4), [PASSWORD]],
  ['5.0, properties, Will properties, username and password', encode(connect({
    username: 'alice', password: Buffer.from(PASSWORD),
    properties: { sessionExpiryInterval: 60, receiveMaximum: 10, userProperties: { a: 'b' } },
    will: { topic: 'will/t', payload: Buffer.from('bye'), qos: 0, retain: false, properties: { willDelayInterval: 5 } },
  }, 5), 5), [PASSWORD]],
  ['5.0, Authentication Data', encode(connect({
    properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from(AUTH_DATA) },
  }, 5), 5), [AUTH_DATA]],
  ['a PUBLISH, then a second CONNECT with a password', Buffer.concat([
    encode({ cmd: 'publish', topic: 'x/y', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false }, 4),
    encode(connect({ username: 'bob', password: Buffer.from(PASSWORD) }, 4), 4),
  ]), [PASSWORD]],
]

for (const [name, bytes, secrets] of CASES) {
  test(`redactSecrets: ${name}, cut at every length`, () => {
    const spans = secrets.map((s) => span(bytes, s))
    for (let cut = 1; cut <= bytes.length; cut++) {
      const out = redactSecrets(bytes.subarray(0, cut))
      assert.equal(out.length, cut)
      for (const [from, to] of spans) {
        for (let i = from; i < Math.min(to, cut); i++) assert.equal(out[i], REDACTED, `byte ${i} of the secret, cut at ${cut}`)
      }
    }
    const whole = redactSecrets(bytes)
    for (const s of secrets) assert.equal(whole.indexOf(Buffer.from(s)), -1)
    assert.equal(bytes.indexOf(Buffer.from(secrets[0])) >= 0, true, 'the input itself is untouched')
    // what is not secret stays readable: the client id and protocol name
    assert.ok(whole.includes(Buffer.from('MQTT')))
  })
}

test('redactSecrets: a CONNECT without credentials is kept as it is', () => {
  const bytes = encode(connect({ will: { topic: 'w', payload: Buffer.from('p'), qos: 0, retain: false } }, 4), 4)
  assert.deepEqual(redactSecrets(bytes), bytes)
})
