// GET /api/nodes: the nodes of the cluster as their heartbeats say (src/cluster/nodes.ts), each flagged `behind` when
// it runs an older settings version than the newest any node runs or this node's store holds. Outside cluster mode
// it lists this node alone. A viewer token reads it. Node ids and addresses are data: the UI shows them as text.
import { hostname } from 'node:os'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { Compile } from 'typebox/compile'
import { nodeIdOf } from '../config.ts'
import { adminApi } from '../api.ts'
import type { NodeView } from '../cluster/nodes.ts'
import type { Assert, Same } from '../contracts/same.ts'

const NodeRow = Type.Object({
  id: Type.String({ description: 'NODE_ID, or host:port' }),
  address: Type.String({ description: 'where its HTTP/WebSocket listener is (host:port; empty before it listens)' }),
  upSince: Type.String({ format: 'date-time' }),
  connections: Type.Integer({ description: 'open MQTT connections' }),
  settingsVersion: Type.Integer({ description: 'the settings version it runs' }),
  lastHeartbeat: Type.String({ format: 'date-time' }),
  alive: Type.Boolean({ description: 'its heartbeat changed within the last 3 s (or it answered a ping), and it is not leaving' }),
  self: Type.Boolean({ description: 'the node that answered' }),
  behind: Type.Boolean({ description: 'it runs an older settings version than newestSettingsVersion' }),
})
type NodeRow = Type.Static<typeof NodeRow>
/** a heartbeat as a row shows it: a record of another build (a field missing or of another type) is left out */
const isRow = Compile(Type.Omit(NodeRow, ['behind']))

export type RowIsTheView = Assert<Same<Omit<NodeRow, 'behind'>, Omit<NodeView, 'boot' | 'leaving'>>>

const NodesAnswer = Type.Object({
  newestSettingsVersion: Type.Integer({ description: 'the newest settings version any node runs or this node\'s store holds' }),
  nodes: Type.Array(NodeRow, { description: 'sorted by id' }),
})

/** `host:port` of a listening server, '' before it listens. */
const addressOf = (a: AddressInfo | string | null): string =>
  a === null ? '' : typeof a === 'string' ? a : `${a.address}:${a.port}`

export default async function nodeRoutes(app: FastifyInstance) {
  adminApi(app)
  // outside cluster mode: when this node started (the route is registered while the app boots)
  const upSince = new Date().toISOString()

  /** This node, as it is now. */
  const selfView = (): Omit<NodeView, 'boot' | 'leaving'> => {
    const listening = app.server.address()
    // (PORT=0: the port it was given, not 0)
    const port = listening !== null && typeof listening === 'object' ? listening.port : app.config.port
    return {
      id: app.cluster?.nodeId ?? nodeIdOf(app.config, hostname(), port),
      address: addressOf(listening),
      upSince,
      connections: app.broker.clientCount,
      settingsVersion: app.settingsStore.current().version,
      lastHeartbeat: new Date().toISOString(),
      alive: true,
      self: true,
    }
  }

  app.withTypeProvider<TypeBoxTypeProvider>().get('/api/nodes', {
    config: { role: 'viewer' },
    schema: {
      tags: ['nodes'],
      summary: 'The nodes of the cluster (this node alone outside cluster mode), each flagged when its settings version is behind',
      response: { 200: NodesAnswer },
    },
  }, async () => {
    const self = selfView()
    let nodes: Omit<NodeView, 'boot'>[] = [self]
    if (app.cluster !== null) {
      const listed = (await app.cluster.nodes.list()).filter((n) => isRow.Check(n))
      // this node's own row with what it runs now (its heartbeat may be a second old); listed even if the bucket lost it
      const own = listed.find((n) => n.self)
      nodes = listed.map((n) => (n.self ? { ...n, connections: self.connections, settingsVersion: self.settingsVersion } : n))
      if (own === undefined) nodes = [...nodes, self].sort((a, b) => a.id.localeCompare(b.id))
    }
    const newestSettingsVersion = Math.max(self.settingsVersion, ...nodes.map((n) => n.settingsVersion))
    return {
      newestSettingsVersion,
      nodes: nodes.map((n): NodeRow => ({
        id: n.id, address: n.address, upSince: n.upSince, connections: n.connections, settingsVersion: n.settingsVersion,
        lastHeartbeat: n.lastHeartbeat, alive: n.alive, self: n.self, behind: n.settingsVersion < newestSettingsVersion,
      })),
    }
  })
}
