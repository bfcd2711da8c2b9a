// A new cluster starts from the first node's own control plane: its settings history (every version under its
// number, so the settingsVersion of its failure records keeps its meaning), its MQTT users (hashes as stored) and its
// ACL rules (ids and positions). A node that ran alone before keeps its settings when it founds a cluster; every node
// after it takes the cluster's (PostgreSQL wins). Runs once per database, under the start-up lock.
import type { PoolClient } from 'pg'
import type { StoredSettingsVersion } from '../settings/store.ts'
import type { StoredMqttUser } from '../access/users.ts'
import type { AclRule } from '../access/acl-schema.ts'

export interface SeedSource {
  node: string
  settings: StoredSettingsVersion[]
  users: StoredMqttUser[]
  rules: AclRule[]
}

/** Seeds an unseeded database from `from()` (read only when needed). Returns whether it did. */
export async function seedIfNew(c: PoolClient, from: () => SeedSource): Promise<boolean> {
  const { rows } = await c.query<{ value: string }>("SELECT value FROM cluster_meta WHERE key = 'seeded_by'")
  if (rows.length > 0) return false
  const s = from()
  await c.query('BEGIN')
  try {
    for (const v of s.settings) {
      await c.query(
        'INSERT INTO settings_versions (version, values_json, created_at, actor, comment) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
        [v.version, v.valuesJson, v.createdAt, v.actor, v.comment])
    }
    for (const u of s.users) {
      await c.query(
        `INSERT INTO mqtt_users (username, password_hash, enabled, note, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING`,
        [u.username, u.passwordHash, u.enabled ? 1 : 0, u.note, u.createdAt, u.updatedAt])
    }
    for (const r of s.rules) {
      await c.query(
        `INSERT INTO acl_rules (id, position, username, client_id, anonymous, topic, action, permission, comment, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING`,
        [r.id, r.position, r.username, r.clientId, r.anonymous ? 1 : 0, r.topic, r.action, r.permission, r.comment, r.createdAt, r.updatedAt])
    }
    // ids given explicitly: the next one made here comes after them
    await c.query("SELECT setval(pg_get_serial_sequence('acl_rules', 'id'), COALESCE(max(id), 0) + 1, false) FROM acl_rules")
    await c.query("UPDATE control_revisions SET revision = revision + 1 WHERE name IN ('mqtt_users', 'acl_rules')")
    await c.query("INSERT INTO cluster_meta (key, value) VALUES ('seeded_by', $1)", [s.node])
    await c.query('COMMIT')
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {})
    throw err
  }
  return true
}
