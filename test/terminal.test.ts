// What the real entry point prints. On a terminal (a pseudo-terminal made by util-linux `script`): human-readable log
// lines (pino-pretty) and a start-up banner with the MQTT URLs, the admin UI URL, the admin token when this start
// generated it, the database, the MQTT state kind and anonymous access. Without a terminal: one JSON object a line,
// the banner's facts as fields of the `listening` line, no banner text. LOG_FORMAT overrides the guess both ways.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { delay, startServerProcess, tempDir, TEST_TOKEN, until } from './helpers.ts'

const ROOT = join(import.meta.dirname, '..')
const SCRIPT = '/usr/bin/script'
const noScript = existsSync(SCRIPT) ? false : 'needs util-linux script (/usr/bin/script)'

// eslint-disable-next-line no-control-regex
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '')

/** The server under a pseudo-terminal; resolves once the banner (or, with LOG_FORMAT=json, the listening line) is out. */
async function startOnTerminal(env: Record<string, string>, until: RegExp) {
  const child = spawn(SCRIPT, ['-qfec', 'exec node --import tsx src/server.ts', '/dev/null'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${until} within 20 s:\n${plain(out)}`)), 20000)
    const check = () => {
      if (until.test(plain(out))) {
        clearTimeout(timer)
        child.stdout.off('data', check)
        resolve()
      }
    }
    child.stdout.on('data', check)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code}:\n${plain(out)}`))
    })
  })
  return { child, output: () => plain(out) }
}

/** Ends the pseudo-terminal session and waits until nothing listens on the port any more (the server is gone). */
async function stopTerminal(child: ChildProcess, port: number) {
  if (child.exitCode === null) {
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  }
  const listening = () => new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
  const end = Date.now() + 10000
  while (await listening()) {
    assert.ok(Date.now() < end, 'the server under the terminal stopped')
    await delay(50)
  }
}

const BANNER_END = /is ready\n\n(?:.*\n)*?-{10,}\n/

