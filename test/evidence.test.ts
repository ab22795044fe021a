/**
 * Non-repudiation (spec 5.2.2): for a transaction it accepted, the DIP hands an auditor the request exactly
 * as the sender signed it, with the headers and URL the signature covers, and its own check of it; the
 * auditor can check it again without the DIP (here: the verifier every adapter uses, on the bytes given).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evidenceOf, type Evidence } from '../src/pipeline/evidence.js';
import { verifyDipSignature } from '../src/security/signature.js';
import { buildIF021, mpanCore } from '../src/sim/messages.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

const SDS = '2000000001';
const SUP = '1000000001';

describe('evidence against repudiation: GET /admin/evidence/{transactionId}', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let adminToken = '';
  const admin = async (path: string) => {
    const res = await request(`http://127.0.0.1:${t.dip.adminPort}${path}`, { headers: { authorization: `Bearer ${adminToken}` } });
    return { status: res.statusCode, body: (await res.body.json()) as Evidence & { error?: string } };
  };

  beforeAll(async () => {
    t = await startTestDip();
    adminToken = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    sds = await t.participant(SDS, ['SDS']);
    await t.participant(SUP, ['SUP']);
  }, 60_000);
  afterAll(async () => {
    await t?.close();
  });

  it('gives the request as signed, which verifies again without the DIP, and names its signer', async () => {
    const items = [0, 1].map((n) => buildIF021({ senderDipId: SDS, senderRole: 'SDS', mpan: mpanCore(`evidence-${n}`), primaryRecipients: [SUP], uniqueSuffix: `evid${n}` }));
    expect((await sds.client.submit('IF-021', items)).status).toBe(201);
    const archived = await t.dip.backend.archive.findArchived({ recipientDipId: SUP, channel: 'IF-021', limit: 10 });
    expect(archived).toHaveLength(2);

    const { status, body: e } = await admin(`/admin/evidence/${archived[1]!.transactionId}`);
    expect(status).toBe(200);
    expect(e).toMatchObject({ transactionId: archived[1]!.transactionId, channel: 'IF-021', sender: SDS, request: { method: 'POST' } });
    expect(e.request.url).toMatch(/\/dip-channel\/IF-021$/);
    // The whole batch, byte for byte: both messages, as the sender wrote them.
    const body = Buffer.from(e.request.body, 'base64');
    expect(JSON.parse(body.toString())).toEqual(JSON.parse(JSON.stringify(items)));
    expect(e.verification).toMatchObject({ result: 'valid', namesSender: true, signedBy: { fingerprint256: new X509Certificate(sds.credentials.certPem).fingerprint256.replace(/:/g, ''), dipIds: [SDS] } });

    // An auditor's own check, on what the answer holds and nothing else.
    const again = verifyDipSignature({ method: 'POST', url: e.request.url!, body, headers: e.request.headers, now: new Date(e.receivedAt), maxSkewMs: 300_000 });
    expect(again.ok).toBe(true);
    // A byte changed is caught, by the DIP's check as by the auditor's.
    const received = { channel: e.channel, senderDipId: e.sender, receivedAt: Date.parse(e.receivedAt), body: Buffer.from(body.toString().replace(SUP, '1000000009')), signature: { url: e.request.url, headers: e.request.headers } };
    expect(evidenceOf(e.transactionId, received, 300_000).verification).toMatchObject({ result: 'invalid', reason: 'bad-hash' });
  });

  it('says when the DIP made the request itself, or could not keep the URL; refuses an unknown transaction with 404', async () => {
    const made = { channel: 'DIP-STATUS', senderDipId: 'DIP', receivedAt: Date.now(), body: Buffer.from('[]'), signature: { url: null, headers: {} } };
    expect(evidenceOf('T-1', made, 300_000).verification).toMatchObject({ result: 'unsigned', detail: expect.stringContaining('the DIP made this request itself') });
    const old = { ...made, signature: { url: null, headers: { 'x-dip-signature': 'c2ln' } } };
    expect(evidenceOf('T-2', old, 300_000).verification).toMatchObject({ result: 'unsigned', detail: expect.stringContaining('before the DIP kept the URL') });
    const unknown = await admin('/admin/evidence/T-IF-021-0000000000-SDS-20260101-0000000000000000');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toContain('no archived transaction');
  });
});
