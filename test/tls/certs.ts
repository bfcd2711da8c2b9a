// Certificates for TLS tests, made by Debian's openssl CLI in a temporary folder (never downloaded); tests that need
// them are skipped with the install command when openssl is missing (.ci/run installs it).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'

export const skipWithoutOpenssl = spawnSync('openssl', ['version']).status === 0 ? false : 'apt-get install -y openssl'

export interface Pem {
  cert: string
  key: string
  /** the certificate's own text, to trust it as its own CA */
  ca: Buffer
  fingerprint: string
}

/** A self-signed P-256 certificate for localhost and 127.0.0.1, valid for a day, with a fresh key and serial. */
export function makePem(dir: string, cn: string): Pem {
  const cert = join(dir, `${cn}-cert.pem`)
  const key = join(dir, `${cn}-key.pem`)
  const made = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert,
  ], { encoding: 'utf8' })
  assert.equal(made.status, 0, made.stderr)
  const ca = readFileSync(cert)
  return { cert, key, ca, fingerprint: new X509Certificate(ca).fingerprint256 }
}

/** Copies a pair onto the paths the server reads (certificate first, then key: a renewal writes one after the other). */
export function install(pem: Pem, paths: { cert: string; key: string }): void {
  copyFileSync(pem.cert, paths.cert)
  copyFileSync(pem.key, paths.key)
}

