import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DipAnswer } from '../src/client/dip-client.js';
import { notFromDip } from '../src/client/webhook-receiver.js';
import { contentHash, verifyDipSignature } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * Spec 5.2.2, pattern 1: the DIP signs what it sends and the recipient verifies. Webhook calls always
 * were; a recipient that pulls, or replays after losing data, got the same messages unsigned. Each pull and
 * replay answer is now signed as a webhook call is, over the request's method and URL and the answer's
 * bytes, and verified here as a webhook receiver verifies a call (verifyDipSignature, then notFromDip).
 */
describe('pull and replay answers carry the DIP signature', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  beforeAll(async () => {
    t = await startTestDip();
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    for (const suffix of ['a', 'b']) {
      const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `sig${suffix}` })]);
      expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    }
  });
  afterAll(async () => t?.close());

  /** What a recipient checks: the signature over METHOD;url;date;hash of the bytes, and that the signer is the DIP. */
  const verify = (method: string, answer: DipAnswer<unknown>): string | null => {
    const r = verifyDipSignature({ method, url: answer.url, body: answer.raw, headers: answer.headers, now: new Date(), maxSkewMs: 300_000 });
    if (!r.ok) return `${r.reason}: ${r.detail}`;
    return notFromDip(r.certificate, [t.dip.pki.ca.certPem]);
  };

  it('signs a pull answer over its exact bytes, which stay the bare egress array', async () => {
    const pulled = await sup.client.pull('IF-021', sup.dipId);
    expect(pulled.status).toBe(200);
    expect(pulled.body).toHaveLength(2);
    expect(verify('GET', pulled)).toBeNull();
    expect(pulled.headers['x-dip-content-hash']).toBe(contentHash(pulled.raw));
    // The body is what it was: a JSON array of the copies, nothing wrapped around it.
    expect(pulled.raw.toString('utf8')).toBe(`[${pulled.body.map((m) => JSON.stringify(m)).join(',')}]`);
    expect(pulled.headers['content-type']).toBe('application/json; charset=utf-8');
    // Bound to the request: the same answer does not verify as one to another URL or method.
    expect(verify('GET', { ...pulled, url: pulled.url.replace('/pull/', '/replay/') })).toMatch(/^bad-signature|^method-or-url/);
    expect(verify('POST', pulled)).toMatch(/^method-or-url/);
    // Nor with a byte changed.
    expect(verify('GET', { ...pulled, raw: Buffer.from(pulled.raw.toString('utf8').replace('"', ' "')) })).toMatch(/^bad-hash/);
  });

  it('signs an empty pull answer too', async () => {
    const ldso = await t.participant('3000000001', ['LDSO']);
    const nothing = await ldso.client.pull('IF-021', ldso.dipId);
    expect([nothing.status, nothing.raw.toString('utf8')]).toEqual([200, '[]']);
    expect(verify('GET', nothing)).toBeNull();
  });

  it('signs a replay answer (a 206 page goes through the same sendSigned)', async () => {
    const filter = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00' };
    const replayed = await sup.client.replay('IF-021', sup.dipId, filter);
    expect(replayed.status).toBe(200);
    expect(replayed.body).toHaveLength(2);
    expect(verify('POST', replayed)).toBeNull();
    expect(replayed.headers['content-type']).toBe('application/json; charset=utf-8');
  });
});
