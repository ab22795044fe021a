import type { FastifyInstance } from 'fastify';
import { MSG } from '../domain/response-codes.js';
import type { OverloadGuard } from '../pipeline/overload.js';
import type { ApiDeps } from './deps.js';
import { sendStandard } from './request.js';

/** Submissions (POST /dip-channel/{id}) are refused with 503 and Retry-After while the DIP is overloaded. */
export function useOverloadGuard(app: FastifyInstance, deps: ApiDeps, guard: OverloadGuard): void {
  app.addHook('onRequest', async (req, reply) => {
    if (req.method !== 'POST' || req.routeOptions.url !== '/dip-channel/:id') return;
    const refusal = guard.admit();
    if (!refusal) {
      // 'close' comes once per response, also when the sender hangs up first.
      reply.raw.once('close', guard.started());
      return;
    }
    // Connection: close would make every refused sender pay a new TLS handshake: the connection stays.
    reply.header('retry-after', String(refusal.retryAfterSeconds));
    return sendStandard(deps, reply, 503, null, MSG.processingFailed, refusal.help);
  });
}
