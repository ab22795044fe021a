/**
 * A participant's adapter written from the published reference alone (/work/shared/reference: the
 * OpenAPI 2.1.0, DI-999's codes, the README's signing scheme), not from src/client: node:https with
 * mutual TLS, its own signer, its own webhook receiver that verifies the DIP's signature itself. It
 * walks what a newcomer does (webhook, submissions routed by primary recipient, by MPAN and by role, a
 * pull, a replay and a status message about what came back) and the mistakes a newcomer makes, and
 * holds every answer to the published StandardResponse, built from the reference YAML (not from the
 * DIP's own schemas): the status, the DI-999 code, and a help that names the field at fault.
 */
import { createHash, sign, verify, X509Certificate } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { oracle } from './helpers/published-oracle.js';
import { HAVE_REFERENCE } from './helpers/reference.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  json: unknown;
}

interface Delivery {
  path: string;
  body: string;
  verified: string | true;
}

type Entry = { transactionID: string | null; recipientID: string | null; message: string | null; help: string | null };
const entries = (a: Answer): Entry[] => (a.json as { messageArray: Entry[] }).messageArray;

describe.skipIf(!HAVE_REFERENCE)("a newcomer's adapter, written from the reference alone", () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let sup2: TestParticipant;
  let mds: TestParticipant;
  let hook: Server;
  let hookBase = '';
  const deliveries: Delivery[] = [];
  const standardResponse = HAVE_REFERENCE ? oracle('StandardResponse') : null;
  const MPAN = '1200000000009';

  /** The README's scheme: METHOD;url-lower-cased;date;base64(SHA-256(body)), RSASSA-PKCS1-v1_5 SHA-256. */
  function signed(method: string, url: string, body: Buffer, p: TestParticipant): Record<string, string> {
    const hash = createHash('sha256').update(body).digest('base64');
    const date = new Date().toISOString();
    const signature = sign('sha256', Buffer.from(`${method};${url.toLowerCase()};${date};${hash}`, 'utf8'), p.credentials.keyPem).toString('base64');
    return {
      'X-DIP-Content-Hash': hash,
      'X-DIP-Signature-Date': date,
      'X-DIP-Signature': signature,
      'X-DIP-Signature-Certificate': Buffer.from(p.credentials.certPem).toString('base64'),
    };
  }

  interface CallOptions {
    contentType?: string;
    drop?: string[];
    headers?: Record<string, string>;
  }

  function call(p: TestParticipant, method: string, path: string, body?: unknown, o: CallOptions = {}): Promise<Answer> {
    const bytes = body === undefined ? Buffer.alloc(0) : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const url = `${t.dip.url}${path}`;
    const headers: Record<string, string> = { 'X-API-Key': p.apiKey, 'Content-Type': o.contentType ?? 'application/json', ...signed(method, url, bytes, p), ...o.headers };
    for (const h of o.drop ?? []) delete headers[h];
    return new Promise((resolve, reject) => {
      const req = request(url, { method, headers, key: p.credentials.keyPem, cert: p.credentials.certPem, ca: t.dip.pki.ca.certPem, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text === '' ? null : (JSON.parse(text) as unknown) });
        });
      });
      req.on('error', reject);
      req.end(bytes);
    });
  }

  /** The published StandardResponse (all ten fields of each entry, 25-character timestamps), and JSON. */
  function expectPublished(a: Answer): void {
    expect(a.headers['content-type']).toMatch(/^application\/json/);
    const ok = standardResponse!(a.json);
    expect(ok, `${JSON.stringify(standardResponse!.errors)} in ${JSON.stringify(a.json)}`).toBe(true);
  }

  /** What a receiver must check of the DIP's call (reference README, "Message signing"). */
  function verifyDelivery(method: string, url: string, headers: IncomingHttpHeaders, body: Buffer): string | true {
    const hash = createHash('sha256').update(body).digest('base64');
    if (hash !== headers['x-dip-content-hash']) return 'content hash';
    const cert = new X509Certificate(Buffer.from(String(headers['x-dip-signature-certificate']), 'base64').toString('utf8'));
    if (!cert.verify(new X509Certificate(t.dip.pki.ca.certPem).publicKey)) return 'certificate not from the environment CA';
    // "belongs to the sender": the DIP's signing certificate (GET /certificates/dip), not any from its CA.
    if (!cert.raw.equals(new X509Certificate(t.dip.pki.signing.certPem).raw)) return "not the DIP's signing certificate";
    const date = String(headers['x-dip-signature-date']);
    if (!(Math.abs(Date.now() - Date.parse(date)) < 300_000)) return 'clock skew';
    const toSign = `${method};${url.toLowerCase()};${date};${hash}`;
    return verify('sha256', Buffer.from(toSign, 'utf8'), cert.publicKey, Buffer.from(String(headers['x-dip-signature']), 'base64')) || 'signature';
  }

  const if021 = (opts: { to?: string[]; suffix: string }) => [
    buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: opts.to ?? [], uniqueSuffix: `${opts.suffix}${process.pid}`, mpan: MPAN }),
  ];

  beforeAll(async () => {
    t = await startTestDip();
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    sup2 = await t.participant('1000000002', ['SUP']);
    mds = await t.participant('4000000001', ['MDS']);
    // sup2 is the supplier responsible for the MPAN: it is found by the lookup, never named.
    await t.dip.backend.mpan.applyAppointments([{ kind: 'appoint', mpan: MPAN, slot: 'SUP', dipId: sup2.dipId, fromMs: 0, toMs: null }]);
    hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        deliveries.push({ path: req.url ?? '', body: body.toString('utf8'), verified: verifyDelivery(req.method ?? '', `http://${req.headers.host}${req.url}`, req.headers, body) });
        res.writeHead(201, { 'content-type': 'application/json' }).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookBase = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await new Promise((r) => hook?.close(r));
    await t?.close();
  });

  it('registers webhooks, submits by primary recipient, by MPAN and by role, and verifies every delivery itself', async () => {
    for (const p of [sup, sup2, mds]) {
      const set = await call(p, 'POST', `/dip-channel/IF-021/pubconfig/${p.dipId}`, { callbackURL: `${hookBase}/${p.dipId}` });
      expect(set.status).toBe(201);
      expectPublished(set);
    }
    const primary = await call(sds, 'POST', '/dip-channel/IF-021', if021({ to: [sup.dipId], suffix: 'primary' }));
    expect(primary.status).toBe(201);
    expectPublished(primary);
    expect(entries(primary)[0]!.message).toBe('MSG0000 - Success');
    const byMpan = await call(sds, 'POST', '/dip-channel/IF-021', if021({ suffix: 'bympan' }));
    expect(byMpan.status).toBe(201);
    const [first, second] = [entries(primary)[0]!.transactionID, entries(byMpan)[0]!.transactionID];
    const got = (tx: string | null) =>
      deliveries
        .filter((d) => d.body.includes(tx ?? '-'))
        .map((d) => d.path)
        .sort();
    // Several messages may share one call: wait for who got each, not for a number of calls.
    await waitFor(() => got(first).length >= 3 && got(second).length >= 2, 20_000, 'both submissions delivered');
    // Primary: the named supplier, plus the MPAN's supplier and the always-routed MDS; by MPAN: those two.
    expect(got(first)).toEqual([`/${sup.dipId}`, `/${sup2.dipId}`, `/${mds.dipId}`].sort());
    expect(got(second)).toEqual([`/${sup2.dipId}`, `/${mds.dipId}`].sort());
    expect(deliveries.map((d) => d.verified)).toEqual(deliveries.map(() => true));
    const d0 = (JSON.parse(deliveries[0]!.body) as Array<{ payload: { CommonBlock: { D0: Record<string, unknown> } } }>)[0]!.payload.CommonBlock.D0;
    expect(Object.keys(d0).sort()).toEqual(['initialCorrelationID', 'publicationID', 'replayIndicator', 'serviceTicketURL', 'transactionID', 'transactionTimestamp']);
    expect(d0.publicationID).toBe('PUB-021');
  });

  it('answers each newcomer mistake with the published StandardResponse, its DI-999 code and the field at fault', async () => {
    const body = (suffix: string) => if021({ to: [sup.dipId], suffix });
    const mutated = (suffix: string, change: (m: ReturnType<typeof buildIF021>) => void) => {
      const b = body(suffix);
      change(b[0]!);
      return b;
    };
    const cases: Array<[string, () => Promise<Answer>, number, string, RegExp]> = [
      ['text/plain', () => call(sds, 'POST', '/dip-channel/IF-021', body('ct'), { contentType: 'text/plain' }), 400, 'MSG1001', /Content-Type 'text\/plain'.*application\/json/],
      ['no X-API-Key', () => call(sds, 'POST', '/dip-channel/IF-021', body('key'), { drop: ['X-API-Key'] }), 401, 'MSG1000', /X-API-Key/],
      ['no signature', () => call(sds, 'POST', '/dip-channel/IF-021', body('sig'), { drop: ['X-DIP-Signature'] }), 401, 'MSG1000', /x-dip-signature is missing/],
      ['no signature date', () => call(sds, 'POST', '/dip-channel/IF-021', body('date'), { drop: ['X-DIP-Signature-Date'] }), 401, 'MSG1000', /x-dip-signature-date is missing/],
      ['an unknown interface', () => call(sds, 'POST', '/dip-channel/IF-999', body('if')), 404, 'MSG1002', /IF-999/],
      ['the wrong interface in S0', () => call(sds, 'POST', '/dip-channel/IF-021', mutated('s0', (m) => ((m.payload.CommonBlock.S0 as { interfaceID: string }).interfaceID = 'IF-033'))), 400, 'MSG1002', /S0\.interfaceID/],
      ['a channel the sender does not send on', () => call(sds, 'POST', '/dip-channel/IF-033', body('role')), 403, 'MSG1010', /SDS.*IF-033/],
      ['malformed JSON', () => call(sds, 'POST', '/dip-channel/IF-021', '[{"payload": {'), 400, 'MSG1001', /not valid JSON/],
      ['an object, not an array', () => call(sds, 'POST', '/dip-channel/IF-021', body('obj')[0]), 400, 'MSG1001', /JSON array/],
      ['a missing MPAN', () => call(sds, 'POST', '/dip-channel/IF-021', mutated('mpan', (m) => delete (m.payload.CommonBlock.M0 as { MPANCore?: string }).MPANCore)), 400, 'MSG1001', /M0\.MPANCore is required/],
      ['a date without its offset', () => call(sds, 'POST', '/dip-channel/IF-021', mutated('ts', (m) => (m.payload.CommonBlock.S1.senderTimestamp = '2026-12-04T22:35:28Z'))), 400, 'MSG1007', /S1\.senderTimestamp/],
      ['another sender DIP ID', () => call(sds, 'POST', '/dip-channel/IF-021', mutated('id', (m) => (m.payload.CommonBlock.S1.senderDIPID = '2000000009'))), 403, 'MSG1009', /S1\.senderDIPID/],
      ['an unknown primary recipient', () => call(sds, 'POST', '/dip-channel/IF-021', mutated('to', (m) => (m.payload.CommonBlock.A0!.primaryRecipients = ['9999999999']))), 400, 'MSG1031', /9999999999/],
      ['GET on a submission', () => call(sds, 'GET', '/dip-channel/IF-021'), 405, 'MSG1000', /allowed: POST/],
      ['a mistyped route', () => call(sds, 'POST', '/dip-channels/IF-021', body('route')), 404, 'MSG1000', /\/dip-channels\/IF-021/],
      ['a replay without the required fields', () => call(sup, 'POST', `/dip-channel/IF-021/replay/${sup.dipId}`, { datetimeFrom: '2026-12-04T00:00:00+00:00' }), 400, 'MSG1001', /datetimeTo is required/],
      ['a webhook for someone else', () => call(sup, 'POST', `/dip-channel/IF-021/pubconfig/${sup2.dipId}`, { callbackURL: `${hookBase}/x` }), 403, 'MSG1000', /recipient-id/],
      ['an acknowledgement past the pull', () => call(sds, 'POST', `/statusmessage/ack/${sds.dipId}`, { sequence: 99 }), 400, 'MSG1001', /sequence 99/],
      ['an acknowledgement on a channel pushed to its webhook', () => call(sup, 'POST', `/dip-channel/IF-021/ack/${sup.dipId}`, { sequence: 99 }), 409, 'MSG1000', /pushed to your webhook/],
    ];
    for (const [what, send, status, code, help] of cases) {
      const a = await send();
      expect([what, a.status]).toEqual([what, status]);
      expectPublished(a);
      const [entry] = entries(a);
      expect([what, entry!.message?.slice(0, 7)]).toEqual([what, code]);
      expect(entry!.help, what).toMatch(help);
    }
    // The path's case is not enforced on ingress (the published note on case): the same call is taken.
    const anyCase = await call(sds, 'POST', '/DIP-CHANNEL/if-021', body('case'));
    expect(anyCase.status).toBe(201);
  });

  it('takes a status message about a copy a replay returned, naming its R- transaction ID, back to the sender about the transaction it sent', async () => {
    const sent = await call(sds, 'POST', '/dip-channel/IF-021', if021({ to: [sup.dipId], suffix: 'status' }));
    expect(sent.status).toBe(201);
    const from = new Date(Date.now() - 3_600_000).toISOString().slice(0, 19) + '+00:00';
    const to = new Date(Date.now() + 3_600_000).toISOString().slice(0, 19) + '+00:00';
    const replay = await call(sup, 'POST', `/dip-channel/IF-021/replay/${sup.dipId}`, { datetimeFrom: from, datetimeTo: to, eventCode: 'ActivePower', MPAN, version: '011' });
    expect(replay.status).toBe(200);
    const copy = (replay.json as Array<{ payload: { CommonBlock: { D0: { transactionID: string } } }; originalTransactionID: string }>)[0]!;
    const copyId = copy.payload.CommonBlock.D0.transactionID;
    expect(copyId).toMatch(/^R-IF-021-/);
    const now = new Date().toISOString().slice(0, 19) + '+00:00';
    const status = [{ transactionID: copyId, senderUniqueReference: null, correlationID: null, sentTimestamp: now, senderID: sup.dipId, recipientID: sds.dipId, DIPConnectionProviderID: null, message: 'RCP1061 - MPAN Invalid or Unknown', help: 'not our MPAN', serviceTicketURL: null }];
    const answer = await call(sup, 'POST', '/statusmessage', status);
    expectPublished(answer);
    expect([answer.status, entries(answer)[0]!.help]).toEqual([201, null]);
    const pulled = await call(sds, 'GET', `/statusmessage/pull/${sds.dipId}?maxMessageCount=10`);
    expect(pulled.status).toBe(200);
    // The sender never saw the copy's R- ID: it is told about its own transaction, the copy named in the help.
    const original = copy.originalTransactionID;
    expect((pulled.json as Entry[]).map((e) => [e.transactionID, e.message, e.help])).toContainEqual([original, 'RCP1061 - MPAN Invalid or Unknown', `about the replayed copy ${copyId} of ${original}: not our MPAN`]);
  });
});
