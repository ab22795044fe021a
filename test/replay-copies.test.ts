import { createPrivateKey, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayCorrelationId } from '../src/pipeline/replay.js';
import { decryptWith, encryptTo } from '../src/security/payload-encryption.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

/**
 * Synchronous replay answers a recipient with exactly the copy its webhook got (obfuscated for its role,
 * encrypted for it on patterns 2 and 3), re-issued as a replay: new R- transaction ID, replayIndicator true.
 */
const FILTER = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00' };

async function setUp(t: TestDip, ids: Array<[string, string]>) {
  const sds = await t.participant('2000000001', ['SDS']);
  const recipients: Array<{ p: TestParticipant; r: Awaited<ReturnType<TestDip['receiver']>> }> = [];
  for (const [id, role] of ids) {
    const p = await t.participant(id, [role]);
    const r = await t.receiver();
    expect((await p.client.setWebhook('IF-021', id, { callbackURL: r.url })).status).toBe(201);
    recipients.push({ p, r });
  }
  return { sds, recipients };
}

async function replayOne(p: TestParticipant): Promise<Json> {
  const answer = await p.client.replay('IF-021', p.dipId, FILTER);
  expect(answer.status).toBe(200);
  const copies = answer.body as Json[];
  expect(copies).toHaveLength(1);
  const d0 = copies[0]!.payload.CommonBlock.D0;
  expect(d0.transactionID).toMatch(/^R-/);
  expect(d0.replayIndicator).toBe(true);
  return copies[0]!;
}

/** The copy without what a replay legitimately changes (its own transaction wrapper, and the original's beside it). */
function withoutWrapper(m: Json): Json {
  const c = structuredClone(m);
  delete c.originalTransactionID;
  delete c.originalTransactionWrapper;
  delete c.payload.CommonBlock.D0.transactionID;
  delete c.payload.CommonBlock.D0.transactionTimestamp;
  delete c.payload.CommonBlock.D0.initialCorrelationID;
  delete c.payload.CommonBlock.D0.replayIndicator;
  return c;
}

