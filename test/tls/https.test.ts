// TLS on the one server: the admin API and UI over HTTPS, MQTT over WSS, certificates renewed without a restart
// (a file change or SIGHUP), a bad renewal refused while the old certificate stays, and the one-line start-up refusals.
// Certificates are made by Debian's openssl CLI in a temporary folder.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { copyFileSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import tls from 'node:tls'
import { promisify } from 'node:util'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { install, makePem, skipWithoutOpenssl } from './certs.ts'
import { MessageLog, TEST_TOKEN, connectMqtt, delay, startServer, startServerProcess, tempDir, uniqueId, until } from '../helpers.ts'

const ROOT = join(import.meta.dirname, '..', '..')
const skip = skipWithoutOpenssl

/** A server with TLS on certificate "first", its log lines kept. */
async function tlsServer(t: TestContext, settings: Parameters<typeof startServer>[0] = {}) {
  const tmp = tempDir('broker-tls-')
  t.after(() => tmp.cleanup())
  const first = makePem(tmp.dir, 'first')
  const paths = { cert: join(tmp.dir, 'cert.pem'), key: join(tmp.dir, 'key.pem') }
  install(first, paths)
  const logs: { level: number; msg: string; reason?: string }[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line))
      done()
    },
  })
  const server = await startServer({ ...settings, config: { tlsCert: paths.cert, tlsKey: paths.key }, logger: { level: 'info', stream } })
  t.after(() => server.close())
  return { server, app: server.app, port: server.port, dir: tmp.dir, paths, first, logs }
}

/** GET over HTTPS, trusting `ca`. */
async function httpsGet(port: number, path: string, ca: Buffer, headers: Record<string, string> = {}) {
  const req = https.get({ host: '127.0.0.1', port, path, ca, headers })
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage]
  let body = ''
  for await (const chunk of res) body += chunk
  return { status: res.statusCode, type: String(res.headers['content-type']), body }
}

/** The SHA-256 fingerprint of the certificate a new TLS handshake gets. */
async function servedFingerprint(port: number): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false })
  await once(socket, 'secureConnect')
  const fp = socket.getPeerCertificate().fingerprint256
  socket.destroy()
  return fp
}

const fingerprintOf = (c: { cert: Buffer } | null) => (c === null ? null : new X509Certificate(c.cert).fingerprint256)

/** A subscriber and a publisher over wss://, trusting `ca`; `roundTrip()` publishes QoS 1 and waits for it. */
async function wssPair(t: TestContext, port: number, ca: Buffer) {
  const url = `wss://127.0.0.1:${port}/mqtt`
  let log!: MessageLog
  const sub = await connectMqtt(url, { ca, clientId: uniqueId('tls-sub-') }, 3000, (c) => (log = new MessageLog(c)))
  const pub = await connectMqtt(url, { ca, clientId: uniqueId('tls-pub-') })
  t.after(() => {
    sub.end(true)
    pub.end(true)
  })
  const topic = uniqueId('tls/')
  await sub.subscribeAsync(topic, { qos: 1 })
  return {
    sub, pub,
    async roundTrip() {
      const payload = uniqueId('payload-')
      await pub.publishAsync(topic, payload, { qos: 1 })
      await log.waitFor((m) => m.topic === topic && m.payload.toString() === payload)
    },
  }
}

const metricValue = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])

