// Outbound topic aliases, generator side (`npm run bench -- --scenarios=alias`, bench/alias.ts): a fan-out of long
// topic names to MQTT 5 subscribers over WebSocket, half of them announcing a Topic Alias Maximum and half not, and
// the bytes each group received per message (WebSocket frames included, counted on the TCP socket).
import net from 'node:net'
import { WebSocket } from 'ws'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { sleep } from '../lib/proc.ts'
import type { Result } from './scenarios.ts'

export interface TopicAliasJob {
  scenario: 'topic-alias'
  url: string
  pid: number
  /** subscribers per group (with aliases, without) */
  subscribers: number
  /** distinct topics, each `topicLength` characters, published in turn */
  topics: number
  topicLength: number
  messages: number
  payloadBytes: number
  /** the Topic Alias Maximum the first group announces */
  aliasMaximum: number
}

const V5 = { protocolVersion: 5 }

interface V5Client { ws: WebSocket, socket: net.Socket, received: number, packets: Packet[] }

function open(url: string, clientId: string, aliasMaximum: number): Promise<V5Client> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket | null = null
    const ws = new WebSocket(url, 'mqtt', {
      perMessageDeflate: false,
      createConnection: (o: net.NetConnectOpts) => (socket = net.connect(o)),
    } as ConstructorParameters<typeof WebSocket>[2])
    const parser = mqttPacket.parser(V5)
    const client: V5Client = { ws, socket: null as unknown as net.Socket, received: 0, packets: [] }
    parser.on('packet', (p: Packet) => {
      if (p.cmd === 'connack') return resolve(client)
      if (p.cmd === 'publish') client.received++
      else client.packets.push(p)
    })
    ws.on('message', (d: Buffer) => parser.parse(d))
    ws.once('error', reject)
    ws.once('open', () => {
      client.socket = socket!
      ws.send(mqttPacket.generate({
        cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 60, clientId,
        properties: aliasMaximum > 0 ? { topicAliasMaximum: aliasMaximum } : {},
      } as Packet, V5))
    })
  })
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`topic-alias: ${what} not within ${ms} ms`)
    await sleep(20)
  }
}

export async function topicAlias(job: TopicAliasJob): Promise<Result> {
  const groups = [job.aliasMaximum, 0]
  const subs: V5Client[][] = []
  for (const max of groups) {
    subs.push(await Promise.all(Array.from({ length: job.subscribers }, (_, i) => open(job.url, `alias-${max}-${i}`, max))))
  }
  for (const c of subs.flat()) {
    c.ws.send(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bench/alias/#', qos: 0 }] } as Packet, V5))
  }
  await until(() => subs.flat().every((c) => c.packets.some((p) => p.cmd === 'suback')), 10_000, 'every SUBACK')
  const topics = Array.from({ length: job.topics }, (_, i) => {
    const head = `bench/alias/${i}/`
    return head + 'x'.repeat(Math.max(0, job.topicLength - head.length))
  })
  const pub = await open(job.url, 'alias-publisher', 0)
  const bytesBefore = subs.map((g) => g.map((c) => c.socket.bytesRead))
  const payload = Buffer.alloc(job.payloadBytes, 0x61)
  for (let m = 0; m < job.messages; m++) {
    pub.ws.send(mqttPacket.generate({ cmd: 'publish', topic: topics[m % topics.length], payload, qos: 0, retain: false, dup: false } as Packet, V5))
    if (m % 200 === 199) await sleep(1) // let the broker and the subscribers keep up
  }
  await until(() => subs.flat().every((c) => c.received >= job.messages), 30_000, 'every delivery')
  const perMessage = subs.map((g, k) => g.reduce((a, c, i) => a + c.socket.bytesRead - bytesBefore[k][i], 0) / (g.length * job.messages))
  for (const c of [...subs.flat(), pub]) c.ws.terminate()
  const [withAliases, without] = perMessage
  return {
    value: Math.round((without - withAliases) * 10) / 10,
    unit: 'bytes saved per message',
    details: {
      withAliases: Math.round(withAliases * 10) / 10, withoutAliases: Math.round(without * 10) / 10,
      savedPct: Math.round(((without - withAliases) * 1000) / without) / 10,
      topics: job.topics, topicLength: job.topicLength, messages: job.messages, payloadBytes: job.payloadBytes,
      subscribersPerGroup: job.subscribers, aliasMaximum: job.aliasMaximum,
    },
  }
}
