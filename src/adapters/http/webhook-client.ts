import { createSecureContext } from 'node:tls';
import { Agent, buildConnector, request } from 'undici';
import type { WebhookCall, WebhookOutcome, WebhookTransport } from '../../ports/webhook.js';
import { DestinationRefusedError, type WebhookDestinations } from '../../security/webhook-destinations.js';

export interface WebhookClientOptions {
  /** CA certificates to trust for https callback URLs, in addition to none: recipients are pinned to these. */
  ca?: string[];
  /** The DIP's client certificate and key, for recipients that ask for mutual TLS. */
  cert?: string;
  key?: string;
  connectionsPerOrigin?: number;
  /**
   * Which destinations may be called (outside DEV: no internal networks). Checked on every new
   * connection: an IP literal before connecting, a name after it resolves (so rebinding cannot slip by).
   */
  destinations?: Pick<WebhookDestinations, 'checkHost' | 'lookup'>;
}

const MAX_ANSWER_BYTES = 64 * 1024;

async function readCapped(body: AsyncIterable<Buffer>, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size < max) chunks.push(chunk.subarray(0, max - size));
    size += chunk.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * An undici agent whose every new connection obeys the destination rules: an IP literal is judged
 * before connecting, a name after it resolves (so a name rebound to an internal address is refused).
 * Every outbound call to a URL a participant or operator gave goes through one (webhooks, alarm webhooks).
 */
export function destinationCheckedAgent(opts: WebhookClientOptions & { keepAliveTimeout?: number; keepAliveMaxTimeout?: number } = {}): Agent {
  const destinations = opts.destinations;
  // One TLS context for every connection: given ca/cert/key, tls.connect would build a context per
  // connection, parsing every trusted root (~140 with the system's) each time (~3 ms of CPU per connect).
  const tls = opts.ca || opts.cert || opts.key ? { secureContext: createSecureContext({ ca: opts.ca, cert: opts.cert, key: opts.key }) } : {};
  const connector = buildConnector({ ...tls, ...(destinations ? { lookup: destinations.lookup } : {}) });
  return new Agent({
    connections: opts.connectionsPerOrigin ?? 4,
    keepAliveTimeout: opts.keepAliveTimeout ?? 30_000,
    keepAliveMaxTimeout: opts.keepAliveMaxTimeout ?? 300_000,
    connect: destinations
      ? (options, callback) => {
          // Node skips the lookup for an IP literal: judge it here, before any packet leaves.
          const refused = destinations.checkHost(options.hostname);
          if (refused !== null) return callback(new DestinationRefusedError(refused), null);
          return connector(options, callback);
        }
      : connector,
  });
}

/**
 * Webhook calls over undici with kept-alive connections: a TLS handshake costs far more than a call,
 * so each recipient origin keeps a small pool open.
 */
export class UndiciWebhookTransport implements WebhookTransport {
  private readonly agent: Agent;

  constructor(opts: WebhookClientOptions = {}) {
    this.agent = destinationCheckedAgent(opts);
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
      // Read whole (for the connection to be reused), kept only in part: it is relayed, never trusted.
      const body = await readCapped(res.body, MAX_ANSWER_BYTES);
      const retryAfter = res.headers['retry-after'];
      return {
        kind: 'answered',
        status: res.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        body,
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
