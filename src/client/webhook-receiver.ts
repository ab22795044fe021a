import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { requestedBaseUrl } from '../domain/callback-url.js';
import { LruMap } from '../domain/lru-map.js';
import { ACKNOWLEDGED_HEADER, parseSequence, SEQUENCE_HEADER } from '../domain/sequence.js';
import { notFromDip, verifyDipSignature, type VerifyResult } from '../security/signature.js';

/**
 * A notice the DIP posts to an alarm subscription's webhook URL (README "Alarms", "Maintenance notices"):
 * an alarm `{kind: raised|resolved, condition, at, asOf}` or a maintenance notice `{type: "maintenance",
 * kind: published|amended|withdrawn, notice, at}`. Signed as a webhook call is, over `NOTICE;` and the
 * call's string to sign; `body` is it as sent.
 */
export type DipNotice =
  | { type: 'alarm'; kind: 'raised' | 'resolved'; body: Record<string, unknown> }
  | { type: 'maintenance'; kind: 'published' | 'amended' | 'withdrawn'; body: Record<string, unknown> };

/** The notice a webhook body is, or null: a body of messages (an array), or anything else. */
export function dipNotice(body: unknown): DipNotice | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const b = body as Record<string, unknown>;
  if (b['type'] === 'maintenance' && (b['kind'] === 'published' || b['kind'] === 'amended' || b['kind'] === 'withdrawn') && typeof b['notice'] === 'object' && b['notice'] !== null) {
    return { type: 'maintenance', kind: b['kind'], body: b };
  }
  if (b['type'] === undefined && (b['kind'] === 'raised' || b['kind'] === 'resolved') && typeof b['condition'] === 'object' && b['condition'] !== null) {
    return { type: 'alarm', kind: b['kind'], body: b };
  }
  return null;
}

/**
 * The largest body a receiver reads by default. The DIP's largest delivery on its defaults is one message
 * of up to its body limit (10 MiB, `bodyLimitBytes`: a message is never split, whatever the subscription's
 * maxPayloadSize) with the fields the DIP adds to it; a subscription whose maxPayloadSize is set above
 * this needs a receiver with a larger `maxBodyBytes` (`dip listen --max-body-bytes`).
 */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
/** Signing certificates a receiver remembers the verdict on: the DIP's one or few, and then some. */
export const DEFAULT_TRUST_CACHE_ENTRIES = 256;

/** One webhook call as a recipient sees it, after checking the DIP's signature. */
export interface ReceivedCall {
  /** The messages of a delivery (an array body); empty for a notice. */
  messages: unknown[];
  /** An alarm or maintenance notice (an alarm subscription's webhook URL), or null for a delivery. */
  notice: DipNotice | null;
  /** Queue positions of the messages, in body order (from X-OpenDIP-Sequence). */
  firstSeq: number | null;
  lastSeq: number | null;
  /**
   * The position the DIP settled the queue up to before this call (X-OpenDIP-Acknowledged): the positions
   * between your last and this call's first up to it were set aside by the DIP (its senders told), not
   * lost (gapBefore, src/domain/sequence.ts). Null when absent (a notice, an older DIP).
   */
  acknowledgedSeq: number | null;
  signature: VerifyResult;
  receivedAt: number;
}

export interface ReceiverOptions {
  port?: number;
  host?: string;
  /** Serve HTTPS with this key and certificate; plain HTTP otherwise (development only). */
  tls?: { key: string; cert: string };
  /** The URL the DIP calls, as it signs it (scheme, host, port, path); defaults to this listener's own. */
  publicUrl?: string;
  /** CAs the DIP's signing certificate must chain to. */
  trustedCas: string[];
  maxSkewMs?: number;
  /**
   * The largest body read (default DEFAULT_MAX_BODY_BYTES); a larger one is answered 413, which the DIP
   * does not retry, and the connection closed without reading the rest.
   */
  maxBodyBytes?: number;
  /** Signing certificates whose verdict is kept (default DEFAULT_TRUST_CACHE_ENTRIES), least recently used dropped. */
  trustCacheEntries?: number;
  /**
   * Status to answer with, per call. Default: 401 when the signature does not verify; else 200 for
   * messages or a notice, 400 for a body that is neither.
   */
  respond?: (call: ReceivedCall) => number;
  onCall?: (call: ReceivedCall) => void;
}

export interface WebhookReceiver {
  url: string;
  server: Server;
  /** How many signing certificates' verdicts are kept now (at most trustCacheEntries). */
  trustCacheSize(): number;
  close(): Promise<void>;
}

