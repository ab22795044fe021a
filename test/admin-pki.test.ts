import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelRouting } from '../src/pipeline/channels.js';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';

describe('certificate lifecycle on the operator API', () => {
  let t: TestDip;
  let admin: (method: 'GET' | 'POST', path: string, body?: unknown) => Promise<{ status: number; body: any }>;
  beforeAll(async () => {
    t = await startTestDip();
    const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    admin = async (method, path, body) => {
      const res = await request(`http://127.0.0.1:${t.dip.adminPort}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.statusCode, body: await res.body.json() };
    };
  });
  afterAll(async () => {
    await t?.close();
  });

  it('issues from a CSR (the key stays with the participant), revokes, and lists what expires', async () => {
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']));
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=anything', keys, signingAlgorithm: alg });
    const issued = await admin('POST', '/admin/pki/issue', { csr: csr.toString('pem'), dipIds: ['1000000042'], validDays: 10 });
    expect(issued.status).toBe(200);
    const cert = new X509Certificate(issued.body.certificate);
    expect(cert.subjectAltName).toContain('urn:dip:participant:1000000042');
    expect(cert.checkIssued(new X509Certificate(t.dip.pki.ca.certPem))).toBe(true);
    expect((await admin('POST', '/admin/pki/issue', { csr: 'garbage', dipIds: ['1000000042'] })).status).toBe(400);
    // The token only counts as a bearer credential.
    const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    const bare = await request(`http://127.0.0.1:${t.dip.adminPort}/admin/pki/revoked`, { headers: { authorization: token } });
    expect(bare.statusCode).toBe(401);
    await bare.body.dump();

    const revoked = await admin('POST', '/admin/pki/revoke', { certificate: issued.body.certificate, reason: 'keyCompromise' });
    expect(revoked.status).toBe(200);
    expect(revoked.body.dipIds).toEqual(['1000000042']);
    expect((await admin('GET', '/admin/pki/revoked')).body.map((e: { serialNumber: string }) => e.serialNumber)).toContain(revoked.body.serialNumber);

    // A participant registered with a 10-day certificate shows up as expiring.
    await t.participant('2000000001', ['SDS']);
    const expiring = await admin('GET', '/admin/pki/expiring?days=3650');
    expect(expiring.status).toBe(200);
    expect(expiring.body.length).toBeGreaterThan(0);
    expect((await admin('GET', '/admin/pki/expiring?days=1')).body).toEqual([]);
  });
});

describe('delivery audit trail on the operator API', () => {
  it('lists every webhook call of a queue with its answer and latency, never a key in the URL\'s query', async () => {
    const t = await startTestDip();
    try {
      const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
      const sds = await t.participant('2000000001', ['SDS']);
      const sup = await t.participant('1000000001', ['SUP']);
      const r = await t.receiver();
      // secretlint-disable-next-line -- a made-up key in the supplier's own webhook URL, to see it is not repeated
      const set = await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${r.url}?token=not-for-viewers` });
      expect(set.status).toBe(201);
      expect(JSON.stringify(set.body)).toContain('?token=…');
      expect(JSON.stringify(set.body)).not.toContain('not-for-viewers');
      expect((await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId] })])).status).toBe(201);
      let attempts: Array<{ verdict: string; status: number; firstSeq: number; latencyMs: number }> = [];
      await waitFor(async () => {
        const res = await request(`http://127.0.0.1:${t.dip.adminPort}/admin/attempts?recipient=${sup.dipId}&channel=IF-021`, { headers: { authorization: `Bearer ${token}` } });
        attempts = (await res.body.json()) as typeof attempts;
        return attempts.length > 0;
      }, 10_000, 'the delivery attempt to be recorded');
      expect(attempts).toHaveLength(1);
      expect(attempts[0]).toMatchObject({ verdict: 'delivered', status: 200, firstSeq: 1, url: `${r.url}?token=…` });
      expect(attempts[0]!.latencyMs).toBeGreaterThanOrEqual(0);
    } finally {
      await t.close();
    }
  });
});

describe('security categories choose the preferred pattern (spec 5.2.2)', () => {
  it('public data is signed; MPAN, PII and consumption data are encrypted via the DIP unless set otherwise', () => {
    const def = Catalogue.load().channel('IF-021')!;
    const pattern = (o: object) => channelRouting(def, o, 1).securityPattern;
    expect(pattern({})).toBe(1);
    expect(pattern({ securityCategory: 1 })).toBe(1);
    for (const c of [2, 3, 4]) expect(pattern({ securityCategory: c })).toBe(2);
    expect(pattern({ securityCategory: 4, securityPattern: 3 })).toBe(3);
  });
});
