// Decorates `db`: the SQLite database on DB_PATH, migrated, closed last when the app closes.
import fp from 'fastify-plugin'
import type { Database } from 'better-sqlite3'
import { openDatabase } from '../db/open.ts'

declare module 'fastify' {
  interface FastifyInstance {
    db: Database
  }
}

export default fp(
  async (app) => {
    const { db, journalMode, schemaVersion, applied } = openDatabase(app.config.dbPath)
    app.log.info({ dbPath: app.config.dbPath, journalMode, schemaVersion, applied }, `database ready at ${app.config.dbPath} (schema version ${schemaVersion})`)
    app.decorate('db', db)
    // onClose hooks run in reverse order of registration: every store registered after this one is closed first.
    app.addHook('onClose', async () => {
      db.close()
    })
  },
  { name: 'database', dependencies: [] },
)
