// The import rule of src/, as a table. A layer is the first folder under src/ (`mqtt`, `plugins`, ...) or a file
// directly in src/ (`errors.ts`, `app.ts`, ...). Node built-ins (`node:*`) may be imported from everywhere.

export interface LayerRule {
  /** The layers this one may import from (its own layer only when `ownLayer` is not false). */
  layers: readonly string[]
  /** The packages it may import (a package's subpaths included: `typebox` allows `typebox/value`), or any. */
  packages: readonly string[] | 'any'
  /** May a file of this layer import another file of the same layer? (default: yes) */
  ownLayer?: boolean
  why: string
}

export type Rules = Readonly<Record<string, LayerRule>>

const ALL_BUT_SERVER = [
  'contracts', 'mqtt', 'db', 'settings', 'failures', 'access', 'state', 'audit', 'alerts', 'cluster', 'control', 'errors.ts', 'api.ts', 'config.ts', 'plugins', 'routes',
] as const

export const RULES: Rules = {
  'contracts': {
    layers: [],
    packages: [],
    why: 'the shapes that cross boundaries depend on nothing',
  },
  'mqtt': {
    layers: ['contracts'],
    packages: ['mqtt-packet'],
    why: 'the broker core is transport- and storage-agnostic: Node built-ins, mqtt-packet and contracts only',
  },
  'db': {
    layers: ['contracts'],
    packages: ['better-sqlite3'],
    why: 'opening SQLite and migrating knows no store',
  },
  'settings': {
    layers: ['contracts', 'db'],
    packages: ['better-sqlite3', 'typebox'],
    why: 'a store: its schema and SQL, not the core, not the other store, not HTTP',
  },
  'failures': {
    layers: ['contracts', 'db'],
    packages: ['better-sqlite3', 'typebox'],
    why: 'a store: its schema and SQL, not the core, not the other store, not HTTP',
  },
  'access': {
    layers: ['contracts', 'db'],
    packages: ['better-sqlite3', 'typebox'],
    why: 'a store (MQTT users, ACL rules): its schema and SQL, not the core, not another store, not HTTP',
  },
  'state': {
    layers: ['contracts', 'db'],
    packages: ['better-sqlite3', 'typebox'],
    why: 'a store (durable retained messages and sessions): SQL behind the contracts the core defines, never the core',
  },
  'audit': {
    layers: ['contracts', 'db'],
    packages: ['better-sqlite3', 'typebox'],
    why: 'a store (admin tokens and their roles, the audit trail): its schema and SQL, not the core, not another store, not HTTP',
  },
  'alerts': {
    layers: ['contracts', 'db'],
    packages: ['better-sqlite3', 'typebox'],
    why: 'a store (alert rules and history) and the pure evaluator: schema, SQL and counters, not the core, not another store, not HTTP',
  },
  'cluster': {
    layers: ['contracts', 'state'],
    packages: ['@nats-io/transport-node', '@nats-io/jetstream', '@nats-io/kv', '@nats-io/nats-core'],
    why: 'the data plane of cluster mode on NATS (message bus, JetStream stores, client-id ownership, nodes): behind the contracts the core defines, never the core',
  },
  'control': {
    layers: ['contracts', 'db', 'settings', 'failures', 'access'],
    packages: ['pg', 'better-sqlite3', 'typebox'],
    why: 'the control plane of cluster mode in PostgreSQL: it replicates the stores it serves (settings, failure log, MQTT users, ACL), never the core, never HTTP',
  },
  'errors.ts': {
    layers: ['contracts'],
    packages: ['@fastify/error', 'fastify', 'typebox'],
    why: 'HTTP error codes map the domain errors of contracts/',
  },
  'api.ts': {
    layers: ['contracts', 'errors.ts'],
    packages: ['fastify', 'typebox'],
    why: 'what every admin route module shares: validation, the admin guard, no caching, documented errors',
  },
  'config.ts': {
    layers: ['contracts'],
    packages: ['typebox'],
    why: 'boot configuration from the environment',
  },
  'plugins': {
    layers: ['contracts', 'mqtt', 'db', 'settings', 'failures', 'access', 'state', 'audit', 'alerts', 'cluster', 'control', 'errors.ts', 'config.ts'],
    packages: 'any',
    why: 'plugins wire the layers below into Fastify',
  },
  'routes': {
    layers: ['contracts', 'mqtt', 'settings', 'failures', 'access', 'state', 'audit', 'alerts', 'cluster', 'control', 'errors.ts', 'api.ts', 'config.ts'],
    packages: 'any',
    ownLayer: false,
    why: 'routes use the decorators the plugins declare, never a plugin module, nor another route module',
  },
  'app.ts': {
    layers: ALL_BUT_SERVER,
    packages: 'any',
    why: 'buildApp() assembles everything',
  },
  'cli': {
    layers: ['config.ts', 'db', 'contracts'],
    packages: ['better-sqlite3'],
    why: 'command-line tools for operators (npm run backup): the boot config and the database file, never the server',
  },
  'server.ts': {
    layers: ['app.ts', 'config.ts', 'contracts'],
    packages: [],
    why: 'the entry point: config -> buildApp() -> listen',
  },
}
