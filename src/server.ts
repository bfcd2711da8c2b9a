// Entry point: boot configuration -> buildApp() -> listen. SIGTERM/SIGINT close gracefully and exit 0; SIGHUP re-reads
// the TLS certificate.
import { buildApp } from './app.ts'
import { loadConfig } from './config.ts'

const SHUTDOWN_GRACE_MS = 10_000

async function main(): Promise<void> {
  const config = loadConfig()
  const app = await buildApp({ config })
  await app.listen({ port: config.port, host: config.host })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.port
  const tls = app.tlsCertificates.current() !== null
  app.log.info(
    {
      port,
      mqtt: `${tls ? 'wss' : 'ws'}://${config.host}:${port}${config.mqttPath}`,
      admin: `${tls ? 'https' : 'http'}://${config.host}:${port}/admin/`,
    },
    `listening on port ${port}`,
  )

  if (app.settingsStore.current().values.allowAnonymous) {
    app.log.warn({ allowAnonymous: true },
      'anonymous MQTT clients are allowed (allowAnonymous=true): to require credentials, create MQTT users ' +
      '(POST /api/mqtt-users) and PATCH /api/settings {"values":{"allowAnonymous":false}}')
  }

  let closing = false
  const shutdown = (signal: string) => {
    if (closing) {
      app.log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    closing = true
    app.log.info({ signal }, 'shutting down')
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
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  // SIGHUP re-reads TLS_CERT / TLS_KEY (a bad pair is logged and the old one stays); without TLS it keeps its default
  if (tls) process.on('SIGHUP', () => app.tlsCertificates.reload('SIGHUP'))
  process.on('SIGINT', () => shutdown('SIGINT'))
}

main().catch((err: unknown) => {
  // A start-up problem (bad environment, unreadable database, port in use) is one line, not a stack trace.
  const e = err as { message?: string; code?: string }
  process.stderr.write(`broker: cannot start: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}\n`)
  process.exit(1)
})
