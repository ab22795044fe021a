/**
 * A client certificate refused on the participant listener (src/api/certificate-answer.ts): one from the
 * environment's CA that is revoked, expired or not yet valid is told why (401, a StandardResponse), its
 * connection closed after the answer, and reaches no route; no certificate, or one from an unknown CA, is
 * still dropped with no HTTP answer. Real TLS sockets (node:https, a new connection per request).
 */
import { request } from 'node:https';
import { connect, type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pkiDir } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createCertificateAuthority, issueParticipantCertificate, type KeyAndCert } from '../src/security/pki.js';
import { revokeCertificate } from '../src/security/revocation.js';
import { certificateInfo } from '../src/security/signature.js';
import { forgeCertificate } from './hostile/helpers.js';
import { ShiftableClock, SteppedClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

const DAY = 24 * 3600_000;

/** A participant certificate from `ca` valid only from `from` to `to` (issueParticipantCertificate issues from now). */
const certificateValid = (ca: KeyAndCert, dipId: string, notBefore: Date, notAfter: Date) => forgeCertificate({ dipId, ca, notBefore, notAfter });

type Outcome = { answered: true; status: number; body: Record<string, unknown>; connection: string | undefined; closed: boolean } | { answered: false; error: string };

describe('a refused client certificate is told why', () => {
  let t: TestDip;
  let revoked: TestParticipant;
  let fine: TestParticipant;

  /** One request on a new TLS connection with `creds` (none: no certificate). */
  const ask = (creds: Partial<KeyAndCert>, path = '/health', method = 'GET', body?: string): Promise<Outcome> =>
    new Promise((resolve) => {
      const req = request(
        { host: '127.0.0.1', port: t.dip.port, servername: 'localhost', path, method, agent: false, ca: t.dip.pki.ca.certPem, cert: creds.certPem, key: creds.keyPem, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c));
          res.on('end', () => {
            const closed = () => resolve({ answered: true, status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown>, connection: res.headers.connection, closed: true });
            if (res.socket.destroyed) closed();
            else res.socket.once('close', closed);
          });
        },
      );
      req.on('error', (e: Error & { code?: string }) => resolve({ answered: false, error: `${e.message} ${e.code ?? ''}` }));
      req.end(body);
    });

  beforeAll(async () => {
    t = await startTestDip({ revocationPollMs: 50 });
    await t.participant('1000000001', ['SUP']);
    revoked = await t.participant('2000000001', ['SDS']);
    fine = await t.participant('2000000002', ['SDS']);
    await revokeCertificate(pkiDir(t.config), t.dip.backend.registry, revoked.credentials.certPem, 'keyCompromise');
    await waitFor(async () => {
      const o = await ask(revoked.credentials);
      return o.answered && o.status === 401;
    }, 10_000, 'the revocation to be read', 20);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a revoked certificate: 401 naming its serial and revocation on the first request, then the connection closed', async () => {
    const o = await ask(revoked.credentials);
    expect(o.answered).toBe(true);
    if (!o.answered) return;
    expect(o.status).toBe(401);
    expect(o.connection).toBe('close');
    expect(o.closed).toBe(true);
    const serial = certificateInfo(revoked.credentials.certPem).serialNumber;
    expect(JSON.stringify(o.body)).toMatch(new RegExp(`TLS client certificate \\(serial ${serial}\\) was revoked at .* \\(keyCompromise\\): ask the DIP operator for a new certificate`));
    // The published StandardResponse shape.
    expect(o.body).toMatchObject({ messageArray: [expect.objectContaining({ recipientID: null })] });
  });

  it('a revoked certificate reaches no route: health, documents, submit, pull, an unknown path', async () => {
    const item = JSON.stringify([{}]);
    for (const [method, path, body] of [
      ['GET', '/health'],
      ['GET', '/api/docs/json'],
      ['GET', '/api/docs'],
      ['POST', '/dip-channel/IF-021', item],
      ['GET', '/dip-channel/IF-021/pull/2000000001'],
      ['GET', '/no/such/path'],
    ] as const) {
      const o = await ask(revoked.credentials, path, method, body);
      expect(o.answered && o.status, `${method} ${path}`).toBe(401);
      if (o.answered) expect(JSON.stringify(o.body), `${method} ${path}`).toMatch(/was revoked at/);
    }
    // Another participant's certificate is unaffected.
    const ok = await ask(fine.credentials);
    expect(ok.answered && ok.status).toBe(200);
  });

  it('an expired certificate: 401 naming when it expired', async () => {
    const expired = await certificateValid(t.dip.pki.ca, '2000000001', new Date(Date.now() - 30 * DAY), new Date(Date.now() - DAY));
    const o = await ask(expired, '/dip-channel/IF-021/pull/2000000001');
    expect(o.answered && o.status).toBe(401);
    if (o.answered) {
      expect(JSON.stringify(o.body)).toMatch(/TLS client certificate \(serial [0-9A-F]+\) expired at \d{4}-\d\d-\d\dT.*: request a new certificate/);
      expect(o.closed).toBe(true);
    }
  });

  it('a certificate not yet valid: 401 naming when it becomes valid', async () => {
    const early = await certificateValid(t.dip.pki.ca, '2000000001', new Date(Date.now() + DAY), new Date(Date.now() + 30 * DAY));
    const o = await ask(early);
    expect(o.answered && o.status).toBe(401);
    if (o.answered) expect(JSON.stringify(o.body)).toMatch(/is not valid before \d{4}-/);
  });

  it('a TLS session from before the revocation, offered again after it, is answered 401 too', async () => {
    const late = await t.participant('2000000003', ['SDS']);
    /** One raw request on a new TLS connection; the session the server gave, whether it was reused, and the answer. */
    const raw = (opts: ConnectionOptions) =>
      new Promise<{ reused: boolean; session?: Buffer; text: string }>((resolve, reject) => {
        let session: Buffer | undefined;
        let text = '';
        let reused = false;
        const socket = connect({ host: '127.0.0.1', port: t.dip.port, servername: 'localhost', ca: t.dip.pki.ca.certPem, cert: late.credentials.certPem, key: late.credentials.keyPem, maxVersion: 'TLSv1.2', ...opts }, () => {
          reused = socket.isSessionReused();
          socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
        });
        socket.on('session', (s: Buffer) => (session = s));
        socket.setEncoding('utf8').on('data', (c: string) => (text += c));
        socket.on('error', reject);
        socket.on('close', () => resolve({ reused, session, text }));
      });
    const first = await raw({});
    expect(first.text).toMatch(/^HTTP\/1\.1 200/);
    // The listener resumes sessions: the control.
    expect((await raw({ session: first.session })).reused).toBe(true);
    await revokeCertificate(pkiDir(t.config), t.dip.backend.registry, late.credentials.certPem, 'superseded');
    await waitFor(async () => {
      const o = await ask(late.credentials);
      return o.answered && o.status === 401;
    }, 10_000, 'the revocation to be read', 20);
    // Installing the new CRL replaced the TLS context (its ticket keys with it): the session is not resumed
    // today. Resumed or not, the answer is the same 401, from the revocation looked up per request.
    const resumed = await raw({ session: first.session });
    expect(resumed.text).toMatch(/^HTTP\/1\.1 401/);
    expect(resumed.text).toMatch(/was revoked at .* \(superseded\)/);
  });

  it('no certificate, or one from an unknown CA (valid or expired), is dropped with no HTTP answer', async () => {
    const otherCa = await createCertificateAuthority({ commonName: 'Other CA', environment: 'DEV', validDays: 30 });
    const foreign = await issueParticipantCertificate(otherCa, { organisation: 'X', dipIds: ['2000000001'], environment: 'DEV', validDays: 30 });
    const foreignExpired = await certificateValid(otherCa, '2000000001', new Date(Date.now() - 30 * DAY), new Date(Date.now() - DAY));
    for (const [name, creds] of [['none', {}], ['unknown CA', foreign], ['unknown CA, expired', foreignExpired]] as const) {
      const o = await ask(creds);
      expect(o.answered, name).toBe(false);
    }
  });
});

