// Wills: the message a client asked to be published when its connection ends without a normal DISCONNECT
// [MQTT-3.1.2-8]; v5: after its Will Delay, or when its session ends if sooner [MQTT-3.1.3-9]. Delayed ones wait in
// KeyedTimers (any delay, even past what one Node timer holds), one per client id.
import { expiryFrom, type Message, type Will } from './message.ts'
import { KeyedTimers } from './keyed-timers.ts'

export class Wills {
  readonly #publish: (m: Message, clientId: string) => void
  readonly #delayed: KeyedTimers<Will>

  constructor(publish: (m: Message, clientId: string) => void, onError: (err: unknown, clientId: string) => void) {
    this.#publish = publish
    this.#delayed = new KeyedTimers<Will>((clientId, will) => this.#send(clientId, will), onError)
  }

  /** The connection of `clientId` ended without DISCONNECT: publish now, or after the delay. */
  schedule(clientId: string, will: Will, sessionExpirySec: number): void {
    const delaySec = Math.min(will.delaySec, sessionExpirySec)
    if (delaySec <= 0) this.#send(clientId, will)
    else this.#delayed.set(clientId, Date.now() + delaySec * 1000, will)
  }

  /** A Will due at `dueAt` (epoch ms; a past one is published now): one kept across a restart. */
  scheduleAt(clientId: string, will: Will, dueAt: number): void {
    if (dueAt <= Date.now()) this.#send(clientId, will)
    else this.#delayed.set(clientId, dueAt, will)
  }

  /** Drop a Will waiting for its delay (the client is back); `publishNow` when its session ends before the delay. */
  cancel(clientId: string, publishNow = false): void {
    const will = this.#delayed.take(clientId)
    if (will !== undefined && publishNow) this.#send(clientId, will)
  }

  /** Shutdown: nothing waits any more (a Will is for a connection that failed, not for a server that stops). */
  clear(): void {
    this.#delayed.clear()
  }

  #send(clientId: string, will: Will): void {
    this.#publish({
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      properties: will.properties,
      expiresAt: expiryFrom(will.expirySec, Date.now()),
      from: clientId,
    }, clientId)
  }
}
