// Boot configuration from the environment, checked by a TypeBox schema. Not hot-reloadable (settings are).
import { dirname, resolve } from 'node:path'
import Type from 'typebox'
import { Value } from 'typebox/value'

export const BootConfig = Type.Object({
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  host: Type.String({ minLength: 1, default: '0.0.0.0' }),
  dbPath: Type.String({ minLength: 1, default: './data/broker.db' }),
  adminToken: Type.Union([Type.String({ minLength: 8 }), Type.Null()], { default: null }),
  mqttPath: Type.String({ pattern: '^/', default: '/mqtt' }),
  logLevel: Type.Union(
    [
      Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
      Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent'),
    ],
    { default: 'info' },
  ),
  mqttTcpPort: Type.Union([Type.Integer({ minimum: 0, maximum: 65535 }), Type.Null()], { default: null }),
  mqttsPort: Type.Union([Type.Integer({ minimum: 0, maximum: 65535 }), Type.Null()], { default: null }),
  tlsCert: Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null }),
  tlsKey: Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null }),
  /** where retained messages and sessions are kept: in DB_PATH (they survive restarts), or in memory only */
  mqttState: Type.Union([Type.Literal('sqlite'), Type.Literal('memory')], { default: 'sqlite' }),
  /** log lines as JSON (one object a line), human-readable (pino-pretty), or pretty only when stdout is a terminal */
  logFormat: Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('pretty')], { default: 'auto' }),
  /** on SIGTERM/SIGINT, how long /readyz answers 503 before connections are closed (a load balancer drains the node) */
  shutdownDrainMs: Type.Integer({ minimum: 0, maximum: 600_000, default: 0 }),
  /** where POST /api/admin/backup writes (null: the folder `backups` beside DB_PATH, see backupDirOf) */
  backupDir: Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null }),
  /** requests per minute from one address to /api/* (and, counted apart, to /metrics); 0 = no limit */
  rateLimitApiPerMin: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 1200 }),
  /** failed admin authentications (401) per minute from one address before its /api/* requests get 429; 0 = no limit */
  rateLimitAuthFailuresPerMin: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 20 }),
  /**
   * on: a connect or keepalive deadline gives back the time the broker itself was stalled (a timeout measures the
   * client, never the broker); off: deadlines run on the wall clock alone, as before (for comparisons)
   */
  stallCredit: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'on' }),
  /** cluster mode (with databaseUrl, both or neither): NATS with JetStream carries messages and the shared MQTT state */
  natsUrl: Type.Union([Type.String({ pattern: '^(nats|tls)://' }), Type.Null()], { default: null }),
  /** cluster mode (with natsUrl): PostgreSQL holds the control plane (settings, failure log, MQTT users, ACL) */
  databaseUrl: Type.Union([Type.String({ pattern: '^postgres(ql)?://' }), Type.Null()], { default: null }),
  /** this node's name in the cluster (null: hostname:port, see nodeIdOf) */
  nodeId: Type.Union([Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' }), Type.Null()], { default: null }),
  /**
   * the cluster's name: the prefix of its NATS subjects, JetStream buckets and streams, so that clusters (and test
   * runs) can share one NATS
   */
  clusterName: Type.String({ pattern: '^[A-Za-z0-9_-]{1,32}$', default: 'mqtt' }),
})
export type BootConfig = Type.Static<typeof BootConfig>

/**
 * The listen backlog of every listener (HTTP/WebSocket, MQTT over TCP and TLS): connections the kernel completes
 * before the broker accepts them. Node's default of 511 drops SYNs in a reconnect storm of thousands of clients, and
 * each dropped SYN costs its client a retransmission 1 s, 3 s, 7 s later; the kernel caps it at net.core.somaxconn.
 */
export const LISTEN_BACKLOG = 4096

/** The defaults, read from the schema's `default`s (so they are written once). */
export const DEFAULT_CONFIG: Readonly<BootConfig> = Object.freeze(Value.Default(BootConfig, {}) as BootConfig)

/** Thrown for a bad environment; server.ts prints the message alone, without a stack. */
export class ConfigError extends Error {
  readonly code = 'ERR_BOOT_CONFIG'
}

const ENV_NAMES: Record<keyof BootConfig, string> = {
  port: 'PORT', host: 'HOST', dbPath: 'DB_PATH', adminToken: 'ADMIN_TOKEN', mqttPath: 'MQTT_PATH', logLevel: 'LOG_LEVEL',
  mqttTcpPort: 'MQTT_TCP_PORT', mqttsPort: 'MQTTS_PORT', tlsCert: 'TLS_CERT', tlsKey: 'TLS_KEY', mqttState: 'MQTT_STATE',
  logFormat: 'LOG_FORMAT', shutdownDrainMs: 'SHUTDOWN_DRAIN_MS', backupDir: 'BACKUP_DIR',
  rateLimitApiPerMin: 'RATE_LIMIT_API_PER_MIN', rateLimitAuthFailuresPerMin: 'RATE_LIMIT_AUTH_FAILURES_PER_MIN',
  stallCredit: 'STALL_CREDIT', natsUrl: 'NATS_URL', databaseUrl: 'DATABASE_URL', nodeId: 'NODE_ID',
  clusterName: 'CLUSTER_NAME',
}

