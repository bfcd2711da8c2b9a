// PLACEHOLDER by the lead so the app builds while the owner writes the real file: the owner replaces it wholesale.
import type { FastifyInstance } from 'fastify'
export default async function (app: FastifyInstance) {
  void app
}
