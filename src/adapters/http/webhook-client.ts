import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { Agent, buildConnector, request } from 'undici';
import type { WebhookCall, WebhookOutcome, WebhookTransport } from '../../ports/webhook.js';
import { DestinationRefusedError, type WebhookDestinations } from '../../security/webhook-destinations.js';
import { NOT_TLS, UNTRUSTED_CERTIFICATE } from '../../domain/retry.js';

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
   * Required, so that no client can be built without rules by leaving them out: DEV and tests pass a
   * WebhookDestinations that does not enforce them.
   */
  destinations: Pick<WebhookDestinations, 'checkHost' | 'lookup'>;
  /** How long a new connection (TCP and TLS handshake) may take; undici's 10 s when not given. */
  connectTimeoutMs?: number;
}

/**
 * Where a connection for a requested host and port goes instead (tests reach a local receiver for
 * `https://sup.example:443/…` with one). Only the address connected to changes: the destination rules
 * are applied to the host requested, and the TLS name, request line and Host header stay the URL's.
 */
export type ConnectionRoute = (requested: { protocol: string; hostname: string; port: string }) => { hostname: string; port: string };

const MAX_ANSWER_BYTES = 64 * 1024;
/** A recipient's pools unused this long are closed (their connections are long gone by then). */
const IDLE_POOL_MS = 10 * 60_000;

/**
 * The answer's body, at most `max` bytes of it, by `deadline`: the status is the answer, the body only
 * relayed, so a body that goes on (2 GB) or trickles (a byte every few seconds, for ever) is cut off and
 * its connection dropped instead of holding the recipient's queue with the call never ending. `done`:
 * read to its end (the connection may be reused).
 */
