/**
 * The deadlines a listener holds a client to (config `http`), for the listeners anyone on the network
 * reaches without a client certificate: the portals' and the anonymous one. Node's and Fastify's defaults
 * let a TLS handshake take 120 s, a header block 60 s (checked every 30 s), and, with Fastify's request
 * deadline of 0, a body for ever: a few thousand connections dribbling a byte now and then would hold the
 * process's file descriptors, which every listener, the store and outbound webhook calls share.
 *
 * The participant listener sets the same values itself (src/api/server.ts), but leaves bodies to their own
 * deadlines (a publication upload is bounded by idleness, not as a whole); these listeners take small
 * bodies only, so the whole-request deadline bounds them.
 */
export interface ClientDeadlineLimits {
  handshakeTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  connectionsCheckingIntervalMs: number;
  maxHeaderBytes: number;
}

/** Options for `https.createServer` (Fastify's `https`), and Fastify's own `requestTimeout`, which it sets on the server after creating it. */
export function clientDeadlines(limits: ClientDeadlineLimits): {
  https: { handshakeTimeout: number; headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number; maxHeaderSize: number };
  requestTimeout: number;
} {
  return {
    https: {
      handshakeTimeout: limits.handshakeTimeoutMs,
      // Node refuses a header deadline longer than the request's.
      headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: limits.connectionsCheckingIntervalMs,
      maxHeaderSize: limits.maxHeaderBytes,
    },
    requestTimeout: limits.requestTimeoutMs,
  };
}
