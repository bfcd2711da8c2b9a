// Decorates `acl`: the topic ACL rules (src/access/acl.ts), which is also the `Authorizer` the broker asks per
// publish, subscribe and delivery. It reads aclDefault from the settings in force on each question; a settings
// change is passed on (settingsChanged) so that a new default is a new ACL version and a 'change' event at once.
import fp from 'fastify-plugin'
import { createAclStore, type AclStore } from '../access/acl.ts'

declare module 'fastify' {
  interface FastifyInstance {
    acl: AclStore
  }
}

export default fp(
  async (app) => {
    const acl = createAclStore(app.db, {
      settings: () => app.settingsStore.current().values,
      logger: app.log.child({ component: 'acl' }),
    })
    app.settingsStore.on('change', () => acl.settingsChanged())
    app.log.info({ aclRules: acl.list().length, aclDefault: acl.defaultPermission() },
      `ACL: ${acl.list().length} rules, default ${acl.defaultPermission()}`)
    app.decorate('acl', acl)
  },
  { name: 'acl', dependencies: ['database', 'settings'] },
)