test('on a terminal: readable log lines, then a banner with the URLs, the generated token, the database, the state and anonymous access', { skip: noScript }, async (t) => {
  const tmp = tempDir('terminal-')
  t.after(() => tmp.cleanup())
  const dbPath = join(tmp.dir, 'broker.db')
  const { child, output } = await startOnTerminal({ DB_PATH: dbPath, MQTT_TCP_PORT: '0', ADMIN_TOKEN: '' }, BANNER_END)
  let port = 0
  t.after(() => child.kill('SIGKILL'))
  const text = output()
  const banner = BANNER_END.exec(text)![0]
  port = Number(/ws:\/\/127\.0\.0\.1:(\d+)\/mqtt/.exec(banner)![1])
  const tcpPort = Number(/mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(banner)![1])
  assert.ok(port > 0 && tcpPort > 0 && tcpPort !== port)
  const row = (name: string) => new RegExp(`^  ${name} +(.+)$`, 'm').exec(banner)?.[1]
  assert.equal(row('MQTT'), `ws://127.0.0.1:${port}/mqtt`)
  assert.match(banner, new RegExp(`^ +mqtt://127\\.0\\.0\\.1:${tcpPort}$`, 'm'), 'the TCP listener on its own line')
  assert.equal(row('Admin UI'), `http://127.0.0.1:${port}/admin/`)
  assert.equal(row('Database'), dbPath)
  assert.equal(row('MQTT state'), 'sqlite (retained messages and sessions survive restarts)')
  assert.equal(row('Anonymous'), 'allowed (allowAnonymous=true)')
  const token = /^([A-Za-z0-9_-]{43}) +\(generated now, shown only this once/.exec(row('Admin token') ?? '')?.[1]
  assert.ok(token, `the generated token in the banner:\n${banner}`)
  // the token works
  const res = await fetch(`http://127.0.0.1:${port}/api/settings`, { headers: { authorization: `Bearer ${token}` } })
  assert.equal(res.status, 200)

  // log lines for a person: time, level, message; nothing is a JSON object
  const lines = text.split('\n').filter((l) => l.trim() !== '')
  assert.ok(lines.some((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: listening on port \d+/.test(l)), text)
  assert.ok(lines.some((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: admin API token generated/.test(l)), text)
  assert.ok(lines.every((l) => !l.startsWith('{')), 'no JSON line')
  // a request is logged readably too
  await until(() => /INFO: request completed/.test(output()), 'the request log line', 3000)
  await stopTerminal(child, port)

  // the next start uses the stored hash: no token anywhere
  const again = await startOnTerminal({ DB_PATH: dbPath, ADMIN_TOKEN: '' }, BANNER_END)
  t.after(() => again.child.kill('SIGKILL'))
  const second = again.output()
  assert.doesNotMatch(second, /Admin token/)
  assert.doesNotMatch(second, new RegExp(token!))
  const port2 = Number(/ws:\/\/127\.0\.0\.1:(\d+)\/mqtt/.exec(second)![1])
  await stopTerminal(again.child, port2)
})

test('on a terminal with LOG_FORMAT=json: JSON lines and no banner', { skip: noScript }, async (t) => {
  const { child, output } = await startOnTerminal({ DB_PATH: ':memory:', ADMIN_TOKEN: TEST_TOKEN, LOG_FORMAT: 'json' }, /"msg":"listening on port \d+"/)
  t.after(() => child.kill('SIGKILL'))
  const port = Number(/"port":(\d+)/.exec(output())![1])
  await delay(200)
  const lines = output().split('\n').filter((l) => l.trim() !== '')
  for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `not JSON: ${l}`)
  assert.doesNotMatch(output(), /is ready|Admin UI/)
  await stopTerminal(child, port)
})

test('without a terminal: one JSON object a line, the banner\'s facts as fields of the listening line, no banner text', async (t) => {
  const tmp = tempDir('no-terminal-')
  t.after(() => tmp.cleanup())
  const dbPath = join(tmp.dir, 'broker.db')
  const { child, port, output } = await startServerProcess({ DB_PATH: dbPath, MQTT_STATE: 'memory' })
  t.after(() => child.kill('SIGKILL'))
  await delay(200)
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
  // stdout lines (stderr chunks are kept apart in `output` and are empty here)
  const lines = output.join('\n').split('\n').filter((l) => l.trim() !== '')
  const records = lines.map((l) => {
    assert.doesNotThrow(() => JSON.parse(l), `not JSON: ${l}`)
    return JSON.parse(l) as Record<string, unknown>
  })
  assert.doesNotMatch(output.join('\n'), /is ready|Admin UI|-{10,}/)
  const listening = records.find((r) => typeof r.msg === 'string' && r.msg.startsWith('listening on port'))!
  assert.deepEqual(
    { port: listening.port, mqtt: listening.mqtt, mqttUrls: listening.mqttUrls, admin: listening.admin, dbPath: listening.dbPath, mqttState: listening.mqttState, allowAnonymous: listening.allowAnonymous },
    {
      port, mqtt: `ws://127.0.0.1:${port}/mqtt`, mqttUrls: [`ws://127.0.0.1:${port}/mqtt`], admin: `http://127.0.0.1:${port}/admin/`,
      dbPath, mqttState: 'memory', allowAnonymous: true,
    },
  )
  // the generated token is in the log once, as before (a warning line), and nowhere else
  const tokenLines = records.filter((r) => typeof r.msg === 'string' && r.msg.includes('admin API token generated'))
  assert.equal(tokenLines.length, 1)
})

test('LOG_FORMAT=pretty without a terminal: readable lines and the banner (for a terminal the server cannot see)', async (t) => {
  const { child, port, output } = await startServerProcess({ DB_PATH: ':memory:', ADMIN_TOKEN: TEST_TOKEN, LOG_FORMAT: 'pretty' })
  t.after(() => child.kill('SIGKILL'))
  await until(() => /is ready/.test(output.join('\n')), 'the banner', 3000)
  const text = plain(output.join('\n'))
  assert.match(text, new RegExp(`INFO: listening on port ${port}`))
  assert.match(text, /^ {2}Database +:memory: \(nothing is kept\)$/m)
  assert.match(text, /^ {2}MQTT state +sqlite/m)
  assert.doesNotMatch(text, /Admin token/, 'ADMIN_TOKEN was given: no token is shown')
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  assert.equal((await exited)[0], 0)
})
