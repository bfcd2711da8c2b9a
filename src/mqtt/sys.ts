// The broker's `$SYS/` topics, as Mosquitto users expect them: every sysIntervalSec a round of retained QoS 0
// messages (clients, messages, bytes, subscriptions, failures by reason, the settings version), each topic only when
// its value changed since it was last sent, the uptime always. They go through broker.publish(), so the ACL decides
// who may subscribe to and receive them, a `#` subscription never matches them [MQTT-4.7.2-1], and the broker keeps
// them apart from the retained store (current values for this process, never written to disk).
import { FAILURE_REASONS } from '../contracts/failure.ts'
import type { SettingsSnapshot } from '../contracts/settings.ts'
import type { Broker } from './broker.ts'

export interface SysOptions {
  /** what `$SYS/broker/version` says, e.g. "wsmqtt-broker version 0.1.0" */
  version: string
  /** epoch ms the uptime counts from (default: now) */
  startedAt?: number
}

export const SYS_UPTIME = '$SYS/broker/uptime'

export class SysPublisher {
  readonly #broker: Broker
  readonly #version: string
  readonly #startedAt: number
  /** the payload last sent per topic */
  readonly #sent = new Map<string, string>()
  #timer: NodeJS.Timeout | null = null
  #intervalSec = 0
  #stopped = false

  constructor(broker: Broker, opts: SysOptions) {
    this.#broker = broker
    this.#version = opts.version
    this.#startedAt = opts.startedAt ?? Date.now()
    broker.on('settingsApplied', this.#onSettings)
    this.#rearm(broker.settings.values.sysIntervalSec)
  }

  /** Stop for good (the broker is closing): no timer, no listener. The values sent stay retained. */
  stop(): void {
    this.#stopped = true
    this.#broker.off('settingsApplied', this.#onSettings)
    this.#clearTimer()
    this.#intervalSec = 0
  }

  /** Seconds between rounds in force (0 = none). */
  get intervalSec(): number {
    return this.#intervalSec
  }

  /** The current value of every topic, in the order they are sent. */
  values(now = Date.now()): Array<[topic: string, value: string]> {
    const st = this.#broker.stats
    const connected = st.clientsConnected
    const sessions = st.sessions
    const out: Array<[string, string]> = [
      ['$SYS/broker/version', this.#version],
      [SYS_UPTIME, `${Math.floor((now - this.#startedAt) / 1000)} seconds`],
      ['$SYS/broker/clients/connected', String(connected)],
      // offline persistent sessions; a connected client always has a session
      ['$SYS/broker/clients/disconnected', String(Math.max(0, sessions - connected))],
      ['$SYS/broker/clients/total', String(sessions)],
      ['$SYS/broker/messages/received', String(st.messagesPublished)],
      ['$SYS/broker/messages/sent', String(st.messagesDelivered)],
      ['$SYS/broker/messages/stored', String(st.retainedMessages)],
      ['$SYS/broker/retained messages/count', String(st.retainedMessages)],
      ['$SYS/broker/store/messages/count', String(st.queuedMessages)],
      ['$SYS/broker/subscriptions/count', String(st.subscriptions)],
      ['$SYS/broker/bytes/received', String(st.bytesReceived)],
      ['$SYS/broker/bytes/sent', String(st.bytesSent)],
    ]
    for (const reason of FAILURE_REASONS) out.push([`$SYS/broker/failures/${reason}`, String(st.failures[reason])])
    out.push(['$SYS/broker/settings/version', String(this.#broker.settings.version)])
    return out
  }

  /** Send one round now: the topics whose value changed, and the uptime. Returns how many were sent. */
  tick(now = Date.now()): number {
    let sent = 0
    for (const [topic, value] of this.values(now)) {
      if (topic !== SYS_UPTIME && this.#sent.get(topic) === value) continue
      this.#publish(topic, value)
      this.#sent.set(topic, value)
      sent++
    }
    return sent
  }

  #publish(topic: string, value: string): void {
    this.#broker.publishSys({ topic, payload: Buffer.from(value), qos: 0, retain: true, properties: null, expiresAt: 0, from: null })
  }

  readonly #onSettings = (next: SettingsSnapshot): void => {
    if (next.values.sysIntervalSec !== this.#intervalSec) this.#rearm(next.values.sysIntervalSec)
  }

  /** A new interval takes effect at once: a round now, the next one a whole interval later; 0 stops them. */
  #rearm(intervalSec: number): void {
    this.#clearTimer()
    this.#intervalSec = intervalSec
    if (this.#stopped || intervalSec <= 0) return
    this.#timer = setInterval(this.#onTimer, intervalSec * 1000)
    this.#timer.unref()
    this.#onTimer()
  }

  #clearTimer(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  /** (a timer has no caller to catch for it: a failing round is logged, and the next one tries again) */
  readonly #onTimer = (): void => {
    try {
      this.tick()
    } catch (err) {
      this.#broker.logger?.error({ err }, 'publishing the $SYS topics failed')
    }
  }
}
