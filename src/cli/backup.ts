// `npm run backup -- [PATH]`: an online backup of the broker's SQLite file (DB_PATH) from outside the server, for
// cron. Safe while the broker runs (WAL: this reader never blocks its writes); the copy holds what the broker had
// committed, which for the MQTT state is all but its last ~50 ms (POST /api/admin/backup writes that first). PATH is
// the new file, or a folder to put `broker-<time>.db` in; without it, BACKUP_DIR (default `backups` beside DB_PATH).
// Prints one line, `backup written: PATH (BYTES bytes in MS ms)`; exits 1 with one line on stderr when it cannot.
import { existsSync } from 'node:fs'
import Sqlite from 'better-sqlite3'
import { backupDirOf, loadConfig } from '../config.ts'
import { ALL_PAGES, backupDatabase, backupTarget } from '../db/backup.ts'

/** A lock held by the broker's own write is short; wait for it rather than fail (this process has no clients to stall). */
const BUSY_TIMEOUT_MS = 5000

async function main(argv: string[]): Promise<void> {
  if (argv.includes('-h') || argv.includes('--help') || argv.length > 1) {
    process.stdout.write('usage: npm run backup -- [FILE | FOLDER/]   (reads DB_PATH and BACKUP_DIR from the environment)\n')
    process.exit(argv.length > 1 ? 2 : 0)
  }
  const config = loadConfig()
  if (config.dbPath === ':memory:' || config.dbPath === '') throw new Error('DB_PATH is :memory:, there is no file to back up')
  if (!existsSync(config.dbPath)) throw new Error(`there is no database at DB_PATH=${config.dbPath}`)
  const dest = backupTarget(argv[0] ?? `${backupDirOf(config)}/`)
  // read-only: this process never writes the broker's file (SQLite may still create its -shm beside it, as any reader)
  const db = new Sqlite(config.dbPath, { readonly: true, fileMustExist: true })
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
    const { path, bytes, tookMs } = await backupDatabase(db, dest, { pagesPerStep: ALL_PAGES })
    process.stdout.write(`backup written: ${path} (${bytes} bytes in ${tookMs} ms)\n`)
  } finally {
    db.close()
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = err as { message?: string; code?: string }
  process.stderr.write(`backup: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}\n`)
  process.exit(1)
})
