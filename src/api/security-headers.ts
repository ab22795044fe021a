import type { FastifyInstance } from 'fastify';

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
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('x-frame-options', 'DENY');
    void reply.header('strict-transport-security', 'max-age=31536000');
    if (!reply.hasHeader('content-security-policy')) {
      const page = String(reply.getHeader('content-type') ?? '').startsWith('text/html');
      void reply.header('content-security-policy', page ? "frame-ancestors 'none'" : NOT_A_PAGE_POLICY);
    }
    if (options.noStore && !reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store');
    return payload;
  });
}
