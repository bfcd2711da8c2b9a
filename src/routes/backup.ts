// POST /api/admin/backup: an online, consistent backup of the SQLite file while the broker runs, into BACKUP_DIR.
// A thin handler over app.backups (src/plugins/backup.ts), which writes the MQTT state and the failure log first.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { adminApi, errorResponses } from '../api.ts'

const BackupWritten = Type.Object({
  path: Type.String({ description: 'the absolute path of the new file on the server' }),
  bytes: Type.Integer(),
  tookMs: Type.Integer(),
})

export default async function backupRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  adminApi(app)

  app.post('/api/admin/backup', {
    config: { role: 'admin' },
    schema: {
      tags: ['admin'],
      summary: 'Back up the database now',
      description:
        'Writes a consistent copy of the SQLite database (settings and their history, MQTT users, ACL rules, ' +
        'retained messages, sessions, the failure log, admin tokens) to a new file `broker-<time>.db` in BACKUP_DIR ' +
        '(default: `backups` beside DB_PATH), while the broker runs. The MQTT state waiting to be written is written ' +
        'first. One backup runs at a time; a second request waits for the first. Restore: see the README.',
      response: { 200: BackupWritten, ...errorResponses(401, 503) },
    },
  }, async () => app.backups.run())
}