test('HTTPS: the admin API, the admin UI and /metrics answer over TLS on the one port', { skip }, async (t) => {
  const { app, port, first } = await tlsServer(t)
  assert.equal((await httpsGet(port, '/healthz', first.ca)).status, 200)
  const settings = await httpsGet(port, '/api/settings', first.ca, { authorization: `Bearer ${TEST_TOKEN}` })
  assert.equal(settings.status, 200)
  assert.equal(typeof JSON.parse(settings.body).values.connectTimeoutMs, 'number')
  assert.equal((await httpsGet(port, '/api/settings', first.ca)).status, 401)
  const ui = await httpsGet(port, '/admin/', first.ca)
  assert.equal(ui.status, 200)
  assert.match(ui.type, /text\/html/)

  const metrics = (await httpsGet(port, '/metrics', first.ca)).body
  const notAfter = app.tlsCertificates.current()!.notAfter
  assert.equal(metricValue(metrics, 'mqtt_tls_certificate_expiry_seconds'), notAfter.getTime() / 1000)
  assert.equal(metricValue(metrics, 'mqtt_tls_certificate_reload_failures_total'), 0)
  assert.ok(Math.abs(notAfter.getTime() - Date.now() - 86_400_000) < 120_000, `a one-day certificate, got ${notAfter.toISOString()}`)
})

test('WSS: MQTT.js publishes and receives over wss://, and its connection outlives connectTimeoutMs', { skip }, async (t) => {
  const { app, port, first } = await tlsServer(t, { settings: { connectTimeoutMs: 300 } })
  const { sub, roundTrip } = await wssPair(t, port, first.ca)
  await roundTrip()
  // the upgrade deadline runs from the TCP accept and ends with the upgrade request, on the TLS socket too
  await delay(700)
  assert.ok(sub.connected, 'still connected after connectTimeoutMs')
  await roundTrip()
  assert.equal(app.websocketAdapter.pendingUpgrades, 0)
  assert.equal(app.broker.stats.clientsConnected, 2)

  // a TLS socket that never sends its upgrade request is still closed at connectTimeoutMs from its TCP accept
  const idle = tls.connect({ host: '127.0.0.1', port, ca: first.ca, servername: 'localhost' })
  await once(idle, 'secureConnect')
  const openedAt = Date.now()
  idle.on('error', () => {})
  await once(idle, 'close')
  assert.ok(Date.now() - openedAt < 2000, `closed after ${Date.now() - openedAt} ms`)
})

test('a renewed certificate written over the files is used by new handshakes; live connections keep going', { skip }, async (t) => {
  const { app, port, dir, paths, first, logs } = await tlsServer(t)
  const live = await wssPair(t, port, first.ca)
  await live.roundTrip()
  assert.equal(await servedFingerprint(port), first.fingerprint)
  const changes: string[] = []
  app.tlsCertificates.on('change', (c) => changes.push(fingerprintOf(c)!))

  const second = makePem(dir, 'second')
  install(second, paths)
  await until(() => fingerprintOf(app.tlsCertificates.current()) === second.fingerprint, 'the renewed certificate in force', 8000)

  assert.equal(await servedFingerprint(port), second.fingerprint)
  assert.deepEqual(changes, [second.fingerprint], 'one change event, for the whole pair')
  assert.ok(live.sub.connected && live.pub.connected, 'clients connected before the renewal are still connected')
  await live.roundTrip()
  const fresh = await wssPair(t, port, second.ca)
  await fresh.roundTrip()

  const reloaded = logs.filter((l) => l.msg.startsWith('TLS certificate reloaded'))
  assert.equal(reloaded.length, 1)
  assert.equal(reloaded[0].level, 30)
  assert.match(reloaded[0].msg, new RegExp(`valid until ${app.tlsCertificates.current()!.notAfter.toISOString()}`))
  assert.equal(app.tlsCertificates.reloadFailures, 0)
  assert.ok(!logs.some((l) => l.level >= 40), 'no warning: both files were read together')
})