describe('replay returns the recipient its own copy', () => {
  describe('an obfuscated channel', () => {
    let t: TestDip;
    let ctx: Awaited<ReturnType<typeof setUp>>;
    beforeAll(async () => {
      t = await startTestDip({ channels: { 'IF-021': { obfuscation: { SUP: ['CustomBlock.B044'], LDSO: ['CustomBlock.B067=x'] } } } });
      ctx = await setUp(t, [['1000000001', 'SUP'], ['3000000001', 'LDSO']]);
    });
    afterAll(async () => t?.close());

    it('hides from each replayed copy what that role may not see, exactly as delivered', async () => {
      const item = buildIF021({ senderDipId: ctx.sds.dipId, senderRole: 'SDS', primaryRecipients: ctx.recipients.map((x) => x.p.dipId), uniqueSuffix: 'obf' });
      item.payload.CommonBlock.S1.senderCorrelationID = 'CI-20261202-obf';
      expect((await ctx.sds.client.submit('IF-021', [item])).status).toBe(201);
      for (const { p, r } of ctx.recipients) {
        await waitFor(() => r.calls.length === 1, 5000, `delivery to ${p.dipId}`);
        const delivered = r.calls[0]!.messages[0] as Json;
        const replayed = await replayOne(p);
        expect(withoutWrapper(replayed)).toEqual(withoutWrapper(delivered));
        // Spec 5.5.11: a new wrapper whose correlation ID carries the reply prefix, and the original wrapper too.
        expect(delivered.payload.CommonBlock.D0.initialCorrelationID).toBe('CI-20261202-obf');
        expect(replayed.payload.CommonBlock.D0.initialCorrelationID).toBe('R-CI-20261202-obf');
        expect(replayed.originalTransactionWrapper).toEqual(delivered.payload.CommonBlock.D0);
        expect(replayed.originalTransactionID).toBe(delivered.payload.CommonBlock.D0.transactionID);
      }
      const sup = await replayOne(ctx.recipients[0]!.p);
      expect(sup.payload.CustomBlock.B044).toBeUndefined();
      const ldso = await replayOne(ctx.recipients[1]!.p);
      expect(ldso.payload.CustomBlock.B067).toBe('x');
    });
  });

  describe('security pattern 2', () => {
    let t: TestDip;
    let ctx: Awaited<ReturnType<typeof setUp>>;
    beforeAll(async () => {
      t = await startTestDip({ channels: { 'IF-021': { securityPattern: 2 } } });
      ctx = await setUp(t, [['1000000001', 'SUP'], ['3000000001', 'LDSO']]);
    });
    afterAll(async () => t?.close());

    it('re-encrypts the replayed CustomBlock to the recipient; it is never answered in clear', async () => {
      const certs = await ctx.sds.client.call<{ encryption: string }>('GET', '/certificates/dip', '');
      const item = buildIF021({ senderDipId: ctx.sds.dipId, senderRole: 'SDS', primaryRecipients: ctx.recipients.map((x) => x.p.dipId), uniqueSuffix: 'p2' });
      const { CustomBlock, ...payload } = item.payload;
      const jwe = await encryptTo(new X509Certificate(certs.body.encryption).publicKey, JSON.stringify(CustomBlock));
      expect((await ctx.sds.client.submit('IF-021', [{ payload: { ...payload, EncryptedCustomBlock: jwe } }])).status).toBe(201);
      for (const { p, r } of ctx.recipients) {
        await waitFor(() => r.calls.length === 1, 5000, `delivery to ${p.dipId}`);
        const delivered = r.calls[0]!.messages[0] as Json;
        const replayed = await replayOne(p);
        expect(replayed.payload.CustomBlock).toBeUndefined();
        expect(JSON.stringify(replayed)).not.toContain('settlementDayConsumptionPeriods');
        const key = createPrivateKey(p.credentials.keyPem);
        expect(JSON.parse(await decryptWith(key, replayed.payload.EncryptedCustomBlock))).toEqual(CustomBlock);
        // The same message as delivered, apart from the wrapper and the (randomised) encryption.
        const strip = (m: Json) => {
          const c = withoutWrapper(m);
          delete c.payload.EncryptedCustomBlock;
          return c;
        };
        expect(strip(replayed)).toEqual(strip(delivered));
      }
    });
  });

  describe('security pattern 3', () => {
    let t: TestDip;
    let ctx: Awaited<ReturnType<typeof setUp>>;
    beforeAll(async () => {
      t = await startTestDip({ channels: { 'IF-021': { securityPattern: 3 } } });
      ctx = await setUp(t, [['1000000001', 'SUP'], ['3000000001', 'LDSO']]);
    });
    afterAll(async () => t?.close());

    it('answers each recipient only its own encrypted copy, identical to the delivered one', async () => {
      const item = buildIF021({ senderDipId: ctx.sds.dipId, senderRole: 'SDS', primaryRecipients: ctx.recipients.map((x) => x.p.dipId), uniqueSuffix: 'p3' });
      const { CustomBlock, ...payload } = item.payload;
      const copies: Record<string, string> = {};
      for (const { p } of ctx.recipients) {
        const cert = await ctx.sds.client.call<{ encryption: string }>('GET', `/certificates/participant/${p.dipId}`, '');
        copies[p.dipId] = await encryptTo(new X509Certificate(cert.body.encryption).publicKey, JSON.stringify(CustomBlock));
      }
      expect((await ctx.sds.client.submit('IF-021', [{ payload: { ...payload, EncryptedCustomBlocks: copies } }])).status).toBe(201);
      for (const { p, r } of ctx.recipients) {
        await waitFor(() => r.calls.length === 1, 5000, `delivery to ${p.dipId}`);
        const replayed = await replayOne(p);
        expect(replayed.payload.EncryptedCustomBlocks).toBeUndefined();
        expect(replayed.payload.EncryptedCustomBlock).toBe(copies[p.dipId]);
        expect(withoutWrapper(replayed)).toEqual(withoutWrapper(r.calls[0]!.messages[0] as Json));
      }
    });
  });
});

describe('a replayed copy\'s correlation ID', () => {
  it('is the original\'s with the reply prefix, cut to the published 60 characters; none stays none', () => {
    expect(replayCorrelationId('CI-1')).toBe('R-CI-1');
    expect(replayCorrelationId('x'.repeat(60))).toBe(`R-${'x'.repeat(58)}`);
    expect(replayCorrelationId(null)).toBeNull();
    expect(replayCorrelationId(undefined)).toBeNull();
    expect(replayCorrelationId('')).toBeNull();
  });
});
