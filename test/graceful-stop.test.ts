import { afterAll, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { buildIF021 } from '../src/sim/messages.js';
import { queueSettled, startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';

const ref = (m: unknown): string => (m as { payload: { CommonBlock: { S1: { senderUniqueReference: string } } } }).payload.CommonBlock.S1.senderUniqueReference;

/**
 * A fault campaign's SIGTERM under load (`dip serve` stops by closing the DIP, as here): submissions in
 * flight on kept-alive connections are answered 201 or refused 503 with Retry-After in the DIP's own
 * answer shape, never Fastify's bare one; nothing answered 201 is lost, and the DIP started again on the
 * same data delivers every one of them once.
 */
describe('a graceful stop under load', () => {
  const dips: TestDip[] = [];
  afterAll(async () => {
    for (const d of dips) await d.close().catch(() => {});
  });

  it('answers every request it read 201 or 503 with Retry-After, loses nothing answered 201, and delivers it after a restart', async () => {
    const first = await startTestDip();
    dips.push(first);
    const sds = await first.participant('2000000001', ['SDS']);
    const sup = await first.participant('1000000001', ['SUP']);
    let n = 0;
    const accepted: string[] = [];
    const refused: Array<{ status: number; retryAfter: unknown; help: unknown }> = [];
    const failed: string[] = [];
    let stopping = false;
    const sender = async () => {
      while (!stopping) {
        const items = Array.from({ length: 20 }, () => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `gs${n++}` }));
        try {
          const answer = await sds.client.submit('IF-021', items);
          if (answer.status === 201) accepted.push(...items.map((i) => i.payload.CommonBlock.S1.senderUniqueReference));
          else {
            refused.push({ status: answer.status, retryAfter: answer.headers['retry-after'], help: answer.body?.messageArray?.[0]?.help });
            return; // as a sender honouring Retry-After: the DIP has stopped by the time it would send again
          }
        } catch (e) {
          // No HTTP answer: only a connection the stopped DIP no longer takes (nothing was sent on it).
          failed.push(String((e as { code?: string }).code ?? e));
          if ((e as { code?: string }).code === 'ECONNREFUSED') return;
        }
      }
    };
    const senders = Array.from({ length: 8 }, sender);
    await waitFor(() => accepted.length >= 200, 30_000, 'load');
    await first.dip.close();
    stopping = true;
    await Promise.all(senders);

    expect(failed.filter((code) => code !== 'ECONNREFUSED')).toEqual([]);
    for (const r of refused) expect(r).toEqual({ status: 503, retryAfter: '5', help: expect.stringMatching(/the DIP is stopping/) });

    // Started again on the same data: every message answered 201 is there, and is delivered once.
    const second = await startTestDip({}, first.config.dataDir);
    dips.push(second);
    const supAgain = new DipClient({ baseUrl: second.dip.url, apiKey: sup.apiKey, keyPem: sup.credentials.keyPem, certPem: sup.credentials.certPem, caPem: second.dip.pki.ca.certPem });
    try {
      const r = await second.receiver();
      await supAgain.setWebhook('IF-021', sup.dipId, { callbackURL: r.url, maxMessageCount: 500 });
      const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
      await waitFor(() => queueSettled(second.dip, queue), 30_000, 'every message delivered');
      // Exactly the messages answered 201, each once (the senders ran side by side: compared as sets).
      const delivered = r.calls.flatMap((c) => c.messages).map(ref);
      expect([...delivered].sort()).toEqual([...accepted].sort());
    } finally {
      await supAgain.close();
    }
  });
});
