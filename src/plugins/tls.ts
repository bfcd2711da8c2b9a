// TLS for the one server (HTTPS, WSS): the certificate and key from TLS_CERT / TLS_KEY, read at start-up before
// Fastify exists (loadCertificates) and re-read without a restart when either file changes or on reload('SIGHUP').
// A good new pair reaches new handshakes (live connections keep theirs); a bad one leaves the old pair in force.
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs'
import { X509Certificate, createPrivateKey } from 'node:crypto'
import type { Server as TlsServer } from 'node:tls'
import fp from 'fastify-plugin'
import { ConfigError, tlsPairProblem, type BootConfig } from '../config.ts'

/** A certificate (PEM, the chain may follow it) and its private key, checked to belong together. */
export interface Certificates {
  key: Buffer
  cert: Buffer
  /** when the (first) certificate of TLS_CERT expires */
  notAfter: Date
}

/** The pair in force, re-read on demand and when its files change; `app.tlsCertificates`. */
export interface CertificateHolder {
  /** The pair new handshakes get; null without TLS. */
  current(): Certificates | null
  /** Called with each new pair once it is in force on this server (not for a bad or unchanged one). */
  on(event: 'change', listener: (c: Certificates) => void): void
  /** Re-reads both files now; true when they hold a good pair (now in force), false when not (the old one stays). */
  reload(reason: string): boolean
  /** Re-reads that found a bad pair, since start-up. */
  readonly reloadFailures: number
}

declare module 'fastify' {
  interface FastifyInstance {
    tlsCertificates: CertificateHolder
  }
}

/** How often each file is looked at (stat), and how long after the last change the pair is read (both may change). */
const WATCH_INTERVAL_MS = 1000
const SETTLE_MS = WATCH_INTERVAL_MS + 500

const firstLine = (err: unknown) => String((err as Error).message ?? err).split('\n')[0]

function readPem(name: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new Error(`${name}: cannot read ${path} (${(err as { code?: string }).code ?? firstLine(err)})`)
  }
}

/** What the two files hold, checked or not. */
type Files = { cert: Buffer; key: Buffer }

/** Both files as they are now; throws one line naming the variable whose file cannot be read. */
function readFiles(certPath: string, keyPath: string): Files {
  return { cert: readPem('TLS_CERT', certPath), key: readPem('TLS_KEY', keyPath) }
}

/** Checks that the files hold a certificate and its private key; throws one line naming the variable at fault. */
function checkPair({ cert, key }: Files, certPath: string, keyPath: string): Certificates {
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch (err) {
    throw new Error(`TLS_CERT: ${certPath} holds no PEM certificate (${firstLine(err)})`)
  }
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(key)
  } catch (err) {
    throw new Error(`TLS_KEY: ${keyPath} holds no unencrypted PEM private key (${firstLine(err)})`)
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new Error(`TLS_KEY: ${keyPath} is not the private key of the certificate in ${certPath}`)
  }
  return { key, cert, notAfter: new Date(x509.validTo) }
}

/**
 * The pair named by the boot configuration, or null without TLS. Throws a ConfigError (one line) when only one of
 * TLS_CERT / TLS_KEY is set, a file cannot be read, or the files do not hold a matching certificate and key.
 */
export function loadCertificates(config: Pick<BootConfig, 'tlsCert' | 'tlsKey'>): Certificates | null {
  const problem = tlsPairProblem(config)
  if (problem !== null) throw new ConfigError(`invalid environment: ${problem}`)
  if (config.tlsCert === null || config.tlsKey === null) return null
  try {
    return checkPair(readFiles(config.tlsCert, config.tlsKey), config.tlsCert, config.tlsKey)
  } catch (err) {
    throw new ConfigError(firstLine(err))
  }
}

const sameBytes = (a: Files, b: Files | null) => b !== null && a.cert.equals(b.cert) && a.key.equals(b.key)

export default fp<{ certificates: Certificates | null }>(
  async (app, opts) => {
    const log = app.log.child({ component: 'tls' })
    const { tlsCert: certPath, tlsKey: keyPath } = app.config
    let inForce = opts.certificates
    let failures = 0
    const listeners = new Set<(c: Certificates) => void>()

    // the files last refused: a file change that leaves them as they were is not refused (logged, counted) again
    let refused: Files | null = null

    /** `watched`: after a file change, when files already refused or already in force are passed over quietly. */
    const reread = (reason: string, watched: boolean): boolean => {
      if (inForce === null || certPath === null || keyPath === null) {
        log.debug({ reason }, 'no TLS certificate configured: nothing to reload')
        return false
      }
      const old = inForce
      let files: Files | null = null
      let next: Certificates
      try {
        files = readFiles(certPath, keyPath)
        if (watched && sameBytes(files, refused)) return false
        if (sameBytes(files, old)) {
          refused = null
          if (!watched) log.info({ reason, notAfter: old.notAfter.toISOString() }, 'TLS certificate re-read: unchanged')
          return true
        }
        next = checkPair(files, certPath, keyPath)
        // new handshakes use the new pair; live connections keep the session they have
        ;(app.server as unknown as TlsServer).setSecureContext({ key: next.key, cert: next.cert })
      } catch (err) {
        refused = files
        failures++
        log.warn(
          { reason, error: firstLine(err), notAfter: old.notAfter.toISOString() },
          `TLS certificate reload refused: ${firstLine(err)}; the certificate in force (valid until ${old.notAfter.toISOString()}) stays in force`,
        )
        return false
      }
      inForce = next
      refused = null
      log.info({ reason, notAfter: next.notAfter.toISOString() }, `TLS certificate reloaded: valid until ${next.notAfter.toISOString()}`)
      for (const listener of listeners) {
        try {
          listener(next)
        } catch (err) {
          log.error({ err }, 'a TLS certificate change listener failed')
        }
      }
      return true
    }

    app.decorate('tlsCertificates', {
      current: () => inForce,
      on: (_event: 'change', listener: (c: Certificates) => void) => void listeners.add(listener),
      reload: (reason: string) => reread(reason, false),
      get reloadFailures() {
        return failures
      },
    } satisfies CertificateHolder)

    if (inForce === null || certPath === null || keyPath === null) return
    log.info({ cert: certPath, notAfter: inForce.notAfter.toISOString() }, `TLS on: certificate valid until ${inForce.notAfter.toISOString()}`)

    // Both files may change one after the other (a renewal): the pair is read once neither changed for SETTLE_MS.
    let settle: NodeJS.Timeout | undefined
    const onChange = (now: Stats, before: Stats) => {
      if (now.mtimeMs === before.mtimeMs && now.ctimeMs === before.ctimeMs && now.ino === before.ino && now.size === before.size) return
      clearTimeout(settle)
      settle = setTimeout(() => reread('file change', true), SETTLE_MS)
      settle.unref()
    }
    const paths = [...new Set([certPath, keyPath])]
    for (const path of paths) watchFile(path, { interval: WATCH_INTERVAL_MS, persistent: false }, onChange)
    app.addHook('onClose', async () => {
      clearTimeout(settle)
      for (const path of paths) unwatchFile(path, onChange)
      listeners.clear()
    })
  },
  { name: 'tls' },
)
