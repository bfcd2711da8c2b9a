// Runs the Eclipse Paho interoperability suites (MQTT 3.1.1: client_test.py, MQTT 5.0: client_test5.py) against
// this broker over WebSocket (through a TCP front, tcp-ws-bridge.ts: the suites speak TCP only) and over its own
// plain TCP listener, with an ACL rule denying subscriptions to test/nosubscribe set through the API, as
// test_subscribe_failure expects. The suites are not part of this project:
//   npm run interop -- /path/to/paho.mqtt.testing/interoperability
// Starts the broker (src/server.ts) on a free port with a temporary database, and stops everything it started.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBridge } from './tcp-ws-bridge.ts'

const TOKEN = 'interop-admin-token-0123456789'

async function main(): Promise<void> {
  const dir = process.argv[2]
  if (!dir || !existsSync(join(dir, 'client_test.py'))) {
    process.stderr.write('usage: npm run interop -- /path/to/paho.mqtt.testing/interoperability\n')
    process.exit(2)
  }
  const tmp = mkdtempSync(join(tmpdir(), 'interop-'))
  const broker = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: '0', MQTT_TCP_PORT: '0', HOST: '127.0.0.1', DB_PATH: join(tmp, 'broker.db'), ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  try {
    const [port, tcpPort] = await new Promise<[number, number]>((resolve, reject) => {
      let out = ''
      broker.stdout!.on('data', (d: Buffer) => {
        out += d.toString()
        const http = /listening on port (\d+)/.exec(out)
        const tcp = /MQTT over TCP on mqtt:\/\/[^:]+:(\d+)/.exec(out)
        if (http && tcp) resolve([Number(http[1]), Number(tcp[1])])
      })
      broker.once('exit', (code) => reject(new Error(`the broker exited (${code})`)))
    })
    const base = `http://127.0.0.1:${port}`
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
    // as the suites expect their broker configured: subscriptions to test/nosubscribe refused, and (MQTT 5) refused
    // with 0x80 rather than 0x87, and a client asking keepalive 120 told Server Keep Alive 60
    const res = await fetch(`${base}/api/acl`, { method: 'POST', headers,
      body: JSON.stringify({ topic: 'test/nosubscribe', action: 'subscribe', permission: 'deny', comment: 'Paho test_subscribe_failure' }) })
    if (res.status !== 201) throw new Error(`could not set the ACL rule: HTTP ${res.status} ${await res.text()}`)
    const set = await fetch(`${base}/api/settings`, { method: 'PATCH', headers,
      body: JSON.stringify({ values: { aclRevealDenials: false, maxKeepaliveSec: 60 }, comment: 'as the Paho suites expect' }) })
    if (set.status !== 200) throw new Error(`could not change the settings: HTTP ${set.status} ${await set.text()}`)
    const bridge = await startBridge(`ws://127.0.0.1:${port}/mqtt`)
    try {
      const results: string[] = []
      for (const [over, suitePort] of [['WebSocket', bridge.port], ['TCP', tcpPort]] as const) {
        for (const [name, script] of [['MQTT 3.1.1', 'client_test.py'], ['MQTT 5.0', 'client_test5.py']] as const) {
          const summary = await runSuite(dir, script, suitePort)
          results.push(`${name} (${script}) over ${over}: ${summary}`)
        }
      }
      process.stdout.write(`\n${results.join('\n')}\n`)
    } finally {
      await bridge.close()
    }
  } finally {
    broker.kill('SIGTERM')
    rmSync(tmp, { recursive: true, force: true })
  }
}

/**
 * Sets what the suite's own `__main__` block would (topics, host, port: its command line takes no host and port for
 * unittest), then runs it through unittest.
 */
const RUNNER = `
import sys, unittest, logging
name, port = sys.argv[1], int(sys.argv[2])
mod = __import__(name)
prefix = 'client_test5/' if name == 'client_test5' else ''
mod.topic_prefix = prefix
mod.topics = [prefix + t for t in ["TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA"]]
mod.wildtopics = [prefix + t for t in ["TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#"]]
mod.nosubscribe_topics = ("test/nosubscribe",)
mod.host, mod.port = "127.0.0.1", port
logging.getLogger().setLevel(logging.ERROR)
unittest.main(module=mod, argv=[name], exit=False, verbosity=2)
`

/** Runs one suite with a time bound; returns its unittest summary ("Ran N tests ... OK / FAILED (...)"). */
function runSuite(dir: string, script: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const py = spawn('python3', ['-c', RUNNER, script.replace(/\.py$/, ''), String(port)], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    py.stdout.on('data', (d: Buffer) => (out += d.toString()))
    py.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const timer = setTimeout(() => py.kill('SIGKILL'), 600_000)
    py.once('exit', () => {
      clearTimeout(timer)
      const failing = [...out.matchAll(/^(?:FAIL|ERROR): (\S+)/gm)].map((m) => m[1])
      const ran = /Ran (\d+) tests? in ([\d.]+)s/.exec(out)
      const passing = ran ? Number(ran[1]) - failing.length : 0
      const verdict = /^(OK.*|FAILED.*)$/m.exec(out)?.[1] ?? 'no verdict'
      process.stdout.write(out.split('\n').filter((l) => /^(FAIL|ERROR|Ran|OK|FAILED)|\.\.\. /.test(l)).join('\n') + '\n')
      resolve(`${ran ? `ran ${ran[1]} tests in ${ran[2]} s, ${passing} passed` : 'did not finish'}, ${verdict}` +
        `${failing.length ? `; failing: ${failing.join(', ')}` : ''}`)
    })
  })
}

main().catch((err: unknown) => {
  process.stderr.write(`interop: ${String(err)}\n`)
  process.exit(1)
})