/**
 * A recipient's webhook endpoint: verifies the X-DIP-* signature and that the signing certificate chains
 * to the DIP's CA, then hands the messages over, or the alarm or maintenance notice: a subscriber points
 * its alarm subscription's webhookUrl at the same kind of receiver, and the DIP signs notices with the key
 * it signs deliveries with, over a notice's own string (noticeStringToSign). What `dip listen` runs, and what the tests use.
 */
export async function startWebhookReceiver(opts: ReceiverOptions): Promise<WebhookReceiver> {
  // The DIP signs the URL it requests (requestedUrl() of the callback URL): a public URL written
  // `https://Sup.example:443/` is requested, so signed, as `https://sup.example`, and is compared so.
  const publicUrl = opts.publicUrl === undefined ? undefined : requestedBaseUrl(opts.publicUrl);
  if (publicUrl === null) throw new Error(`publicUrl '${opts.publicUrl}' is not an http(s)://host[:port][/path] URL (no user, query or fragment)`);
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  /**
   * Per signing certificate: why it is refused, or null when it is the DIP's. Bounded: anyone who reaches
   * the URL can sign with a new self-made certificate per call, each one an entry.
   */
  const refusals = new LruMap<string, string | null>(opts.trustCacheEntries ?? DEFAULT_TRUST_CACHE_ENTRIES);
  const tooLarge = (res: ServerResponse, what: string) => {
    // Closing the connection: the rest of the body is not read to be thrown away.
    res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify({ status: 413, help: `${what} is larger than this receiver's limit of ${maxBody} bytes (dip listen --max-body-bytes)` }));
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    // Judged before a byte of the body is read or the signature checked: the caller may be anyone.
    if (Number(req.headers['content-length']) > maxBody) return tooLarge(res, `the body (Content-Length ${req.headers['content-length']})`);
    const chunks: Buffer[] = [];
    let received = 0;
    req.on('data', (c: Buffer) => {
      if (received > maxBody) return;
      received += c.length;
      if (received <= maxBody) return void chunks.push(c);
      chunks.length = 0;
      tooLarge(res, 'the body');
    });
    req.on('end', () => {
      if (received > maxBody) return;
      const body = Buffer.concat(chunks);
      // The DIP signs the URL it requests (the callback URL as an HTTP client serialises it): the Host
      // header and the request target as received rebuild it.
      const url = `${publicUrl ?? `${scheme}://${req.headers.host ?? ''}`}${req.url ?? ''}`;
      let messages: unknown[] = [];
      let notice: DipNotice | null = null;
      try {
        const parsed: unknown = JSON.parse(body.toString('utf8'));
        if (Array.isArray(parsed)) messages = parsed;
        else notice = dipNotice(parsed);
      } catch {
        // An unparsable body fails below as a 400.
      }
      // A notice is signed over its own string (`NOTICE;` and a call's), a delivery over a call's: each
      // verifies only as what it is, so a notice subscribed at a message webhook is no delivery there.
      let signature = verifyDipSignature({ method: req.method ?? 'POST', url, body, headers: req.headers, now: new Date(), maxSkewMs: opts.maxSkewMs ?? 300_000, notice: notice !== null });
      if (signature.ok) {
        const fp = signature.certificate.fingerprint256;
        let refused = refusals.get(fp);
        if (refused === undefined) {
          refused = notFromDip(signature.certificate, opts.trustedCas);
          refusals.set(fp, refused);
        }
        if (refused !== null) {
          signature = { ok: false, reason: 'bad-certificate', detail: refused, stringToSign: signature.stringToSign };
        }
      }
      const seq = parseSequence(String(req.headers[SEQUENCE_HEADER] ?? ''));
      const call: ReceivedCall = {
        messages,
        notice,
        firstSeq: seq?.first ?? null,
        lastSeq: seq?.last ?? null,
        acknowledgedSeq: acknowledgedSeq(req.headers[ACKNOWLEDGED_HEADER]),
        signature,
        receivedAt: Date.now(),
      };
      const status = opts.respond ? opts.respond(call) : signature.ok ? (messages.length > 0 || notice !== null ? 200 : 400) : 401;
      if (status >= 200 && status < 300) opts.onCall?.(call);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status }));
    });
  };
  const scheme = opts.tls ? 'https' : 'http';
  const server = opts.tls ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, handler) : createHttpServer(handler);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const ownUrl = `${scheme}://${opts.host === '0.0.0.0' || !opts.host ? '127.0.0.1' : opts.host}:${port}`;
  return {
    url: `${publicUrl ?? ownUrl}/`,
    server,
    trustCacheSize: () => refusals.size,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** X-OpenDIP-Acknowledged as a position, or null when absent or not one. */
function acknowledgedSeq(value: string | string[] | undefined): number | null {
  return typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : null;
}
