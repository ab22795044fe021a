import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { requestedBaseUrl } from '../domain/callback-url.js';
import { parseSequence, SEQUENCE_HEADER } from '../domain/sequence.js';
import { verifyChain, verifyDipSignature, type VerifyResult } from '../security/signature.js';

/**
 * A notice the DIP posts to an alarm subscription's webhook URL (README "Alarms", "Maintenance notices"):
 * an alarm `{kind: raised|resolved, condition, at, asOf}` or a maintenance notice `{type: "maintenance",
 * kind: published|amended|withdrawn, notice, at}`. Signed as a webhook call is; `body` is it as sent.
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

/** One webhook call as a recipient sees it, after checking the DIP's signature. */
export interface ReceivedCall {
  /** The messages of a delivery (an array body); empty for a notice. */
  messages: unknown[];
  /** An alarm or maintenance notice (an alarm subscription's webhook URL), or null for a delivery. */
  notice: DipNotice | null;
  /** Queue positions of the messages, in body order (from X-OpenDIP-Sequence). */
  firstSeq: number | null;
  lastSeq: number | null;
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
   * Status to answer with, per call. Default: 401 when the signature does not verify; else 200 for
   * messages or a notice, 400 for a body that is neither.
   */
  respond?: (call: ReceivedCall) => number;
  onCall?: (call: ReceivedCall) => void;
}

export interface WebhookReceiver {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/**
 * A recipient's webhook endpoint: verifies the X-DIP-* signature, that the signing certificate chains
 * to the DIP's CA and that it names no participant (so is not a participant's), then hands the messages
 * over, or the alarm or maintenance notice: a subscriber points
 * its alarm subscription's webhookUrl at the same kind of receiver, and the DIP signs notices as it signs
 * deliveries. What `dip listen` runs, and what the tests use.
 */
export async function startWebhookReceiver(opts: ReceiverOptions): Promise<WebhookReceiver> {
  // The DIP signs the URL it requests (requestedUrl() of the callback URL): a public URL written
  // `https://Sup.example:443/` is requested, so signed, as `https://sup.example`, and is compared so.
  const publicUrl = opts.publicUrl === undefined ? undefined : requestedBaseUrl(opts.publicUrl);
  if (publicUrl === null) throw new Error(`publicUrl '${opts.publicUrl}' is not an http(s)://host[:port][/path] URL (no user, query or fragment)`);
  const trustedFingerprints = new Map<string, boolean>();
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      // The DIP signs the URL it requests (the callback URL as an HTTP client serialises it): the Host
      // header and the request target as received rebuild it.
      const url = `${publicUrl ?? `${scheme}://${req.headers.host ?? ''}`}${req.url ?? ''}`;
      let signature = verifyDipSignature({ method: req.method ?? 'POST', url, body, headers: req.headers, now: new Date(), maxSkewMs: opts.maxSkewMs ?? 300_000 });
      if (signature.ok) {
        const cert = signature.certificate;
        let trusted = trustedFingerprints.get(cert.fingerprint256);
        if (trusted === undefined) {
          trusted = verifyChain(cert.pem, opts.trustedCas);
          trustedFingerprints.set(cert.fingerprint256, trusted);
        }
        // The environment's CA issues participants' certificates too: a chain to it does not tell the DIP
        // from a participant, who could otherwise sign a delivery or notice to another's webhook with its
        // own key. A certificate naming a participant (urn:dip:participant: SAN) is never the DIP's.
        const problem = !trusted
          ? `signing certificate ${cert.subject} does not chain to a trusted DIP CA`
          : cert.dipIds.length > 0
            ? `signing certificate ${cert.subject} is participant ${cert.dipIds.join(', ')}'s, not the DIP's: only the DIP signs webhook calls`
            : null;
        if (problem) signature = { ok: false, reason: 'bad-certificate', detail: problem, stringToSign: signature.stringToSign };
      }
      let messages: unknown[] = [];
      let notice: DipNotice | null = null;
      try {
        const parsed: unknown = JSON.parse(body.toString('utf8'));
        if (Array.isArray(parsed)) messages = parsed;
        else notice = dipNotice(parsed);
      } catch {
        // An unparsable body fails below as a 400.
      }
      const seq = parseSequence(String(req.headers[SEQUENCE_HEADER] ?? ''));
      const call: ReceivedCall = {
        messages,
        notice,
        firstSeq: seq?.first ?? null,
        lastSeq: seq?.last ?? null,
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
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
