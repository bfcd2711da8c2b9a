// Outbound topic aliases (`npm run bench -- --scenarios=alias`): the bytes a subscriber receives per message in a
// fan-out of long topic names, with a Topic Alias Maximum announced and without, on ours and (for a peer's view of
// the same stream) Mosquitto. Once per broker; generator side in bench/gen/alias.ts.
import { startBroker, type PeerName } from './peers/brokers.ts'
import { sleep } from './lib/proc.ts'
import { markdownTable, fmt } from './lib/report.ts'
import { genProcess } from './attacks.ts'
import type { TopicAliasJob } from './gen/alias.ts'
import type { Result } from './gen/scenarios.ts'

export type AliasParams = Omit<TopicAliasJob, 'scenario' | 'url' | 'pid'>

export const ALIAS_DEFAULTS: AliasParams = { subscribers: 10, topics: 10, topicLength: 100, messages: 5000, payloadBytes: 32, aliasMaximum: 16 }

export interface AliasRun { peer: PeerName, result?: Result, error?: string }

export async function runAlias(peers: PeerName[], params: Partial<AliasParams>): Promise<AliasRun[]> {
  const p = { ...ALIAS_DEFAULTS, ...params }
  const runs: AliasRun[] = []
  for (const peer of peers) {
    const b = await startBroker(peer)
    const gen = genProcess({ scenario: 'topic-alias', url: b.wsUrl, pid: b.pid, ...p })
    try {
      const result = await Promise.race([gen.result, sleep(120_000).then(() => { throw new Error('no result in 120 s') })])
      runs.push({ peer, result })
      const d = result.details
      console.log(`  alias ${peer.padEnd(10)} ${d.withoutAliases} -> ${d.withAliases} bytes per message (${result.value} saved, ${d.savedPct}%)`)
    } catch (err) {
      runs.push({ peer, error: (err as Error).message })
      console.log(`  alias ${peer.padEnd(10)} FAILED: ${(err as Error).message.split('\n')[0]}`)
    } finally {
      gen.dismiss()
      await b.stop()
    }
  }
  return runs
}

export function aliasReport(runs: AliasRun[]): string {
  if (!runs.length) return ''
  const d = runs.find((r) => r.result)?.result?.details
  const cell = (r: AliasRun, k: string) => (r.result ? fmt(Number(r.result.details[k])) : 'failed')
  const lines = [
    ['bytes per message, no Topic Alias Maximum', ...runs.map((r) => cell(r, 'withoutAliases'))],
    [`bytes per message, Topic Alias Maximum ${d?.aliasMaximum ?? '?'}`, ...runs.map((r) => cell(r, 'withAliases'))],
    ['saved per message (bytes)', ...runs.map((r) => (r.result ? fmt(r.result.value) : 'failed'))],
    ['saved (%)', ...runs.map((r) => cell(r, 'savedPct'))],
  ]
  const notes = d ? [
    `${d.subscribersPerGroup} MQTT 5 subscribers with a Topic Alias Maximum of ${d.aliasMaximum} and ${d.subscribersPerGroup} without, all on bench/alias/#;`,
    `${fmt(Number(d.messages))} QoS 0 messages of ${d.payloadBytes} bytes published in turn to ${d.topics} topics of ${d.topicLength} characters. Bytes: what each`,
    `subscriber's TCP socket read during the publishing (WebSocket frames included), / messages.`,
  ] : []
  return [`## Outbound topic aliases: bytes per message`, markdownTable(['', ...runs.map((r) => r.peer)], lines), notes.join('\n')].join('\n\n')
}