async function readCapped(body: AsyncIterable<Buffer> & { destroy(): void }, max: number, deadline: number): Promise<{ text: string; done: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), Math.max(0, deadline - performance.now()))));
  const iterator = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      const reading = iterator.next();
      // Cut off while a read waits, that read fails with the destroyed body: nobody waits on it any more.
      reading.catch(() => {});
      const next = await Promise.race([reading, late]);
      if (next === 'late' || next.done) {
        if (next === 'late') body.destroy();
        return { text: Buffer.concat(chunks).toString('utf8'), done: next !== 'late' };
      }
      chunks.push(next.value.subarray(0, max - size));
      size += next.value.length;
      if (size >= max) {
        body.destroy();
        return { text: Buffer.concat(chunks).toString('utf8'), done: false };
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

// UNTRUSTED_CERTIFICATE: OpenSSL's verdicts on a receiver's certificate the DIP does not trust (src/domain/retry.ts).
const UNTRUSTED_HINT =
  " (the DIP does not trust the webhook receiver's TLS certificate: it trusts public certificate authorities and this environment's CA; in test and DEV environments `dip pki issue-server` issues one; retried until the message goes stale)";
const ALTNAME_HINT = " (the webhook receiver's TLS certificate does not name the host of the callbackURL; retried until the message goes stale)";

/**
 * NOT_TLS (src/domain/retry.ts): most often a plain-http server at an https:// callbackURL. OpenSSL's own
 * text (`…:ssl3_get_record:wrong version number:…`) gives the person reading the attempt no clue, so it is
 * replaced by what it means; the code is kept for a search.
 */
const notTls = (url: string): string => {
  const u = new URL(url);
  // host:port only: the URL's path and query may carry a participant's secret (shownUrl's concern).
  return `the receiver at ${u.hostname}:${u.port || '443'} does not speak TLS (an http:// server behind an https:// callbackURL?); retried until the message goes stale`;
};

type AgentOptions = WebhookClientOptions & { keepAliveTimeout?: number; keepAliveMaxTimeout?: number };

/**
 * An undici agent whose every new connection obeys the destination rules: an IP literal is judged
 * before connecting, a name after it resolves (so a name rebound to an internal address is refused).
 * Every outbound call to a URL a participant or operator gave goes through one (webhooks, alarm webhooks,
 * the register feed). It takes no connector of the caller's: one handed in would replace the checks.
 */
export function destinationCheckedAgent(opts: AgentOptions): Agent {
  return agentOver(opts, checkedConnector(opts, undefined));
}

/** The agent over a connector made by checkedConnector (the transport shares one between its agents). */
function agentOver(opts: AgentOptions, connect: buildConnector.connector): Agent {
  return new Agent({
    connections: opts.connectionsPerOrigin ?? 4,
    keepAliveTimeout: opts.keepAliveTimeout ?? 30_000,
    keepAliveMaxTimeout: opts.keepAliveMaxTimeout ?? 300_000,
    connect,
  });
}

/**
 * How such an agent connects; made once and shared by every agent of a transport. The destination
 * rules are part of it whatever `route` does: a route moves where the connection goes, after the host
 * requested has passed them, so no caller can hand in a connector that skips them.
 */
function checkedConnector(opts: WebhookClientOptions, route: ConnectionRoute | undefined): buildConnector.connector {
  const destinations = opts.destinations;
  // One TLS context for every connection: given ca/cert/key, tls.connect would build a context per
  // connection, parsing every trusted root (~140 with the system's) each time (~3 ms of CPU per connect).
  const tls = opts.ca || opts.cert || opts.key ? { secureContext: createSecureContext({ ca: opts.ca, cert: opts.cert, key: opts.key }) } : {};
  const connector = buildConnector({ ...tls, lookup: destinations.lookup, ...(opts.connectTimeoutMs === undefined ? {} : { timeout: opts.connectTimeoutMs }) });
  const go: buildConnector.connector = route
    ? (options, callback) => connector({ ...options, ...route({ protocol: options.protocol, hostname: options.hostname, port: options.port }) }, callback)
    : connector;
  return (options, callback) => {
    // Node skips the lookup for an IP literal: judge it here, before any packet leaves.
    const refused = destinations.checkHost(options.hostname);
    if (refused !== null) return callback(new DestinationRefusedError(refused), null);
    if (!route || isIP(unbracketed(options.hostname)) !== 0) return go(options, callback);
    // Routed elsewhere, the connection does not resolve the name requested: resolve it through the
    // rules here, so a name on an internal network is refused as it would be unrouted.
    destinations.lookup(options.hostname, { all: true }, (err) => {
      if (err) callback(err, null);
      else go(options, callback);
    });
  };
}

function unbracketed(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * Webhook calls over undici with kept-alive connections: a TLS handshake costs far more than a call,
 * so each webhook URL keeps a small pool open. A pool per URL, not per origin: recipients whose webhooks
 * share a host and port (a connection provider's, one service's) would otherwise share its connections,
 * and one that never answers would hold up the others (a robustness probe saw 10 s added to every good
 * recipient's deliveries, and four stuck calls stop them all).
 */
export class UndiciWebhookTransport implements WebhookTransport {
  private readonly agents = new Map<string, { agent: Agent; usedAt: number }>();
  private calls = 0;

  private connect: buildConnector.connector;

  /**
   * `route` changes only where a connection goes (a test reaches a receiver on a local port for
   * `https://sup.example:443/…`): the connections are still the TLS context of `opts` and its
   * destination rules, applied to the host requested, and the request line and Host header stay undici's.
   */
  constructor(
    private opts: WebhookClientOptions,
    private readonly route?: ConnectionRoute,
  ) {
    this.connect = checkedConnector(opts, route);
  }

  /**
   * The DIP's TLS pair was renewed: new connections present it. The pools kept alive with the old one are
   * closed (calls under way finish on them first), so the next call opens a connection with the new pair:
   * a receiver that checks the caller's certificate never sees the old one once it has expired or been revoked.
   */
  presentCertificate(pair: { certPem: string; keyPem: string }): void {
    this.opts = { ...this.opts, cert: pair.certPem, key: pair.keyPem };
    this.connect = checkedConnector(this.opts, this.route);
    for (const pool of this.agents.values()) void pool.agent.close();
    this.agents.clear();
  }

  async post(call: WebhookCall): Promise<WebhookOutcome> {
    const started = performance.now();
    // The whole call, answer body included, ends by its timeout.
    const deadline = started + call.timeoutMs;
    // Connecting and the TLS handshake too: undici's own connect timeout (10 s) ignored the call's, and
    // aborting the request does not end a connection attempt it waits for, so a receiver that took the
    // TCP connection and never answered the handshake held its queue 10 s whatever the timeout (a fault
    // campaign's finding). The call ends at its deadline; the attempt behind it ends by connectTimeoutMs.
    const late = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) =>
      (timer = setTimeout(() => {
        late.abort();
        reject(new Error('timed out'));
      }, call.timeoutMs)));
    try {
      const calling = request(call.url, {
        method: 'POST',
        body: call.body,
        headers: call.headers,
        dispatcher: this.agentFor(call.url),
        headersTimeout: call.timeoutMs,
        bodyTimeout: call.timeoutMs,
        signal: late.signal,
      });
      calling.catch(() => {}); // aborted at the deadline: nobody waits for it any more
      const res = await Promise.race([calling, timedOut]);
      clearTimeout(timer);
      // Read to its end when short and prompt (for the connection to be reused), kept only in part: it
      // is relayed, never trusted. The status decides, whatever the body does.
      const { text, done } = await readCapped(res.body, call.maxAnswerBytes ?? MAX_ANSWER_BYTES, deadline);
      const retryAfter = res.headers['retry-after'];
      return {
        kind: 'answered',
        status: res.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        body: text,
        ...(done ? {} : { truncated: true }),
        latencyMs: performance.now() - started,
      };
    } catch (e) {
      clearTimeout(timer);
      if (late.signal.aborted) return { kind: 'failed', error: `TIMEOUT: no answer within ${call.timeoutMs} ms: connecting, the TLS handshake or the answer's headers`, latencyMs: performance.now() - started };
      const err = e as Error & { code?: string };
      if (err.code !== undefined && NOT_TLS.has(err.code)) return { kind: 'failed', error: `${err.code}: ${notTls(call.url)}`, latencyMs: performance.now() - started };
      const hint = err.code !== undefined && UNTRUSTED_CERTIFICATE.has(err.code) ? UNTRUSTED_HINT : err.code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? ALTNAME_HINT : '';
      return { kind: 'failed', error: `${err.code ?? err.name}: ${err.message}${hint}`, latencyMs: performance.now() - started };
    }
  }

  private agentFor(url: string): Agent {
    const now = performance.now();
    if (++this.calls % 1000 === 0) {
      for (const [key, pool] of this.agents) {
        if (now - pool.usedAt > IDLE_POOL_MS) {
          this.agents.delete(key);
          void pool.agent.close();
        }
      }
    }
    let pool = this.agents.get(url);
    if (!pool) this.agents.set(url, (pool = { agent: agentOver(this.opts, this.connect), usedAt: now }));
    pool.usedAt = now;
    return pool.agent;
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((p) => p.agent.close()));
    this.agents.clear();
  }
}
