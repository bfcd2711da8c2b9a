// PLACEHOLDER by the lead so the app builds while the owner writes the real file: the owner replaces it wholesale.
import { EventEmitter } from 'node:events'
import fp from 'fastify-plugin'
import { DEFAULT_SETTINGS, type SettingsValues } from '../settings/schema.ts'

interface SettingsVersion { version: number; updatedAt: string; updatedBy: string; comment: string | null; values: SettingsValues }
class PlaceholderStore extends EventEmitter<{ change: [SettingsVersion] }> {
  private v: SettingsVersion = { version: 1, updatedAt: new Date().toISOString(), updatedBy: 'system', comment: null, values: { ...DEFAULT_SETTINGS } }
  current() { return this.v }
  update(patch: Partial<SettingsValues>, o: { actor: string; comment?: string | null }) {
    this.v = { version: this.v.version + 1, updatedAt: new Date().toISOString(), updatedBy: o.actor, comment: o.comment ?? null, values: { ...this.v.values, ...patch } }
    this.emit('change', this.v)
    return this.v
  }
}
declare module 'fastify' { interface FastifyInstance { settingsStore: PlaceholderStore } }
export default fp(async (app) => { app.decorate('settingsStore', new PlaceholderStore()) }, { name: 'settings', dependencies: [] })
