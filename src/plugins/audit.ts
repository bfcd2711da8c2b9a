// Decorates `auditLog` (the audit trail, src/audit/log.ts) and `request.audit(change)`: a route handler describes the
// change it made ({ action, target, before, after }) and one onSend hook writes it as a row, with the token's name
// and the request's address, only when the answer is a 2xx. A refused change (400, 403, 404, 409, 412, 5xx) leaves no
// row. onSend rather than onResponse: the row is there before the client reads the answer, so a caller that reads
// /api/audit right after a change sees it.
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { createAuditLog, type AuditChange, type AuditLog } from '../audit/log.ts'

declare module 'fastify' {
  interface FastifyInstance {
    auditLog: AuditLog
  }
  interface FastifyRequest {
    /** Notes the change this request made, written to the audit trail if the answer is a 2xx. */
    audit(change: AuditChange): void
    auditChange: AuditChange | null
  }
}

export default fp(
  async (app) => {
    const log = createAuditLog(app.db)
    app.decorate('auditLog', log)
    app.decorateRequest('auditChange', null)
    app.decorateRequest('audit', function audit(this: FastifyRequest, change: AuditChange) {
      this.auditChange = change
    })
    app.addHook('onSend', async (request, reply, payload) => {
      const change = request.auditChange
      if (change === null) return payload
      request.auditChange = null
      if (reply.statusCode < 200 || reply.statusCode >= 300) return payload
      try {
        log.record({ ...change, actor: request.actor, remoteAddress: request.ip })
      } catch (err) {
        // the change is made and stays made; the missing row is logged loudly
        request.log.error({ err, action: change.action, target: change.target, actor: request.actor }, 'audit trail: the change could not be recorded')
      }
      return payload
    })
  },
  { name: 'audit', dependencies: ['database', 'auth'] },
)
