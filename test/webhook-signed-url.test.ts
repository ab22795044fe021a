import { createHash, verify, X509Certificate } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { LookupAddress } from 'node:dns';
import type { AddressInfo, LookupFunction } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UndiciWebhookTransport, type ConnectionRoute } from '../src/adapters/http/webhook-client.js';
import { requestedUrl } from '../src/domain/callback-url.js';
import { QueueWorker } from '../src/pipeline/queue-worker.js';
import type { QueueEntry, QueueRef, Settlement } from '../src/ports/message-log.js';
import { createCertificateAuthority, issueServerCertificate, issueSigningCertificate, type KeyAndCert } from '../src/security/pki.js';
import { Signer } from '../src/security/signature.js';
import { WebhookDestinations } from '../src/security/webhook-destinations.js';
import { FakeClock } from './helpers/clocks.js';
import { workerDeps } from './helpers/worker-deps.js';

/**
 * The DIP's webhook calls, made by the real queue worker, signer and undici transport to a real receiver
 * that checks each signature the way a participant does from the published scheme: it rebuilds the URL
 * from the scheme it listens on, the Host header and the request target it received, and verifies
 * `POST;url lower-cased;date;hash` with the certificate sent. Written independently of src/security, so
 * it checks the DIP against the scheme, not against itself.
 *
 * Every connection is routed to the local receivers whatever host and port the URL names, so URLs on the
 * default ports (:443, :80) can be tested without privileges; the request line and Host header are
 * undici's own.
 */

interface Received {
  /** What the receiver rebuilt: scheme://Host-header + request target. */
  url: string;
  /** Why the signature does not verify, or 'verified'. */
  verdict: string;
}

function participantVerifies(scheme: 'https' | 'http', req: IncomingMessage, body: Buffer): Received {
  const url = `${scheme}://${req.headers.host ?? ''}${req.url ?? ''}`;
  const header = (name: string): string => String(req.headers[name] ?? '');
  const hash = createHash('sha256').update(body).digest('base64');
  if (hash !== header('x-dip-content-hash')) return { url, verdict: 'content hash does not match the body' };
  const certificate = new X509Certificate(Buffer.from(header('x-dip-signature-certificate'), 'base64'));
  const signed = `${req.method ?? ''};${url.toLowerCase()};${header('x-dip-signature-date')};${hash}`;
  const ok = verify('sha256', Buffer.from(signed, 'utf8'), certificate.publicKey, Buffer.from(header('x-dip-signature'), 'base64'));
  return { url, verdict: ok ? 'verified' : `signature does not verify over '${signed}'` };
}

