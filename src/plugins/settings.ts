// Decorates `settingsStore`: the versioned hot settings (src/settings/store.ts). The broker plugin listens to its
// 'change' event, so a change is in force before the request that made it is answered.
import fp from 'fastify-plugin'
import { createSettingsStore, type SettingsStore } from '../settings/store.ts'

declare module 'fastify' {
  interface FastifyInstance {
    settingsStore: SettingsStore
  }
}

export default fp(
  async (app) => {
    const store = createSettingsStore(app.db, { logger: app.log.child({ component: 'settings' }) })
    const v = store.current()
    app.log.info({ settingsVersion: v.version }, `settings version ${v.version} in force (by ${v.updatedBy}, ${v.updatedAt})`)
    app.decorate('settingsStore', store)
  },
  { name: 'settings', dependencies: ['database'] },
)
