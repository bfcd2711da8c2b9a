// MQTT 5 topic aliases the broker assigns to what it sends one connection: the first topics sent get them, up to the
// client's Topic Alias Maximum (bounded) [MQTT-3.1.2-26]; a topic goes out once with its new alias, then empty.
import type { AliasUse } from './outgoing.ts'

export class OutboundAliases {
  readonly #max: number
  readonly #byTopic = new Map<string, number>()

  constructor(max: number) {
    this.#max = max
  }

  /** The alias to send `topic` with: the one the client knows, a new one while there is room, or null. */
  use(topic: string): AliasUse | null {
    const known = this.#byTopic.get(topic)
    if (known !== undefined) return { alias: known, known: true }
    return this.#byTopic.size < this.#max ? { alias: this.#byTopic.size + 1, known: false } : null
  }

  /** The PUBLISH went out: a new alias is known to the client from now on (one dropped before sending is not). */
  sent(topic: string, use: AliasUse | null): void {
    if (use !== null && !use.known) this.#byTopic.set(topic, use.alias)
  }
}
