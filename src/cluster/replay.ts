// What a dead node may not have written: its sessions are written behind (~20 ms), and messages published in the
// seconds before a survivor takes its sessions up reach no node at all. So the cluster keeps every QoS 1 and 2
// message for a while in one JetStream stream (`<cluster>_kept`, in memory, `KEPT_FOR_MS`, capped at `KEPT_MAX_BYTES`,
// 3 replicas on a NATS cluster): it captures the messages the nodes publish on the subjects of those QoS (./subjects.ts
// `kept`), with no extra publish. The survivor that takes the sessions up reads the stream from when each session was
// last written to when its own subscriptions took over, and gives every message that matches a session to it (a few
// messages of the last write-behind interval may so come twice: QoS 1 and 2 there are at least once).
import { DeliverPolicy, DiscardPolicy, StorageType, type JetStreamManager, type JetStreamClient } from '@nats-io/jetstream'
import type { Message } from '../contracts/state.ts'
import type { Logger } from '../contracts/logger.ts'
import { decodeEnvelope } from './envelope.ts'

/** how long QoS 1/2 messages are kept for a dead node's sessions: far longer than finding a node dead takes */
export const KEPT_FOR_MS = 120_000
export const KEPT_MAX_BYTES = 256 * 1024 * 1024

/** how long one replay may keep fetching while the stream says messages are left */
const REPLAY_TIMEOUT_MS = 30_000

export const keptStream = (clusterName: string): string => `${clusterName}_kept`

/** Create (or bring to this configuration) the stream that keeps QoS 1/2 messages. */
export async function ensureKeptStream(jsm: JetStreamManager, clusterName: string, subjects: string[], replicas: number): Promise<void> {
  const config = {
    name: keptStream(clusterName),
    subjects,
    storage: StorageType.Memory,
    discard: DiscardPolicy.Old,
    max_age: KEPT_FOR_MS * 1_000_000,
    max_bytes: KEPT_MAX_BYTES,
    num_replicas: replicas,
  }
  try {
    await jsm.streams.add(config)
  } catch (err) {
    // made by another node already (perhaps of an older build): same name, take its configuration to this one
    if (!/already in use|exists/i.test(String((err as Error).message))) throw err
    await jsm.streams.update(config.name, { subjects, max_age: config.max_age, max_bytes: config.max_bytes })
  }
}

/** The stream's last sequence now: a replay stops there (later messages reach the new owner live). */
export async function keptEnd(jsm: JetStreamManager, clusterName: string): Promise<number> {
  return (await jsm.streams.info(keptStream(clusterName))).state.last_seq
}

/**
 * Each message kept since `from` (epoch ms) up to stream sequence `endSeq`, in order, with the time the stream took
 * its frame. Resolves with how many frames were read.
 */
export async function replayKept(js: JetStreamClient, clusterName: string, from: number, endSeq: number,
  each: (m: Message, at: number) => void, logger?: Logger): Promise<number> {
  if (endSeq === 0) return 0
  const consumer = await js.consumers.get(keptStream(clusterName), {
    deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(from).toISOString(),
  })
  let read = 0
  const deadline = Date.now() + REPLAY_TIMEOUT_MS
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 500, expires: 1000 })
    let got = 0
    for await (const m of batch) {
      got++
      read++
      const e = decodeEnvelope(m.data)
      const at = Math.floor(m.info.timestampNanos / 1_000_000)
      for (const message of e?.messages ?? []) {
        try {
          each(message, at)
        } catch (err) {
          logger?.error({ err, topic: message.topic }, 'replaying a kept message failed')
        }
      }
      if (m.seq >= endSeq) {
        await consumer.delete().catch(() => {})
        return read
      }
    }
    // an empty fetch ends the replay only when nothing is left for it (a loaded server may answer a fetch empty)
    if (got === 0) {
      const pending = await consumer.info(false).then((i) => i.num_pending, () => 0)
      if (pending === 0) break
      if (Date.now() > deadline) {
        logger?.warn({ pending, read }, `reading kept messages again gave up after ${REPLAY_TIMEOUT_MS} ms with ${pending} left`)
        break
      }
    }
  }
  await consumer.delete().catch(() => {})
  return read
}