describe('webhook calls are signed over the URL actually requested', () => {
  let ca: KeyAndCert;
  let signer: Signer;
  let https: HttpsServer;
  let http: HttpServer;
  const ports = { https: 0, http: 0 };
  const received: Received[] = [];

  const receiver = (scheme: 'https' | 'http') => (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = participantVerifies(scheme, req, Buffer.concat(chunks));
      received.push(r);
      // What a verifying recipient answers: 401 for a signature it cannot verify (no retry).
      res.writeHead(r.verdict === 'verified' ? 201 : 401).end();
    });
  };

  beforeAll(async () => {
    ca = await createCertificateAuthority({ commonName: 'test CA', environment: 'TEST', validDays: 2 });
    const [tls, signing] = await Promise.all([
      issueServerCertificate(ca, { hostnames: ['sup.example', 'xn--sp-xka.example'], ipAddresses: ['127.0.0.1'], validDays: 2 }),
      issueSigningCertificate(ca, { commonName: 'the DIP', validDays: 2 }),
    ]);
    signer = new Signer(signing.keyPem, signing.certPem);
    https = createHttpsServer({ key: tls.keyPem, cert: tls.certPem }, receiver('https'));
    http = createHttpServer(receiver('http'));
    await Promise.all([new Promise<void>((r) => https.listen(0, '127.0.0.1', r)), new Promise<void>((r) => http.listen(0, '127.0.0.1', r))]);
    ports.https = (https.address() as AddressInfo).port;
    ports.http = (http.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await Promise.all([new Promise((r) => https.close(r)), new Promise((r) => http.close(r))]);
  });

  /** Delivers one message to `callbackUrl` through a queue worker; what the receiver saw and what the worker settled. */
  async function deliver(callbackUrl: string): Promise<{ received: Received | undefined; settlement: Settlement | string; requested: string }> {
    const requested: string[] = [];
    // Only where the connection goes changes: the TLS server name stays the URL's host.
    const toLocal: ConnectionRoute = ({ protocol }) => ({ hostname: '127.0.0.1', port: String(protocol === 'https:' ? ports.https : ports.http) });
    // The rules as DEV has them (not enforced); the test's names do not exist, so they resolve to a
    // public address here (the route connects to the local receiver whatever they resolve to).
    const publicDns = ((_hostname: string, _options: unknown, callback: (err: null, a: LookupAddress[]) => void) => callback(null, [{ address: '93.184.215.14', family: 4 }])) as LookupFunction;
    const transport = new UndiciWebhookTransport({ ca: [ca.certPem], destinations: new WebhookDestinations({ enforce: false, lookup: publicDns }) }, toLocal);
    const queue: QueueRef = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
    const clock = new FakeClock();
    // Fresh (received now): a stale one would be set aside without a call.
    const entry: QueueEntry = { seq: 1, messageId: 1, transactionId: 'T-1', receivedAt: clock.now(), outbound: '{"payload":{}}', capacity: null, securityPattern: null };
    const before = received.length;
    // Settled, or the call failed (a TLS or connection error shows here instead of as a test timeout).
    let settled!: (s: Settlement | string) => void;
    const settlement = new Promise<Settlement | string>((resolve) => (settled = resolve));
    const worker = new QueueWorker(
      queue,
      workerDeps(clock, {
        log: {
          readQueue: async (_q, after) => (after < 1 ? [entry] : []),
          queueState: async () => ({ ackedSeq: 0, headSeq: 1, pulledSeq: 0 }),
          settle: async (_q, s) => {
            settled(s);
            return 'settled';
          },
        },
        webhook: () => ({ ...queue, url: callbackUrl, maxMessageCount: 10, maxPayloadKb: 1024, registeredBy: null }),
        transport: {
          post: async (call) => {
            requested.push(call.url);
            const outcome = await transport.post(call);
            if (outcome.kind === 'failed') settled(outcome.error);
            return outcome;
          },
          close: () => transport.close(),
        },
        signer: { sign: async (method, url, body) => ({ ...(await signer.sign(method, url, body)) }) },
      }),
    );
    try {
      worker.kick();
      const s = await settlement;
      return { received: received[before], settlement: s, requested: requested[0] ?? '' };
    } finally {
      await worker.stop();
      await transport.close();
    }
  }

  // [callback URL as registered, the URL the receiver rebuilds from what it was sent]
  const cases: Array<[string, string, string]> = [
    ['explicit default https port', 'https://sup.example:443/dip/IF-021', 'https://sup.example/dip/IF-021'],
    ['explicit default http port', 'http://sup.example:80/dip', 'http://sup.example/dip'],
    ['upper-case scheme and host, mixed-case path', 'HTTPS://SUP.Example/Dip/Hook', 'https://sup.example/Dip/Hook'],
    ['no path at all (no trailing slash)', 'https://sup.example', 'https://sup.example/'],
    ['spaces, a non-ASCII letter and existing percent-escapes', 'https://sup.example/in box/é/a%2Fb', 'https://sup.example/in%20box/%C3%A9/a%2Fb'],
    ['query with a space and quotes', "https://sup.example/hook?x=1 2&y='q'&z=%7e", 'https://sup.example/hook?x=1%202&y=%27q%27&z=%7e'],
    ['an empty query', 'https://sup.example/hook?', 'https://sup.example/hook'],
    ['dot segments', 'https://sup.example/a/./b/../c', 'https://sup.example/a/c'],
    ['a fragment (never sent)', 'https://sup.example/hook#part', 'https://sup.example/hook'],
    ['a non-default port, kept', 'https://sup.example:8443/hook', 'https://sup.example:8443/hook'],
    ['an internationalised host name (punycode on the wire)', 'https://süp.example/hook', 'https://xn--sp-xka.example/hook'],
    ['a backslash in the query (sent as written)', 'https://sup.example/hook?a=b\\c', 'https://sup.example/hook?a=b\\c'],
  ];

  it.each(cases)('%s: the receiver verifies the signature', async (_what, callbackUrl, onTheWire) => {
    const { received: got, settlement, requested } = await deliver(callbackUrl);
    expect(got).toEqual({ url: onTheWire, verdict: 'verified' });
    // One string for the request and the signature, and it is the client's serialisation of the URL.
    expect(requested).toBe(onTheWire);
    expect(requestedUrl(callbackUrl)).toBe(onTheWire);
    expect(settlement).toEqual({ upTo: 1 });
  });

  /**
   * A route only moves where a connection goes: the destination rules still judge the host requested,
   * so a transport built with one cannot reach what the rules refuse (here the route leads to the local
   * receiver, which would answer: a refusal can only come from the rules).
   */
  it('a transport with a route still applies the destination rules to the host requested', async () => {
    const resolved: string[] = [];
    const dns = ((hostname: string, _options: unknown, callback: (err: NodeJS.ErrnoException | null, a: LookupAddress[]) => void) => {
      resolved.push(hostname);
      callback(null, [{ address: hostname === 'sup.example' ? '93.184.215.14' : '10.0.0.7', family: 4 }]);
    }) as LookupFunction;
    const destinations = new WebhookDestinations({ enforce: true, lookup: dns });
    const toLocal: ConnectionRoute = () => ({ hostname: '127.0.0.1', port: String(ports.https) });
    const transport = new UndiciWebhookTransport({ ca: [ca.certPem], destinations }, toLocal);
    const post = (url: string) => transport.post({ url, body: Buffer.from('[]'), headers: {}, timeoutMs: 5_000 });
    try {
      // An address literal is judged as written, before connecting.
      expect(await post('https://127.0.0.1/hook')).toMatchObject({ kind: 'failed', error: expect.stringMatching(/^EDESTINATIONREFUSED: 127\.0\.0\.1 is a loopback address/) });
      // A name is resolved through the rules although the connection goes elsewhere.
      expect(await post('https://inside.example/hook')).toMatchObject({ kind: 'failed', error: expect.stringMatching(/^EDESTINATIONREFUSED: inside\.example resolved to 10\.0\.0\.7, a private address/) });
      // A public name passes and is routed: the receiver answers (401: this call is not signed).
      expect(await post('https://sup.example/hook')).toMatchObject({ kind: 'answered', status: 401 });
      expect(resolved).toEqual(['inside.example', 'sup.example']);
    } finally {
      await transport.close();
    }
  });

  it('a stored callback URL that does not parse is never called nor signed: the call fails and is retried', async () => {
    expect(requestedUrl('https://sup.example:99999/hook')).toBeNull();
    const calls: string[] = [];
    const clock = new FakeClock();
    const worker = new QueueWorker(
      { recipientDipId: 'SUP0000001', channel: 'IF-021' },
      workerDeps(clock, {
        log: { readQueue: async (_q, after) => (after < 1 ? [{ seq: 1, messageId: 1, transactionId: 'T-1', receivedAt: clock.now(), outbound: '{}', capacity: null, securityPattern: null }] : []), queueState: async () => ({ ackedSeq: 0, headSeq: 1, pulledSeq: 0 }), settle: async () => 'settled' },
        webhook: (q) => ({ ...q, url: 'https://sup.example:99999/hook', maxMessageCount: 10, maxPayloadKb: 1024, registeredBy: null }),
        transport: { post: async (call) => (calls.push(call.url), { kind: 'answered', status: 201, retryAfter: undefined, body: '', latencyMs: 0 }), close: async () => {} },
        signer: { sign: async (_m, url) => (calls.push(`signed ${url}`), {}) },
      }),
    );
    worker.kick();
    await clock.advance(0);
    expect(calls).toEqual([]);
    expect(worker.status()).toMatchObject({ state: 'backoff', failures: 1, lastError: expect.stringMatching(/is not a URL that can be called/) });
    await worker.stop();
  });
});
