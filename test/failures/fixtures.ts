// Helpers for the failure-log store tests: a real SQLite file with the failure tables, and failure events.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import v8 from 'node:v8'
import vm from 'node:vm'
import Database from 'better-sqlite3'
import type { FailureEvent } from '../../src/contracts/failure.ts'

/** The migrations that make the failure tables. */
const MIGRATIONS = ['002-failures.sql', '005-failures-transport.sql', '009-failures-broker-lag.sql', '011-failures-profile.sql', '012-failures-node.sql']
  .map((name) => readFileSync(join(import.meta.dirname, '../../migrations', name), 'utf8'))

/** A fresh SQLite file (WAL) in a tmp dir with the failure tables' migrations applied. */
export function failureDb(): { db: Database.Database; path: string; close(): void } {
  // (not test/helpers.ts: that imports the whole app, which these store tests do not need)
  const dir = mkdtempSync(join(tmpdir(), 'failure-log-'))
  const path = join(dir, 'test.db')
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  for (const m of MIGRATIONS) db.exec(m)
  return {
    db,
    path,
    close() {
      if (db.open) db.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

let port = 40000

export function failureEvent(over: Partial<FailureEvent> = {}): FailureEvent {
  return {
    occurredAt: Date.now(),
    transport: 'ws',
    reason: 'connect_timeout',
    phase: 'awaiting_connect',
    clientId: null,
    username: null,
    protocolVersion: null,
    keepaliveSec: null,
    remoteAddress: '127.0.0.1',
    remotePort: port++,
    userAgent: 'test-agent',
    origin: null,
    subprotocol: 'mqtt',
    durationMs: 5000,
    bytesReceived: 17,
    packetsReceived: 0,
    firstBytesHex: '102900044d515454',
    detail: 'the client sent 17 of 41 bytes of its CONNECT in 5000 ms',
    hint: 'a slow or lossy link; raise connectTimeoutMs',
    settingsVersion: 1,
    brokerLagMs: 0,
    profile: null,
    ...over,
  }
}

/** Heap in use after a full garbage collection, MB: what is retained, not garbage waiting to be collected. */
export function retainedHeapMb(): number {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  gc()
  gc()
  return process.memoryUsage().heapUsed / 2 ** 20
}