describe("a refused certificate's connections hold none of its participant's places", () => {
  let t: TestDip;
  let sup: TestParticipant;
  beforeAll(async () => {
    t = await startTestDip({ http: { ...loadConfig({}).http, maxConnectionsPerClient: 2, headersTimeoutMs: 60_000 } });
    sup = await t.participant('1000000001', ['SUP']);
    await t.participant('2000000001', ['SDS']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("three idle connections with the participant's expired certificate leave its live client served", async () => {
    const expired = await certificateValid(t.dip.pki.ca, '1000000001', new Date(Date.now() - 30 * DAY), new Date(Date.now() - DAY));
    // Connections that finished their handshake and send nothing: kept open only to be told 401, at their first request.
    const idle = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<ReturnType<typeof connect>>((resolve, reject) => {
            const s = connect({ host: '127.0.0.1', port: t.dip.port, servername: 'localhost', ca: t.dip.pki.ca.certPem, cert: expired.certPem, key: expired.keyPem } satisfies ConnectionOptions, () => resolve(s));
            s.once('error', reject);
          }),
      ),
    );
    try {
      // Before: they counted as 1000000001's own (its certificate's DIP ID), and its live client was answered 429.
      const pulled = await sup.client.pull('IF-021', sup.dipId);
      expect(pulled.status).toBe(200);
    } finally {
      for (const s of idle) s.destroy();
    }
  });
});

/** One kept-alive TLS connection, asked one GET at a time (raw HTTP/1.1: no agent opens another behind the test's back). */
function keptAlive(port: number, ca: string, creds: KeyAndCert) {
  let text = '';
  let closed = false;
  const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, cert: creds.certPem, key: creds.keyPem });
  socket.setEncoding('utf8').on('data', (c: string) => (text += c));
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  /** The first whole response in `text`, taken out of it. */
  const response = (): { status: number; head: string; body: string } | null => {
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = text.slice(0, end);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (text.length < end + 4 + length) return null;
    const body = text.slice(end + 4, end + 4 + length);
    text = text.slice(end + 4 + length);
    return { status: Number(head.split(' ')[1]), head, body };
  };
  return {
    get closed() {
      return closed;
    },
    async get(path: string) {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      let r: ReturnType<typeof response> = null;
      await waitFor(() => (r = response()) !== null || closed, 10_000, `an answer to GET ${path}`);
      if (r === null) throw new Error(`the connection closed unanswered: GET ${path}`);
      return r as { status: number; head: string; body: string };
    },
    destroy: () => socket.destroy(),
  };
}