test('a bad renewal is refused, counted and logged; the old certificate stays in force', { skip }, async (t) => {
  const { app, port, dir, paths, first, logs } = await tlsServer(t)
  const changes: unknown[] = []
  app.tlsCertificates.on('change', (c) => changes.push(c))
  const other = makePem(dir, 'other')
  const warnings = () => logs.filter((l) => l.level === 40)

  // a certificate whose key is not the one in TLS_KEY, noticed by the file watch
  copyFileSync(other.cert, paths.cert)
  await until(() => app.tlsCertificates.reloadFailures === 1, 'the mismatched pair refused', 8000)
  assert.equal(await servedFingerprint(port), first.fingerprint)
  assert.equal(fingerprintOf(app.tlsCertificates.current()), first.fingerprint)
  assert.match(warnings()[0].msg, /TLS_KEY: .*key\.pem is not the private key of the certificate in .*cert\.pem; the certificate in force \(valid until .*\) stays in force/)
  assert.equal(warnings()[0].reason, 'file change')

  // garbage, then SIGHUP: refused at once, and the file watch does not refuse the same files a second time
  writeFileSync(paths.cert, 'not a certificate\n')
  assert.equal(app.tlsCertificates.reload('SIGHUP'), false)
  assert.equal(app.tlsCertificates.reloadFailures, 2)
  assert.match(warnings()[1].msg, /^TLS certificate reload refused: TLS_CERT: .*cert\.pem holds no PEM certificate/)
  assert.equal(warnings()[1].reason, 'SIGHUP')
  await delay(3000)
  assert.equal(app.tlsCertificates.reloadFailures, 2)
  assert.equal(await servedFingerprint(port), first.fingerprint)
  const metrics = (await httpsGet(port, '/metrics', first.ca)).body
  assert.equal(metricValue(metrics, 'mqtt_tls_certificate_reload_failures_total'), 2)
  assert.equal(metricValue(metrics, 'mqtt_tls_certificate_expiry_seconds'), app.tlsCertificates.current()!.notAfter.getTime() / 1000)

  // a good pair and SIGHUP: in force at once
  const good = makePem(dir, 'good')
  install(good, paths)
  assert.equal(app.tlsCertificates.reload('SIGHUP'), true)
  assert.equal(await servedFingerprint(port), good.fingerprint)
  assert.equal(changes.length, 1)
  // SIGHUP with nothing new: still good, nothing changes
  assert.equal(app.tlsCertificates.reload('SIGHUP'), true)
  assert.equal(changes.length, 1)
  assert.equal(app.tlsCertificates.reloadFailures, 2)
})

test('without TLS: no certificate, nothing to reload, the expiry gauge is 0', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  assert.equal(server.app.tlsCertificates.current(), null)
  assert.equal(server.app.tlsCertificates.reload('SIGHUP'), false)
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  assert.equal(metricValue(metrics, 'mqtt_tls_certificate_expiry_seconds'), 0)
  assert.equal(metricValue(metrics, 'mqtt_tls_certificate_reload_failures_total'), 0)
})

