import type { FastifyInstance } from 'fastify';
import { API_VERSION_HEADERS } from '../domain/api-version.js';

/** The policy of an answer that is not a page: it loads nothing, runs nothing and is framed by nothing. */
const NOT_A_PAGE_POLICY = "default-src 'none'; frame-ancestors 'none'";

/**
 * The headers OWASP's REST security guidance asks of every answer of an API listener (the participant
 * listener and the anonymous one; the portals' set their own, src/portal/server.ts): no content-type
 * sniffing (a publication's or a message's bytes are never read as a page), no framing, HSTS (both are
 * TLS only). A page that sets its own Content-Security-Policy (the data portal) keeps it; another page
 * (Swagger UI, which needs its scripts) is only kept from being framed. `noStore`: answers not marked
 * otherwise carry `Cache-Control: no-store`, for a listener whose answers are a participant's own data,
 * which no cache between it and the DIP (a TLS-terminating proxy, a shared client) may keep.
 */
export function useApiSecurityHeaders(app: FastifyInstance, options: { noStore: boolean }): void {
  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [name, value] of Object.entries(EVERY_ANSWER)) void reply.header(name, value);
    if (!reply.hasHeader('content-security-policy')) {
      const page = String(reply.getHeader('content-type') ?? '').startsWith('text/html');
      void reply.header('content-security-policy', page ? "frame-ancestors 'none'" : NOT_A_PAGE_POLICY);
    }
    if (options.noStore && !reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store');
    return payload;
  });
}

/**
 * What useApiSecurityHeaders sets on every answer, whatever it is; with the API version it was served under
 * (both API listeners are a participant's: an answer from a hook before the routes, a refusal over the
 * connection cap or of a certificate, named none).
 */
const EVERY_ANSWER: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'strict-transport-security': 'max-age=31536000',
  ...API_VERSION_HEADERS,
};

/**
 * The same headers for a refusal written without Fastify, which its hook never sees: Node's parser errors,
 * a missed deadline and an unmet Expect, answered on the socket or the raw response (src/api/server.ts).
 * Such an answer is JSON, never a page, and `noStore` as the listener's.
 */
export function rawAnswerSecurityHeaders(options: { noStore: boolean }): Readonly<Record<string, string>> {
  return { ...EVERY_ANSWER, 'content-security-policy': NOT_A_PAGE_POLICY, ...(options.noStore ? { 'cache-control': 'no-store' } : {}) };
}
