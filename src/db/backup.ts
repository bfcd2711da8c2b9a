// An online, consistent copy of the SQLite database while it is in use (SQLite's backup API, through better-sqlite3):
// pages are copied a batch per event-loop turn, and a write by another connection restarts the copy, so the file holds
// one committed state. It is written as `<name>.partial` and renamed when complete: a half-written copy never carries
// the final name (a cron job or a sync never picks one up).
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { Database } from 'better-sqlite3'

export interface BackupResult {
  /** the absolute path of the copy */
  path: string
  bytes: number
  tookMs: number
}

/** `broker-20250131T120000123Z.db`: sortable, unique to the millisecond, no characters a file system refuses. */
export function backupFileName(now = new Date()): string {
  return `broker-${now.toISOString().replace(/[-:.]/g, '')}.db`
}

/** The destination for `target`: itself, or a new timestamped file inside it when it is a folder (or ends with /). */
export function backupTarget(target: string, now = new Date()): string {
  let isDir = target.endsWith('/')
  try {
    isDir ||= statSync(target).isDirectory()
  } catch {
    // not there yet: a file of that name
  }
  return resolve(isDir ? join(target, backupFileName(now)) : target)
}

export interface BackupOptions {
  /**
   * Pages copied per event-loop turn (default 100, better-sqlite3's). Inside the broker, small steps keep it serving;
   * its own writes during the copy are copied too. From another process, one step (ALL_PAGES): a write by another
   * connection between two steps restarts the copy, which under a steady load might never end.
   */
  pagesPerStep?: number
}

/** One step for the whole file. */
export const ALL_PAGES = 0x7fffffff

/** Copies `db` to `dest` (an existing file there is replaced only once the copy is complete). */
export async function backupDatabase(db: Database, dest: string, opts: BackupOptions = {}): Promise<BackupResult> {
  const started = performance.now()
  const path = resolve(dest)
  const partial = `${path}.partial`
  mkdirSync(dirname(path), { recursive: true })
  rmSync(partial, { force: true })
  try {
    const { pagesPerStep } = opts
    await (pagesPerStep === undefined ? db.backup(partial) : db.backup(partial, { progress: () => pagesPerStep }))
    renameSync(partial, path)
  } catch (err) {
    rmSync(partial, { force: true })
    throw err
  }
  return { path, bytes: statSync(path).size, tookMs: Math.round(performance.now() - started) }
}
