// Retained messages: the last retained message per topic, delivered to new matching subscriptions.
// Behind a small interface so that a clustered store can replace the in-memory default.
import type { Message } from './message.ts'
import { topicMatches } from './topics.ts'

export interface RetainedStore {
  /** Set the retained message of its topic; an empty payload clears it [MQTT-3.3.1-10, -11]. */
  set(message: Message): void
  /** Retained messages whose topic matches `filter` (expired ones are dropped). */
  match(filter: string, now: number): Message[]
  readonly size: number
}

export class MemoryRetainedStore implements RetainedStore {
  readonly #byTopic = new Map<string, Message>()

  get size(): number {
    return this.#byTopic.size
  }

  set(message: Message): void {
    if (message.payload.length === 0) this.#byTopic.delete(message.topic)
    else this.#byTopic.set(message.topic, message)
  }

  match(filter: string, now: number): Message[] {
    const out: Message[] = []
    if (!filter.includes('+') && !filter.includes('#')) {
      const m = this.#byTopic.get(filter)
      if (m !== undefined) this.#keepIfLive(m, now, out)
      return out
    }
    for (const m of this.#byTopic.values()) {
      if (topicMatches(filter, m.topic)) this.#keepIfLive(m, now, out)
    }
    return out
  }

  #keepIfLive(m: Message, now: number, out: Message[]): void {
    if (m.expiresAt !== 0 && m.expiresAt <= now) this.#byTopic.delete(m.topic)
    else out.push(m)
  }
}
