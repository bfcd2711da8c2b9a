// The settings part of the app (database, settings store, auth, OpenAPI, health and settings routes) registered the
// way src/app.ts registers it, for tests that need no broker.
import Fastify from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { DEFAULT_CONFIG, type BootConfig } from '../../src/config.ts'
import database from '../../src/plugins/database.ts'
import settings from '../../src/plugins/settings.ts'
import auth from '../../src/plugins/auth.ts'
import swagger from '../../src/plugins/swagger.ts'
import healthRoutes from '../../src/routes/health.ts'
import settingsRoutes from '../../src/routes/settings.ts'

export const TOKEN = 'settings-test-token-0123456789'
export const AUTH = { authorization: `Bearer ${TOKEN}` }

export async function buildSettingsApp(config: Partial<BootConfig> = {}, logger: boolean | object = false) {
  const app = Fastify({ logger }).withTypeProvider<TypeBoxTypeProvider>()
  app.decorate('config', { ...DEFAULT_CONFIG, dbPath: ':memory:', adminToken: TOKEN, ...config })
  await app.register(database)
  await app.register(settings)
  await app.register(auth)
  await app.register(swagger)
  await app.register(healthRoutes)
  await app.register(settingsRoutes)
  await app.ready()
  return app
}
