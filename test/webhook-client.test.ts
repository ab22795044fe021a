import { createServer as createHttpServer, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UndiciWebhookTransport } from '../src/adapters/http/webhook-client.js';
import { refusedInMultiStatus } from '../src/domain/recipient-answer.js';
import { answerBytes } from '../src/pipeline/queue-worker.js';
import { createCertificateAuthority, issueServerCertificate, type KeyAndCert } from '../src/security/pki.js';
import { WebhookDestinations } from '../src/security/webhook-destinations.js';

/** The rules as DEV has them (not enforced): these recipients listen on loopback. */
const devDestinations = new WebhookDestinations({ enforce: false });

/**
 * The webhook transport builds its TLS context once and shares it between connections: every
 * connection must still trust exactly the CAs it was given and present the DIP's client certificate.
 */
describe('UndiciWebhookTransport TLS', () => {
  let ca: KeyAndCert;
  let otherCa: KeyAndCert;
  let client: KeyAndCert;
  let server: Server;
  let url: string;
  /** The client certificate's CN (or why it was refused) as each connection presented it. */
  const peers: string[] = [];

  beforeAll(async () => {
    [ca, otherCa] = await Promise.all([
      createCertificateAuthority({ commonName: 'test CA', environment: 'TEST', validDays: 2 }),
      createCertificateAuthority({ commonName: 'other CA', environment: 'TEST', validDays: 2 }),
    ]);
    const [serverTls, clientTls] = await Promise.all([
      issueServerCertificate(ca, { hostnames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 2 }),
      issueServerCertificate(ca, { hostnames: ['dip.test'], ipAddresses: [], validDays: 2, commonName: 'the DIP' }),
    ]);
    client = clientTls;
    server = createServer({ key: serverTls.keyPem, cert: serverTls.certPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const socket = req.socket as TLSSocket;
      req.resume();
      req.on('end', () => {
        const cn = socket.getPeerCertificate().subject?.CN;
        const who = socket.authorized ? `authorized:${[cn ?? ''].flat().join(',')}` : `refused:${String(socket.authorizationError)}`;
        peers.push(who);
        // Closing the connection after each answer makes every call a new connection (a new handshake).
        res.writeHead(200, { connection: 'close' }).end(who);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const call = (t: UndiciWebhookTransport) => t.post({ url, body: Buffer.from('[]'), headers: { 'content-type': 'application/json' }, timeoutMs: 10_000 });

  it('presents the client certificate on every new connection and trusts the given CA', async () => {
    const t = new UndiciWebhookTransport({ destinations: devDestinations, ca: [ca.certPem], cert: client.certPem, key: client.keyPem });
    try {
      const outcomes = [await call(t), await call(t), await call(t)];
      expect(outcomes.map((o) => (o.kind === 'answered' ? `${o.status} ${o.body}` : o.error))).toEqual(Array(3).fill('200 authorized:the DIP'));
    } finally {
      await t.close();
    }
    expect(peers.slice(-3)).toEqual(Array(3).fill('authorized:the DIP'));
  });

  it('refuses a server whose certificate another CA issued', async () => {
    const t = new UndiciWebhookTransport({ destinations: devDestinations, ca: [otherCa.certPem], cert: client.certPem, key: client.keyPem });
    try {
      const outcome = await call(t);
      expect(outcome.kind).toBe('failed');
      expect(outcome.kind === 'failed' ? outcome.error : '').toMatch(/certificate/i);
    } finally {
      await t.close();
    }
  });

  it('calls without a client certificate when it has none', async () => {
    const t = new UndiciWebhookTransport({ destinations: devDestinations, ca: [ca.certPem] });
    try {
      const outcome = await call(t);
      expect(outcome.kind === 'answered' ? outcome.body : outcome.error).toMatch(/^refused:/);
    } finally {
      await t.close();
    }
  });
});

/**
 * What a recipient's answer can do to its own calls and to other recipients' (found by a robustness
 * probe): a body that trickles for ever, or goes on for gigabytes, ends with the call's timeout or the
 * answer cap; a webhook that never answers holds up no other webhook on the same host and port.
 */
describe('UndiciWebhookTransport and recipients that misbehave', () => {
  let server: HttpServer;
  let base: string;
  const open = new Set<ServerResponse>();

  beforeAll(async () => {
    server = createHttpServer((req, res) => {
      req.resume();
      open.add(res);
      res.on('close', () => open.delete(res));
      if (req.url === '/trickle') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        // One byte now and then, for ever: the answer never ends.
        const drip = setInterval(() => res.write('.'), 50);
        res.on('close', () => clearInterval(drip));
      } else if (req.url === '/huge') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const chunk = Buffer.alloc(64 * 1024, 'x');
        const more = (): void => {
          while (res.write(chunk));
          res.once('drain', more);
        };
        more();
      } else if (req.url === '/multi-status') {
        // A 207 naming 300 messages, the last refused: about 290 bytes an entry, 87 kB in all.
        const entries = Array.from({ length: 300 }, (_, i) => ({ transactionID: `T-${i}`, message: i === 299 ? 'RCP1001 - Schema Failure' : 'RCP0000 - Message Success', help: 'x'.repeat(220) }));
        res.writeHead(207, { 'content-type': 'application/json' }).end(JSON.stringify({ messageArray: entries }));
      } else if (req.url !== '/silent') {
        res.writeHead(200).end('ok');
      }
      // '/silent' never answers.
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const res of open) res.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const post = (t: UndiciWebhookTransport, path: string, timeoutMs: number) => t.post({ url: `${base}${path}`, body: Buffer.from('[]'), headers: { 'content-type': 'application/json' }, timeoutMs });

  it('ends a call whose answer body trickles on with its timeout, as answered with its status', async () => {
    const t = new UndiciWebhookTransport({ destinations: devDestinations });
    try {
      const outcome = await post(t, '/trickle', 300);
      expect(outcome).toMatchObject({ kind: 'answered', status: 200 });
    } finally {
      await t.close();
    }
  });

  it('reads at most the answer cap of an endless body, and stops there', async () => {
    const t = new UndiciWebhookTransport({ destinations: devDestinations });
    try {
      const outcome = await post(t, '/huge', 60_000);
      expect(outcome.kind === 'answered' ? [outcome.status, outcome.body.length] : outcome.error).toEqual([200, 64 * 1024]);
    } finally {
      await t.close();
    }
  });

  it('reads a 207 naming every message of a large call whole when asked for its size, and says when it cut one off', async () => {
    const t = new UndiciWebhookTransport({ destinations: devDestinations });
    try {
      const call = { url: `${base}/multi-status`, body: Buffer.from('[]'), headers: {}, timeoutMs: 60_000 };
      const whole = await t.post({ ...call, maxAnswerBytes: answerBytes(300) });
      expect(whole.kind === 'answered' && { truncated: whole.truncated, refused: [...(refusedInMultiStatus(whole.body, Array.from({ length: 300 }, (_, i) => `T-${i}`)) ?? new Map()).keys()] }).toEqual({ truncated: undefined, refused: ['T-299'] });
      // At the default cap the answer is cut off, and the outcome says so.
      const cut = await t.post(call);
      expect(cut.kind === 'answered' && [cut.body.length, cut.truncated]).toEqual([64 * 1024, true]);
    } finally {
      await t.close();
    }
  });

  // OpenSSL's own words for it ("ERR_SSL_WRONG_VERSION_NUMBER: …ssl3_record.c:350") gave the operator no clue.
  it('says, for an https:// callbackURL at a plain-http receiver, that the receiver does not speak TLS', async () => {
    const t = new UndiciWebhookTransport({ destinations: devDestinations });
    try {
      const port = new URL(base).port;
      const outcome = await t.post({ url: `https://127.0.0.1:${port}/hook?key=secret`, body: Buffer.from('[]'), headers: {}, timeoutMs: 5_000 });
      expect(outcome.kind === 'failed' && outcome.error).toMatch(
        new RegExp(`^ERR_SSL_[A-Z_]+: the receiver at 127\\.0\\.0\\.1:${port} does not speak TLS \\(an http:// server behind an https:// callbackURL\\?\\); retried until the message goes stale$`),
      );
    } finally {
      await t.close();
    }
  });

  it('ends a call to an https:// receiver that takes the connection and never answers the TLS handshake by its timeout', async () => {
    // A fault campaign's "accepts the TCP connection and never answers", at an https:// callbackURL: the
    // call took undici's own connect timeout (10 s) whatever the delivery timeout, holding its queue that long.
    const sockets: Socket[] = [];
    const silent = createNetServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const t = new UndiciWebhookTransport({ destinations: devDestinations, connectTimeoutMs: 300 });
    try {
      const started = performance.now();
      const outcome = await t.post({ url: `https://127.0.0.1:${(silent.address() as AddressInfo).port}/`, body: Buffer.from('[]'), headers: {}, timeoutMs: 300 });
      expect(outcome).toMatchObject({ kind: 'failed', error: 'TIMEOUT: no answer within 300 ms: connecting, the TLS handshake or the answer\'s headers' });
      expect(performance.now() - started).toBeLessThan(3_000);
    } finally {
      await t.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('keeps a webhook that never answers from holding up another on the same host and port', async () => {
    const t = new UndiciWebhookTransport({ destinations: devDestinations });
    try {
      // More calls than an origin's pool has connections, all waiting on the silent webhook.
      let settled = 0;
      const stuck = Array.from({ length: 6 }, () => post(t, '/silent', 5_000).finally(() => (settled += 1)));
      const other = await post(t, '/other-recipient', 5_000);
      expect(other).toMatchObject({ kind: 'answered', status: 200, body: 'ok' });
      expect(settled).toBe(0);
      for (const res of open) res.destroy();
      await Promise.all(stuck);
    } finally {
      await t.close();
    }
  });
});