describe('a kept-alive connection whose certificate expires or is revoked is cut', () => {
  /**
   * The DIP's clock: `clock.step` moves its time alone, `elapsed.jump` runs its timers (the sweep of idle
   * connections, every connectionsCheckingIntervalMs: a minute here, so that it runs only when a test jumps).
   */
  const elapsed = new ShiftableClock();
  const clock = new SteppedClock(elapsed);
  const SWEEP_MS = 60_000;
  let t: TestDip;
  let sds: TestParticipant;
  /** Valid now, for an hour more of the DIP's clock (which the tests move forward; the handshake reads the real one). */
  const shortLived = () => certificateValid(t.dip.pki.ca, '2000000001', new Date(Date.now() - DAY), new Date(clock.now() + 3600_000));
  beforeAll(async () => {
    t = await startTestDip({ revocationPollMs: 50, http: { ...loadConfig({}).http, connectionsCheckingIntervalMs: SWEEP_MS } }, undefined, { clock });
    await t.participant('1000000001', ['SUP']);
    sds = await t.participant('2000000001', ['SDS']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a request after notAfter on a connection opened before it: 401 naming the expiry, then the connection closed', async () => {
    const creds = await shortLived();
    const c = keptAlive(t.dip.port, t.dip.pki.ca.certPem, creds);
    try {
      expect((await c.get('/health')).status).toBe(200);
      clock.step(2 * 3600_000);
      const refused = await c.get('/health');
      // Before: 200, served for as long as the client kept the connection open.
      expect(refused.status).toBe(401);
      expect(refused.body).toMatch(/TLS client certificate \(serial [0-9A-F]+\) expired at \d{4}-\d\d-\d\dT.*: request a new certificate/);
      expect(refused.head).toMatch(/\r\nconnection: close/i);
      await waitFor(() => c.closed, 10_000, 'the connection closed after the 401');
    } finally {
      c.destroy();
    }
  });

  it('an idle connection is closed once its certificate expires, with no request on it', async () => {
    const creds = await shortLived();
    const c = keptAlive(t.dip.port, t.dip.pki.ca.certPem, creds);
    try {
      expect((await c.get('/health')).status).toBe(200);
      clock.step(2 * 3600_000);
      elapsed.jump(SWEEP_MS);
      // Before: open until the client closed it.
      await waitFor(() => c.closed, 10_000, 'the idle connection closed at its certificate\'s expiry');
    } finally {
      c.destroy();
    }
  });

  it('an idle connection is closed once its certificate is revoked; a bystander\'s stays open', async () => {
    const c = keptAlive(t.dip.port, t.dip.pki.ca.certPem, sds.credentials);
    const other = await t.participant('2000000002', ['SDS']);
    const bystander = keptAlive(t.dip.port, t.dip.pki.ca.certPem, other.credentials);
    try {
      expect((await c.get('/health')).status).toBe(200);
      expect((await bystander.get('/health')).status).toBe(200);
      await revokeCertificate(pkiDir(t.config), t.dip.backend.registry, sds.credentials.certPem, 'keyCompromise');
      // Read by the listener once a new connection with the certificate is refused.
      await waitFor(async () => {
        const probe = keptAlive(t.dip.port, t.dip.pki.ca.certPem, sds.credentials);
        try {
          return (await probe.get('/health')).status === 401;
        } finally {
          probe.destroy();
        }
      }, 10_000, 'the revocation to be read', 20);
      expect(c.closed).toBe(false);
      elapsed.jump(SWEEP_MS);
      // Before: open, and refused only at its next request.
      await waitFor(() => c.closed, 10_000, 'the idle connection closed at the revocation');
      expect(bystander.closed).toBe(false);
      expect((await bystander.get('/health')).status).toBe(200);
    } finally {
      c.destroy();
      bystander.destroy();
    }
  });
});
