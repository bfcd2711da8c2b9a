// Entry point: boot configuration -> buildApp() -> listen, then, on a terminal, a short start-up banner.
// SIGTERM/SIGINT: /readyz turns 503 first and stays so for SHUTDOWN_DRAIN_MS while everything still serves (a load
// balancer drains the node), then the app closes gracefully and the process exits 0. SIGHUP re-reads the TLS certificate.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { buildApp, type App } from './app.ts'
import { loadConfig, LISTEN_BACKLOG, type BootConfig } from './config.ts'

/** After the drain, closing may take this long before the process gives up and exits 1. */
const SHUTDOWN_GRACE_MS = 10_000

/** Where clients and people reach this server. */
interface Endpoints {
  mqtt: string[]
  admin: string
}

function endpoints(app: App, config: BootConfig, port: number, host: string): Endpoints {
  const tls = app.tlsCertificates.current() !== null
  const mqtt = [`${tls ? 'wss' : 'ws'}://${host}:${port}${config.mqttPath}`]
  const { tcpPort, tlsPort } = app.mqttListeners
  if (tcpPort !== null) mqtt.push(`mqtt://${host}:${tcpPort}`)
  if (tlsPort !== null) mqtt.push(`mqtts://${host}:${tlsPort}`)
  return { mqtt, admin: `${tls ? 'https' : 'http'}://${host}:${port}/admin/` }
}

/** The banner for a person at a terminal: where to connect, the admin token if this start made one, what runs. */
function banner(app: App, config: BootConfig, port: number, token: string | null): string {
  // a wildcard bind address is not one to type into a browser
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host
  const { mqtt, admin } = endpoints(app, config, port, host)
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string }
  const anonymous = app.settingsStore.current().values.allowAnonymous
  const rows: [string, string][] = [
    ...mqtt.map((url, i): [string, string] => [i === 0 ? 'MQTT' : '', url]),
    ['Admin UI', admin],
  ]
  if (token !== null) rows.push(['Admin token', `${token}   (generated now, shown only this once; set ADMIN_TOKEN to choose one)`])
  rows.push(
    ['Database', config.dbPath === ':memory:' ? ':memory: (nothing is kept)' : resolve(config.dbPath)],
    ['MQTT state', app.mqttState.kind === 'sqlite'
      ? 'sqlite (retained messages and sessions survive restarts)'
      : app.mqttState.kind === 'jetstream'
        ? `jetstream (cluster "${config.clusterName}", node ${app.cluster?.nodeId}: shared by every node)`
        : 'memory (retained messages and sessions end with the process)'],
    ['Anonymous', anonymous ? 'allowed (allowAnonymous=true)' : 'refused: clients need an MQTT user'],
  )
  const width = Math.max(...rows.map(([k]) => k.length))
  const lines = rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)
  const rule = '-'.repeat(Math.min(100, Math.max(...lines.map((l) => l.length)) + 2))
  return ['', rule, `  ${pkg.name} ${pkg.version} is ready`, '', ...lines, rule, ''].join('\n') + '\n'
}

async function main(): Promise<void> {
  const config = loadConfig()
  const pretty = config.logFormat === 'pretty' || (config.logFormat === 'auto' && process.stdout.isTTY === true)
  const app = await buildApp({ config, prettyLogs: pretty })
  // The signal handlers come first: a SIGTERM that arrives as soon as the server says it listens (a supervisor, a
  // test reading the banner) must find them installed, or the process dies of the signal without closing.
  let closing = false
  const shutdown = (signal: string) => {
    if (closing) {
      app.log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    closing = true
    // not ready first: a load balancer polling /readyz stops sending new clients while this node still serves them
    app.readiness.drain(`shutting down (${signal})`)
    const drainMs = config.shutdownDrainMs
    app.log.info({ signal, drainMs },
      drainMs > 0 ? `shutting down: /readyz answers 503, closing in ${drainMs} ms` : 'shutting down')
    const close = () => {
      const force = setTimeout(() => {
        app.log.error('shutdown took too long: exiting')
        process.exit(1)
      }, SHUTDOWN_GRACE_MS)
      force.unref()
      app.close().then(
        () => process.exit(0),
        (err: unknown) => {
          app.log.error({ err }, 'error while shutting down')
          process.exit(1)
        },
      )
    }
    if (drainMs > 0) setTimeout(close, drainMs)
    else close()
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  // SIGHUP re-reads TLS_CERT / TLS_KEY (a bad pair is logged and the old one stays); without TLS it keeps its default
  if (app.tlsCertificates.current() !== null) process.on('SIGHUP', () => app.tlsCertificates.reload('SIGHUP'))
  process.on('SIGINT', () => shutdown('SIGINT'))
  await app.listen({ port: config.port, host: config.host, backlog: LISTEN_BACKLOG })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.port
  const { mqtt, admin } = endpoints(app, config, port, config.host)
  const allowAnonymous = app.settingsStore.current().values.allowAnonymous
  // the banner's facts as fields of the one JSON line, for log collectors and scripts
  app.log.info(
    { port, mqtt: mqtt[0], mqttUrls: mqtt, admin, dbPath: config.dbPath, mqttState: app.mqttState.kind, allowAnonymous },
    `listening on port ${port}`,
  )

  if (allowAnonymous) {
    app.log.warn({ allowAnonymous: true },
      'anonymous MQTT clients are allowed (allowAnonymous=true): to require credentials, create MQTT users ' +
      '(POST /api/mqtt-users) and PATCH /api/settings {"values":{"allowAnonymous":false}}')
  }
  // the generated token was logged once by the auth plugin; a terminal also gets it in the banner, then it is dropped
  if (pretty) process.stdout.write(banner(app, config, port, app.generatedAdminToken))
  app.generatedAdminToken = null

}

main().catch((err: unknown) => {
  // A start-up problem (bad environment, unreadable database, port in use) is one line, not a stack trace.
  const e = err as { message?: string; code?: string }
  const message = e.message ?? String(err)
  // a message that starts with what it is about (`DATABASE_URL: cannot connect to ...`) needs no code after it
  const code = e.code && !message.startsWith(`${e.code}: `) ? ` (${e.code})` : ''
  process.stderr.write(`broker: cannot start: ${message}${code}\n`)
  process.exit(1)
})