/** The variables read as whole numbers (text that is not one is kept, so the schema names the variable). */
const INTEGER_VARS = [
  ['mqttTcpPort', 'MQTT_TCP_PORT'], ['mqttsPort', 'MQTTS_PORT'], ['shutdownDrainMs', 'SHUTDOWN_DRAIN_MS'],
  ['rateLimitApiPerMin', 'RATE_LIMIT_API_PER_MIN'], ['rateLimitAuthFailuresPerMin', 'RATE_LIMIT_AUTH_FAILURES_PER_MIN'],
] as const

export function loadConfig(env: NodeJS.ProcessEnv = process.env): BootConfig {
  const raw: Record<string, unknown> = { ...DEFAULT_CONFIG }
  if (env.PORT !== undefined && env.PORT !== '') raw.port = /^\d+$/.test(env.PORT) ? Number(env.PORT) : env.PORT
  if (env.HOST) raw.host = env.HOST
  if (env.DB_PATH) raw.dbPath = env.DB_PATH
  if (env.ADMIN_TOKEN) raw.adminToken = env.ADMIN_TOKEN
  if (env.MQTT_PATH) raw.mqttPath = env.MQTT_PATH
  if (env.LOG_LEVEL) raw.logLevel = env.LOG_LEVEL
  for (const [key, name] of INTEGER_VARS) {
    const v = env[name]
    if (v !== undefined && v !== '') raw[key] = /^\d+$/.test(v) ? Number(v) : v
  }
  if (env.TLS_CERT) raw.tlsCert = env.TLS_CERT
  if (env.TLS_KEY) raw.tlsKey = env.TLS_KEY
  if (env.MQTT_STATE) raw.mqttState = env.MQTT_STATE
  if (env.LOG_FORMAT) raw.logFormat = env.LOG_FORMAT
  if (env.BACKUP_DIR) raw.backupDir = env.BACKUP_DIR
  if (env.STALL_CREDIT) raw.stallCredit = env.STALL_CREDIT
  if (env.NATS_URL) raw.natsUrl = env.NATS_URL
  if (env.DATABASE_URL) raw.databaseUrl = env.DATABASE_URL
  if (env.NODE_ID) raw.nodeId = env.NODE_ID
  if (env.CLUSTER_NAME) raw.clusterName = env.CLUSTER_NAME
  const errors = [...Value.Errors(BootConfig, raw)]
  if (errors.length > 0) {
    // one message per variable: the first, most specific one (a union adds "must be null", "anyOf" after it)
    const byKey = new Map<string, string>()
    for (const e of errors) {
      const key = e.instancePath.replace(/^\//, '') as keyof BootConfig
      const name = ENV_NAMES[key] ?? key
      if (!byKey.has(name)) byKey.set(name, `${name}: ${e.message}`)
    }
    const parts = [...byKey.values()]
    throw new ConfigError(`invalid environment: ${parts.join('; ')}`)
  }
  const tlsPair = tlsPairProblem(raw as BootConfig)
  if (tlsPair !== null) throw new ConfigError(`invalid environment: ${tlsPair}`)
  if (raw.mqttsPort != null && raw.tlsCert == null) {
    throw new ConfigError('invalid environment: MQTTS_PORT: needs TLS_CERT and TLS_KEY (the certificate MQTTS serves)')
  }
  if ((raw.natsUrl === null) !== (raw.databaseUrl === null)) {
    throw new ConfigError(raw.natsUrl === null
      ? 'invalid environment: NATS_URL: must be set when DATABASE_URL is (cluster mode needs both, or neither)'
      : 'invalid environment: DATABASE_URL: must be set when NATS_URL is (cluster mode needs both, or neither)')
  }
  return raw as BootConfig
}

/** Cluster mode: NATS_URL and DATABASE_URL are both set. */
export const isClustered = (config: Pick<BootConfig, 'natsUrl' | 'databaseUrl'>): boolean =>
  config.natsUrl !== null && config.databaseUrl !== null

/** This node's id: NODE_ID, or the host's name and the HTTP port. */
export function nodeIdOf(config: Pick<BootConfig, 'nodeId' | 'port'>, hostname: string, port = config.port): string {
  return config.nodeId ?? `${hostname}:${port}`.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64)
}

/** TLS_CERT and TLS_KEY come together or not at all: what is wrong, naming the missing variable, or null. */
export function tlsPairProblem(config: Pick<BootConfig, 'tlsCert' | 'tlsKey'>): string | null {
  if ((config.tlsCert === null) === (config.tlsKey === null)) return null
  return config.tlsCert === null
    ? 'TLS_CERT: must be set when TLS_KEY is (both or neither)'
    : 'TLS_KEY: must be set when TLS_CERT is (both or neither)'
}

/** Where backups go: BACKUP_DIR, or the folder `backups` beside DB_PATH (beside ./data/broker.db for `:memory:`). */
export function backupDirOf(config: Pick<BootConfig, 'backupDir' | 'dbPath'>): string {
  if (config.backupDir !== null) return resolve(config.backupDir)
  const db = config.dbPath === ':memory:' || config.dbPath === '' ? DEFAULT_CONFIG.dbPath : config.dbPath
  return resolve(dirname(db), 'backups')
}
