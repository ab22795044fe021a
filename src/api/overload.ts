import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MSG } from '../domain/response-codes.js';
import { isRefusal, type Admitted, type OverloadGuard, type Refusal } from '../pipeline/overload.js';
import type { ApiDeps } from './deps.js';
import { sendStandard, tlsPeer } from './request.js';

const admitted = new WeakMap<FastifyRequest, Admitted>();
const isSubmission = (req: FastifyRequest): boolean => req.method === 'POST' && req.routeOptions.url === '/dip-channel/:id';

/** A Content-Length as the guard takes it: null when absent or not a number (Fastify refuses those later). */
function declared(req: FastifyRequest): number | null {
  const header = req.headers['content-length'];
  if (header === undefined) return null;
  const n = Number(header);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

/**
 * Who a submission's sender is, for its share: the participant its client certificate names (its DIP IDs,
 * sorted), not the certificate itself: during a rotation's overlap (self-service newCertificate) a
 * participant holds two valid certificates, and keyed by fingerprint it took a share with each. A
 * certificate naming no DIP ID is itself, and no certificate its address. The channel in the path is not
 * yet proven here: anyone could name another's. Read once per socket (tlsPeer).
 */
export function senderKey(socket: Socket): string {
  const identity = tlsPeer(socket);
  if (identity && identity.ids.length > 0) return `p:${[...identity.ids].sort().join(',')}`;
  const fingerprint = identity?.peer?.fingerprint256;
  return fingerprint !== undefined ? `c:${fingerprint}` : `a:${socket.remoteAddress ?? ''}`;
}

/**
 * Submissions (POST /dip-channel/{id}) are refused with 503 and Retry-After while the DIP is overloaded:
 * judged before the body is read (by its Content-Length), counted as work in hand once it has arrived.
 */
export function useOverloadGuard(app: FastifyInstance, deps: ApiDeps, guard: OverloadGuard): void {
  // Connection: close would make every refused sender pay a new TLS handshake: the connection stays
  // (but for a sender that asked Expect: 100-continue and was refused before it: Node closes that one).
  const refuse = (reply: FastifyReply, refusal: Refusal) => {
    // Larger than the guard ever takes: 413, no Retry-After (waiting would not make it fit).
    if (refusal.retryAfterSeconds === null) return sendStandard(deps, reply, 413, null, MSG.processingFailed, refusal.help);
    reply.header('retry-after', String(refusal.retryAfterSeconds));
    return sendStandard(deps, reply, 503, null, MSG.processingFailed, refusal.help);
  };
  app.addHook('onRequest', async (req, reply) => {
    if (!isSubmission(req)) return;
    const verdict = guard.admit({ declaredBytes: declared(req), sender: senderKey(req.raw.socket) });
    if (isRefusal(verdict)) return refuse(reply, verdict);
    admitted.set(req, verdict);
    // 'close' comes once per response, also when the sender hangs up first; but a pipelined request's
    // response, queued behind an earlier one, never gets the socket, nor a 'close', if the connection ends
    // first: the socket's own 'close' ends it then (else its reservation would be kept for good).
    const socket = req.raw.socket;
    const end = (): void => {
      socket.removeListener('close', end);
      verdict.done();
    };
    reply.raw.once('close', end);
    socket.once('close', end);
  });
  // The body has arrived whole (parsed as the raw batch): from now on it is work in hand, if it still
  // fits (uploads that began together were each judged against what was in hand when they began).
  app.addHook('preValidation', async (req, reply) => {
    if (!isSubmission(req)) return;
    const refusal = admitted.get(req)?.arrived(Buffer.isBuffer(req.body) ? req.body.length : (declared(req) ?? 0));
    if (!refusal) return;
    return refuse(reply, refusal);
  });
}
