// GET /metrics in Prometheus text format, from the app's own prom-client Registry (so that several apps in one
// process, as in tests, never share series). Broker counters are read on scrape from broker.stats; failures by
// reason and connect latency come from the broker's events; the failure log and the MQTT state's SQLite write-behind
// report their own.
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { FAILURE_REASONS, type FailureEvent } from '../contracts/failure.ts'
import { TRANSPORTS } from '../contracts/connection.ts'
import type { BrokerStats, ConnectedEvent } from '../mqtt/types.ts'

type CountedStat = { [K in keyof BrokerStats]: BrokerStats[K] extends number ? K : never }[keyof BrokerStats]

declare module 'fastify' {
  interface FastifyInstance {
    metricsRegistry: Registry
  }
}

/** Connect latency buckets, seconds: from a LAN client (ms) to the largest connectTimeoutMs (600 s). */
const LATENCY_BUCKETS_SEC = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
/** Write-behind transaction buckets, seconds: from a few rows (0.1 ms) to a stalled disk. */
const STATE_WRITE_BUCKETS_SEC = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

export default fp(
  async (app) => {
    const register = new Registry()
    collectDefaultMetrics({ register })
    const broker = app.broker
    const failureLog = app.failureLog

    // A counter that mirrors a monotonic value read on scrape (a broker stat, or what the function returns).
    const mirrored = (name: string, help: string, key: CountedStat | (() => number)) =>
      new Counter({
        name, help, registers: [register],
        collect() {
          this.reset()
          this.inc(typeof key === 'function' ? key() : broker.stats[key])
        },
      })
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name, help, registers: [register],
        collect() {
          this.set(read())
        },
      })

    gauge('mqtt_connections', 'Open WebSocket connections (waiting for CONNECT or connected)', () => broker.stats.connectionsOpen)
    gauge('mqtt_clients_connected', 'Connected MQTT clients', () => broker.stats.clientsConnected)
    mirrored('mqtt_connects_total', 'Successful MQTT connects', 'connectsTotal')
    mirrored('mqtt_packets_received_total', 'MQTT packets received', 'packetsReceived')
    mirrored('mqtt_packets_sent_total', 'MQTT packets sent', 'packetsSent')
    mirrored('mqtt_bytes_received_total', 'Bytes received from MQTT clients', 'bytesReceived')
    mirrored('mqtt_bytes_sent_total', 'Bytes sent to MQTT clients', 'bytesSent')
    mirrored('mqtt_messages_published_total', 'PUBLISH packets accepted from clients', 'messagesPublished')
    mirrored('mqtt_messages_delivered_total', 'PUBLISH packets delivered to subscribers', 'messagesDelivered')
    mirrored('mqtt_messages_dropped_total',
      'Messages not delivered: QoS 0 to a client that stopped reading, a full offline queue, over a client\'s Maximum Packet Size',
      'messagesDropped')
    new Counter({
      name: 'mqtt_acl_denied_total',
      help: 'What the ACL refused, by action: publish (a PUBLISH not routed), subscribe (a SUBSCRIBE filter refused), deliver (a message not sent to a subscription a later rule forbids)',
      labelNames: ['action'] as const,
      registers: [register],
      collect() {
        const st = broker.stats
        this.reset()
        this.inc({ action: 'publish' }, st.aclDeniedPublish)
        this.inc({ action: 'subscribe' }, st.aclDeniedSubscribe)
        this.inc({ action: 'deliver' }, st.aclDeniedDeliver)
      },
    })
    gauge('mqtt_retained_messages', 'Retained messages held', () => broker.stats.retainedMessages)
    gauge('mqtt_retained_bytes', 'Bytes of retained payloads and topics held (bounded by maxRetainedBytes)', () => broker.stats.retainedBytes)
    new Gauge({
      name: 'mqtt_sessions',
      help: 'MQTT sessions held, by state: online (its client is connected) or offline (a persistent session waiting for its client)',
      labelNames: ['state'] as const,
      registers: [register],
      collect() {
        const online = broker.stats.clientsConnected
        this.set({ state: 'online' }, online)
        this.set({ state: 'offline' }, Math.max(0, broker.stats.sessions - online))
      },
    })
    gauge('mqtt_queued_messages', 'QoS 1/2 messages waiting in sessions\' queues (offline, or over the client\'s Receive Maximum)',
      () => broker.stats.queuedMessages)
    gauge('mqtt_subscriptions', 'Subscriptions held', () => broker.stats.subscriptions)
    gauge('mqtt_settings_version', 'Settings version the broker runs on', () => broker.settings.version)

    const failures = new Counter({
      name: 'mqtt_connection_failures_total',
      help: 'Connection failures by reason (see the failure log for each one)',
      labelNames: ['reason'] as const,
      registers: [register],
    })
    for (const reason of FAILURE_REASONS) failures.inc({ reason }, 0)
    const failuresByTransport = new Counter({
      name: 'mqtt_connection_failures_by_transport_total',
      help: 'Connection failures by transport (ws, wss, tcp, tls) and reason',
      labelNames: ['transport', 'reason'] as const,
      registers: [register],
    })
    new Gauge({
      name: 'mqtt_connections_by_transport',
      help: 'Open connections (waiting for CONNECT or connected) by transport',
      labelNames: ['transport'] as const,
      registers: [register],
      collect() {
        const counts = broker.connectionsByTransport()
        for (const transport of TRANSPORTS) this.set({ transport }, counts[transport])
      },
    })
    const latency = new Histogram({
      name: 'mqtt_connect_latency_seconds',
      help: 'Time from WebSocket open to a complete CONNECT, successful connections',
      buckets: LATENCY_BUCKETS_SEC,
      registers: [register],
    })

    new Counter({
      name: 'mqtt_failure_log_events_total',
      help: 'Failure events handed to the failure log, by outcome (written as a row, folded into a flood summary, dropped)',
      labelNames: ['outcome'] as const,
      registers: [register],
      collect() {
        const s = failureLog.stats()
        this.reset()
        this.inc({ outcome: 'written' }, s.written)
        this.inc({ outcome: 'folded' }, s.folded)
        this.inc({ outcome: 'dropped' }, s.dropped)
      },
    })
    gauge('mqtt_failure_log_pending', 'Failure records waiting for the next write', () => failureLog.stats().pending)
    gauge('mqtt_failure_log_rows', 'Rows in the failure log', () => failureLog.stats().rows)
    const tls = app.tlsCertificates
    gauge('mqtt_tls_certificate_expiry_seconds', 'When the TLS certificate in force expires, seconds since the epoch (0 without TLS)',
      () => (tls.current()?.notAfter.getTime() ?? 0) / 1000)
    mirrored('mqtt_tls_certificate_reload_failures_total', 'TLS certificate re-reads that found a bad pair (the one in force stayed)',
      () => tls.reloadFailures)

    // The SQLite write-behind of the MQTT state (MQTT_STATE=sqlite; with MQTT_STATE=memory these stay at 0)
    const writeBehind = app.mqttState.writeBehind
    const stateWrites = new Histogram({
      name: 'mqtt_state_write_seconds',
      help: 'Duration of the write-behind transactions that stored MQTT state (sessions, retained messages) in SQLite',
      buckets: STATE_WRITE_BUCKETS_SEC,
      registers: [register],
    })
    mirrored('mqtt_state_write_rows_total', 'Rows of MQTT state written or deleted in SQLite', () => writeBehind?.stats.rows ?? 0)
    mirrored('mqtt_state_write_errors_total', 'Write-behind transactions of MQTT state that failed (the changes are kept and retried)',
      () => writeBehind?.stats.errors ?? 0)
    const onStateWrite = (ms: number) => stateWrites.observe(ms / 1000)
    writeBehind?.on('flush', onStateWrite)

    // Cluster mode (NATS_URL): the message bus between nodes, client-id ownership, the nodes (all 0 on one node)
    const cluster = app.cluster
    const bus = () => cluster?.bus.stats
    mirrored('mqtt_cluster_messages_sent_total', 'Messages handed to NATS for the other nodes', () => bus()?.sent ?? 0)
    mirrored('mqtt_cluster_messages_received_total', 'Messages from other nodes routed here', () => bus()?.received ?? 0)
    mirrored('mqtt_cluster_messages_too_large_total', 'Messages over the NATS max_payload, served on this node only', () => bus()?.tooLarge ?? 0)
    gauge('mqtt_cluster_subscriptions', 'NATS subscriptions this node holds for the filters of its sessions', () => bus()?.subscriptions ?? 0)
    gauge('mqtt_cluster_client_ids_owned', 'Client ids this node owns in the cluster', () => cluster?.ownership.held ?? 0)
    mirrored('mqtt_cluster_takeovers_total', 'Client ids taken from another living node (its session released to this one)', () => cluster?.ownership.takeovers ?? 0)
    mirrored('mqtt_cluster_client_ids_lost_total', 'Client ids another node took while this one could not hear its release request (found when NATS came back; the connection here was closed)', () => cluster?.ownership.lostFound ?? 0)
    gauge('mqtt_cluster_nats_connected', 'Whether this node is connected to NATS (1) or reconnecting (0); 1 on one node', () => (cluster === null || cluster.natsStatus().connected ? 1 : 0))
    mirrored('mqtt_cluster_nats_reconnects_total', 'Times this node\'s NATS connection came back', () => cluster?.natsStatus().reconnects ?? 0)

    // Alerts: what fires now, by rule name, and the webhook deliveries (src/plugins/alerts.ts)
    const alerts = app.alerts
    new Gauge({
      name: 'mqtt_alert_firing',
      help: 'Whether an alert rule fires now (1) or not (0), by rule name',
      labelNames: ['rule'] as const,
      registers: [register],
      collect() {
        this.reset()
        for (const r of alerts.list()) this.set({ rule: r.name }, r.firing ? 1 : 0)
      },
    })
    new Counter({
      name: 'mqtt_alert_webhook_deliveries_total',
      help: 'Alert webhook deliveries by result: ok (2xx), failed (4xx, or still failing after the retries), dropped (the queue was full)',
      labelNames: ['result'] as const,
      registers: [register],
      collect() {
        const st = alerts.webhookStats()
        this.reset()
        this.inc({ result: 'ok' }, st.ok)
        this.inc({ result: 'failed' }, st.failed)
        this.inc({ result: 'dropped' }, st.dropped)
      },
    })
    mirrored('mqtt_alert_webhook_retries_total', 'Alert webhook tries repeated after a network error, a timeout or a 5xx', () => alerts.webhookStats().retries)
    gauge('mqtt_alert_webhook_queue', 'Alert webhook deliveries waiting (bounded; the oldest is dropped when full)', () => alerts.webhookStats().queued)

    const onFailure = (e: FailureEvent) => {
      failures.inc({ reason: e.reason })
      failuresByTransport.inc({ transport: e.transport, reason: e.reason })
    }
    const onConnected = (e: ConnectedEvent) => {
      if (Number.isFinite(e.connectLatencyMs) && e.connectLatencyMs >= 0) latency.observe(e.connectLatencyMs / 1000)
    }
    broker.on('failure', onFailure)
    broker.on('connected', onConnected)
    app.addHook('onClose', async () => {
      broker.off('failure', onFailure)
      broker.off('connected', onConnected)
      writeBehind?.off('flush', onStateWrite)
    })

    app.decorate('metricsRegistry', register)
    app.get('/metrics', {
      schema: {
        tags: ['metrics'],
        summary: 'Prometheus metrics (text exposition format); no token needed',
        produces: ['text/plain'],
      },
    }, async (_request, reply) => {
      const text = await register.metrics()
      return reply.header('content-type', register.contentType).send(text)
    })
  },
  { name: 'metrics', dependencies: ['broker', 'failures', 'tls', 'cluster', 'mqtt-state', 'alerts'] },
)
