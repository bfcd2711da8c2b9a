// Decorates `backups`: online backups of the SQLite file while the broker runs (POST /api/admin/backup). Before the
// copy, the MQTT state's write-behind and the failure log's buffer are written, so the copy holds the retained messages,
// sessions and failures of this moment, not of up to 50 ms ago. One backup at a time: a second request waits its turn.
import { join } from 'node:path'
import fp from 'fastify-plugin'
import { DomainError } from '../contracts/errors.ts'
import { backupDirOf } from '../config.ts'
import { backupDatabase, backupFileName, type BackupResult } from '../db/backup.ts'

export interface Backups {
  /** where backups are written (BACKUP_DIR, or `backups` beside DB_PATH) */
  readonly dir: string
  /** Write a new backup, `broker-<time>.db` in `dir`. */
  run(): Promise<BackupResult>
}

declare module 'fastify' {
  interface FastifyInstance {
    backups: Backups
  }
}

export default fp(
  async (app) => {
    const dir = backupDirOf(app.config)
    const log = app.log.child({ component: 'backup' })
    let queue: Promise<unknown> = Promise.resolve()

    const once = async (): Promise<BackupResult> => {
      app.failureLog.flush()
      const writeBehind = app.mqttState.writeBehind
      if (writeBehind !== null && !writeBehind.flushNow()) {
        throw new DomainError('STORE_UNAVAILABLE',
          'the MQTT state could not be written before the backup (see the log); no backup was made, the broker keeps running')
      }
      try {
        const result = await backupDatabase(app.db, join(dir, backupFileName()))
        log.info(result, `backup written to ${result.path} (${result.bytes} bytes in ${result.tookMs} ms)`)
        return result
      } catch (err) {
        log.error({ err, dir }, 'backup failed')
        const e = err as { message?: string; code?: string }
        throw new DomainError('STORE_UNAVAILABLE',
          `the backup could not be written to ${dir}: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}`, { cause: err })
      }
    }

    app.decorate('backups', {
      dir,
      run() {
        const next = queue.then(once, once)
        queue = next.catch(() => undefined)
        return next
      },
    } satisfies Backups)
  },
  { name: 'backup', dependencies: ['database', 'mqtt-state', 'failures'] },
)
