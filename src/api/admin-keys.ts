import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from '../ports/logger.js';
import type { Sealer } from '../security/at-rest.js';
import { answers } from './admin-schemas.js';

export interface KeyRouteOptions {
  sealer: Pick<Sealer, 'rotate'>;
  logger: Logger;
}

/** Encryption at rest: a new data key for everything written from now on; older keys keep reading. */
export const keyRoutes: FastifyPluginAsync<KeyRouteOptions> = async (app, deps) => {
  app.post(
    '/admin/keys/rotate',
    { schema: { tags: ['Security'], summary: 'A new at-rest data key for everything written from now on (admins)', response: answers({ 200: { type: 'object', required: ['dataKeyId'], properties: { dataKeyId: { type: 'integer' } }, description: 'The new key in force' } }) } },
    async () => {
      const dataKeyId = await deps.sealer.rotate();
      deps.logger.info({ dataKeyId }, 'at-rest data key rotated');
      return { dataKeyId };
    },
  );
};
