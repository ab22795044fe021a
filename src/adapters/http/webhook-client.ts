import { Agent, request } from 'undici';
import type { WebhookCall, WebhookOutcome, WebhookTransport } from '../../ports/webhook.js';

export interface WebhookClientOptions {
  /** CA certificates to trust for https callback URLs, in addition to none: recipients are pinned to these. */
  ca?: string[];
  /** The DIP's client certificate and key, for recipients that ask for mutual TLS. */
  cert?: string;
  key?: string;
  connectionsPerOrigin?: number;
}

/**
 * Webhook calls over undici with kept-alive connections: a TLS handshake costs far more than a call,
 * so each recipient origin keeps a small pool open.
 */
export class UndiciWebhookTransport implements WebhookTransport {
  private readonly agent: Agent;

  constructor(opts: WebhookClientOptions = {}) {
    this.agent = new Agent({
      connections: opts.connectionsPerOrigin ?? 4,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 300_000,
      connect: { ca: opts.ca, cert: opts.cert, key: opts.key },
    });
  }

  async post(call: WebhookCall): Promise<WebhookOutcome> {
    const started = performance.now();
    try {
      const res = await request(call.url, {
        method: 'POST',
        body: call.body,
        headers: call.headers,
        dispatcher: this.agent,
        headersTimeout: call.timeoutMs,
        bodyTimeout: call.timeoutMs,
      });
      // The answer's body is not used, but must be read for the connection to be reused.
      await res.body.dump();
      const retryAfter = res.headers['retry-after'];
      return {
        kind: 'answered',
        status: res.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        latencyMs: performance.now() - started,
      };
    } catch (e) {
      const err = e as Error & { code?: string };
      return { kind: 'failed', error: `${err.code ?? err.name}: ${err.message}`, latencyMs: performance.now() - started };
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
