// PLACEHOLDER by the lead so the app builds while the owner writes the real file: the owner replaces it wholesale.
import fp from 'fastify-plugin'
import type { FailureEvent } from '../failures/schema.ts'
declare module 'fastify' { interface FastifyInstance { failureLog: { record(e: FailureEvent): void; recordConnectLatency(ms: number): void } } }
export default fp(async (app) => { app.decorate('failureLog', { record() {}, recordConnectLatency() {} }) }, { name: 'failures', dependencies: [] })
