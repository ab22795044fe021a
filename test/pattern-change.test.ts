import { createPrivateKey, X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { dipMadeBatch } from '../src/pipeline/made-batch.js';
import { copyPattern } from '../src/pipeline/recipient-copy.js';
import { StatusMessages } from '../src/pipeline/status.js';
import { decryptWith, encryptTo } from '../src/security/payload-encryption.js';
import { buildIF021 } from '../src/sim/messages.js';
import { FakeClock } from './helpers/clocks.js';
import { queueSettled, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

/**
 * An operator changes a channel's security pattern (channels.IF-021.securityPattern) and restarts while
 * messages wait in their queues and lie in the archive: each keeps the pattern it was accepted under, for
 * a pull, a webhook call and a replay alike.
 */
const FILTER = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00' };

describe('copyPattern: the pattern a recipient\'s copy of a stored message is made for', () => {
  const clear = JSON.stringify({ payload: { CommonBlock: {}, CustomBlock: { B900: {} } } });
  const perRecipient = JSON.stringify({ payload: { CommonBlock: {}, EncryptedCustomBlocks: { '1000000001': 'a.b.c.d.e' } } });

  it('is never clearer than the pattern the message was accepted under, nor than the channel runs now', () => {
    // [recorded, channel now, copy]
    const table: Array<[1 | 2, 1 | 2 | 3, number]> = [
      [1, 1, 1],
      [1, 2, 2],
      [1, 3, 2],
      [2, 1, 2],
      [2, 2, 2],
      [2, 3, 2],
    ];
    for (const [recorded, inForce, copy] of table) expect(copyPattern(recorded, clear, inForce), `accepted under ${recorded}, channel now at ${inForce}`).toBe(copy);
    for (const inForce of [1, 2, 3] as const) expect(copyPattern(3, perRecipient, inForce)).toBe(3);
  });

  it('for a row stored before it was recorded: 3 when it holds per-recipient copies; else the channel\'s, a channel now at 3 encrypting it as 2', () => {
    for (const inForce of [1, 2, 3] as const) expect(copyPattern(null, perRecipient, inForce)).toBe(3);
    expect(copyPattern(null, clear, 1)).toBe(1);
    expect(copyPattern(null, clear, 2)).toBe(2);
    expect(copyPattern(null, clear, 3)).toBe(2);
  });
});

describe('what the DIP makes itself records the pattern its copies are made for', () => {
  const from = { channel: 'IF-021', senderDipId: 'DIP0000001', senderRole: 'DIP', at: 0, rawRequest: Buffer.alloc(0) };
  const made = { transactionId: 'T-1', eventCode: '[Test]', correlationId: null, outbound: '{}', recipients: ['1000000001'] };

  it('1 on a channel at 1; else 2 (it holds the payload in clear and has no per-recipient copies to give)', () => {
    expect([1, 2, 3].map((inForce) => dipMadeBatch({ ...from, inForce: inForce as 1 | 2 | 3 }, [made]).messages[0]!.securityPattern)).toEqual([1, 2, 2]);
  });

  it('a status message the DIP raises records 1', async () => {
    const parties = { senderDipId: '2000000001', channel: 'IF-021', recipients: ['1000000001'], senderUniqueReference: 'S-ref', correlationId: null, replayOf: null };
    const status = new StatusMessages({ append: async () => ({ ok: true }) }, { transactionParties: async () => parties }, { dipId: 'DIP0000001', maxClockSkewMs: 0, connectionProviderOf: () => null }, new FakeClock(), { append: () => Promise.resolve(1) });
    const batch = await status.fromDip([{ transactionId: 'T-IF-021-1', message: 'MSG1010 - Message undeliverable', help: 'stale' }]);
    expect(batch!.messages.map((m) => m.securityPattern)).toEqual([1]);
  });
});

describe('a channel whose security pattern changes while messages wait', () => {
  const dips: TestDip[] = [];
  const clients: DipClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const t of dips.splice(0)) await t.close();
  });

  async function start(pattern: 1 | 3, dataDir?: string): Promise<TestDip> {
    const t = await startTestDip({ channels: { 'IF-021': { securityPattern: pattern } } }, ...(dataDir ? [dataDir] : []));
    dips.push(t);
    return t;
  }

  /** The same participant's client on the DIP started again (it is registered already). */
  function again(t: TestDip, p: TestParticipant): DipClient {
    const client = new DipClient({ baseUrl: t.dip.url, apiKey: p.apiKey, keyPem: p.credentials.keyPem, certPem: p.credentials.certPem, caPem: t.dip.pki.ca.certPem });
    clients.push(client);
    return client;
  }

  it('pattern 1 → 3: queued messages are pulled, delivered and replayed encrypted by the DIP for each recipient, never in clear nor answered 500', async () => {
    const first = await start(1);
    const sds = await first.participant('2000000001', ['SDS']);
    const sup = await first.participant('1000000001', ['SUP']);
    const ldso = await first.participant('3000000001', ['LDSO']);
    const sent = [0, 1].map((i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId, ldso.dipId], uniqueSuffix: `p1q${i}` }));
    for (const item of sent) expect((await sds.client.submit('IF-021', [item])).status).toBe(201);
    await first.dip.close();
    dips.splice(0);

    const second = await start(3, first.config.dataDir);
    /** Each copy's CustomBlock as its recipient opens it: none travels in clear. */
    const opened = (p: TestParticipant, copies: Json[]) =>
      Promise.all(
        copies.map(async (m) => {
          expect(m.payload.CustomBlock).toBeUndefined();
          return JSON.parse(await decryptWith(createPrivateKey(p.credentials.keyPem), m.payload.EncryptedCustomBlock as string)) as unknown;
        }),
      );
    // sup pulls; ldso takes a webhook.
    const supAgain = again(second, sup);
    const pulled = await supAgain.pull('IF-021', sup.dipId, 10);
    expect(pulled.status, JSON.stringify(pulled.body)).toBe(200);
    expect(await opened(sup, pulled.body as Json[])).toEqual(sent.map((m) => m.payload.CustomBlock));

    const r = await second.receiver();
    expect((await again(second, ldso).setWebhook('IF-021', ldso.dipId, { callbackURL: r.url })).status).toBe(201);
    await waitFor(() => queueSettled(second.dip, { recipientDipId: ldso.dipId, channel: 'IF-021' }), 10_000, 'delivery to ldso');
    expect(await second.dip.backend.deadLetters.deadLetters({ recipientDipId: ldso.dipId, channel: 'IF-021', limit: 10 })).toEqual([]);
    expect(await opened(ldso, r.calls.flatMap((c) => c.messages) as Json[])).toEqual(sent.map((m) => m.payload.CustomBlock));

    const replayed = await supAgain.replay('IF-021', sup.dipId, FILTER);
    expect(replayed.status, JSON.stringify(replayed.body)).toBe(200);
    expect(await opened(sup, replayed.body as Json[])).toEqual(sent.map((m) => m.payload.CustomBlock));
  });

  it('pattern 3 → 1: each recipient gets only its own copy, never the sender\'s whole map', async () => {
    const first = await start(3);
    const sds = await first.participant('2000000001', ['SDS']);
    const sup = await first.participant('1000000001', ['SUP']);
    const ldso = await first.participant('3000000001', ['LDSO']);
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId, ldso.dipId], uniqueSuffix: 'p3q' });
    const { CustomBlock, ...payload } = item.payload;
    const copies: Record<string, string> = {};
    for (const p of [sup, ldso]) copies[p.dipId] = await encryptTo(new X509Certificate(p.credentials.certPem).publicKey, JSON.stringify(CustomBlock));
    expect((await sds.client.submit('IF-021', [{ payload: { ...payload, EncryptedCustomBlocks: copies } }])).status).toBe(201);
    await first.dip.close();
    dips.splice(0);

    const second = await start(1, first.config.dataDir);
    const pulled = await again(second, sup).pull('IF-021', sup.dipId, 10);
    expect(pulled.status, JSON.stringify(pulled.body)).toBe(200);
    const [mine] = pulled.body as Json[];
    expect(mine!.payload.EncryptedCustomBlocks).toBeUndefined();
    expect(mine!.payload.CustomBlock).toBeUndefined();
    expect(mine!.payload.EncryptedCustomBlock).toBe(copies[sup.dipId]);
    expect(JSON.parse(await decryptWith(createPrivateKey(sup.credentials.keyPem), mine!.payload.EncryptedCustomBlock))).toEqual(CustomBlock);

    const r = await second.receiver();
    expect((await again(second, ldso).setWebhook('IF-021', ldso.dipId, { callbackURL: r.url })).status).toBe(201);
    await waitFor(() => r.calls.length === 1, 10_000, 'delivery to ldso');
    const theirs = r.calls[0]!.messages[0] as Json;
    expect(theirs.payload.EncryptedCustomBlocks).toBeUndefined();
    expect(theirs.payload.EncryptedCustomBlock).toBe(copies[ldso.dipId]);
  });
});