test('TLS_CERT and TLS_KEY: both or neither, and each must be readable and belong to the other', { skip }, async (t) => {
  const tmp = tempDir('broker-tls-')
  t.after(() => tmp.cleanup())
  const a = makePem(tmp.dir, 'a')
  const b = makePem(tmp.dir, 'b')
  assert.deepEqual(
    { ...loadConfig({ TLS_CERT: a.cert, TLS_KEY: a.key }) },
    { ...loadConfig({}), tlsCert: a.cert, tlsKey: a.key },
  )
  const refusals: [Parameters<typeof loadConfig>[0], RegExp][] = [
    [{ TLS_CERT: a.cert }, /^invalid environment: TLS_KEY: must be set when TLS_CERT is \(both or neither\)$/],
    [{ TLS_KEY: a.key }, /^invalid environment: TLS_CERT: must be set when TLS_KEY is \(both or neither\)$/],
  ]
  for (const [env, message] of refusals) {
    assert.throws(() => loadConfig(env), (err: Error & { code?: string }) => err.code === 'ERR_BOOT_CONFIG' && message.test(err.message))
  }

  const missing = join(tmp.dir, 'missing.pem')
  const garbage = join(tmp.dir, 'garbage.pem')
  writeFileSync(garbage, 'garbage\n')
  const bad: [{ tlsCert: string | null; tlsKey: string | null }, RegExp][] = [
    [{ tlsCert: a.cert, tlsKey: null }, /^invalid environment: TLS_KEY: must be set/],
    [{ tlsCert: missing, tlsKey: a.key }, /^TLS_CERT: cannot read .*missing\.pem \(ENOENT\)$/],
    [{ tlsCert: a.cert, tlsKey: missing }, /^TLS_KEY: cannot read .*missing\.pem \(ENOENT\)$/],
    [{ tlsCert: garbage, tlsKey: a.key }, /^TLS_CERT: .*garbage\.pem holds no PEM certificate \(.*\)$/],
    [{ tlsCert: a.cert, tlsKey: garbage }, /^TLS_KEY: .*garbage\.pem holds no unencrypted PEM private key \(.*\)$/],
    [{ tlsCert: a.cert, tlsKey: b.key }, /^TLS_KEY: .*b-key\.pem is not the private key of the certificate in .*a-cert\.pem$/],
  ]
  for (const [config, message] of bad) {
    await assert.rejects(buildApp({ config: { dbPath: ':memory:', ...config }, logger: false }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_BOOT_CONFIG')
      assert.match(err.message, message)
      assert.ok(!err.message.includes('\n'), 'one line')
      return true
    })
  }
})

const run = promisify(execFile)

/** Runs src/server.ts expecting it to refuse to start; its stderr. */
async function refusedStart(env: Record<string, string>): Promise<string> {
  const child = run(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DB_PATH: ':memory:', ...env },
    timeout: 20_000,
  })
  const err = await child.then(() => assert.fail('the server started'), (e: { code?: number; stderr: string }) => e)
  assert.equal(err.code, 1)
  return err.stderr
}

test('the server process: a lone TLS_CERT or an unreadable file stops start-up with one line', { skip }, async (t) => {
  const tmp = tempDir('broker-tls-')
  t.after(() => tmp.cleanup())
  const a = makePem(tmp.dir, 'a')
  const [lone, unreadable] = await Promise.all([
    refusedStart({ TLS_CERT: a.cert }),
    refusedStart({ TLS_CERT: join(tmp.dir, 'nope.pem'), TLS_KEY: a.key }),
  ])
  assert.match(lone, /^broker: cannot start: invalid environment: TLS_KEY: must be set when TLS_CERT is \(both or neither\) \(ERR_BOOT_CONFIG\)\n$/)
  assert.match(unreadable, /^broker: cannot start: TLS_CERT: cannot read .*nope\.pem \(ENOENT\) \(ERR_BOOT_CONFIG\)\n$/)
})

test('the server process with TLS: logs wss:// and https:// URLs, re-reads its certificate on SIGHUP', { skip }, async (t) => {
  const tmp = tempDir('broker-tls-')
  t.after(() => tmp.cleanup())
  const a = makePem(tmp.dir, 'a')
  const { child, port, output } = await startServerProcess({ TLS_CERT: a.cert, TLS_KEY: a.key, DB_PATH: ':memory:' })
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const listening = output.find((l) => /"port":\d+/.test(l) && /listening/.test(l))!
  assert.match(listening, new RegExp(`"mqtt":"wss://127\\.0\\.0\\.1:${port}/mqtt"`))
  assert.match(listening, new RegExp(`"admin":"https://127\\.0\\.0\\.1:${port}/admin/"`))
  assert.equal((await httpsGet(port, '/healthz', a.ca)).status, 200)

  child.kill('SIGHUP')
  await until(() => output.some((l) => /"reason":"SIGHUP"/.test(l) && /TLS certificate re-read: unchanged/.test(l)), 'the SIGHUP re-read logged')
  assert.equal(child.exitCode, null, 'SIGHUP does not stop the server')
  assert.equal((await httpsGet(port, '/healthz', a.ca)).status, 200)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0)
})
