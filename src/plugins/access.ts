// Decorates `mqttUsers` (the MQTT users store, src/access/users.ts) and `authenticator` (what the broker asks at
// CONNECT, src/access/authenticator.ts), which reads allowAnonymous from the settings in force at each CONNECT.
import fp from 'fastify-plugin'
import { createUserStore, type MqttUserStore } from '../access/users.ts'
import { createAuthenticator, type BoundedAuthenticator } from '../access/authenticator.ts'

declare module 'fastify' {
  interface FastifyInstance {
    mqttUsers: MqttUserStore
    authenticator: BoundedAuthenticator
  }
}

export default fp(
  async (app) => {
    const users = createUserStore(app.db, { logger: app.log.child({ component: 'mqtt-users' }) })
    const settings = () => ({ allowAnonymous: app.settingsStore.current().values.allowAnonymous })
    app.decorate('mqttUsers', users)
    app.decorate('authenticator', createAuthenticator({ users, settings }))
  },
  { name: 'access', dependencies: ['database', 'settings'] },
)
