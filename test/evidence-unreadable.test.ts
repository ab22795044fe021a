/**
 * An archived row that does not open, read alone: /admin/evidence answered 500 for a row under a data key
 * not loaded yet and for a damaged one. Now 503 + Retry-After (sound, ask again) and 422 naming the row
 * (counted as replay and reports count theirs). A synchronous replay skipped a row under a key not loaded
 * yet for good; now it answers 503 so the caller asks again, a damaged row still skipped and named.
 */
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { evidenceRoutes } from '../src/api/admin-evidence.js';
import { DataKeyNotLoaded, SealedForAnotherRecord } from '../src/ports/errors.js';
import { ArchiveKeysNotLoaded, Replay } from '../src/pipeline/replay.js';
import type { ArchivedMessage } from '../src/ports/archive.js';
import { FakeClock } from './helpers/clocks.js';

async function evidenceAnswer(fault: Error): Promise<{ status: number; headers: Record<string, unknown>; body: { error: string }; counted: number }> {
  let counted = 0;
  const app = Fastify({ logger: false });
  await app.register(evidenceRoutes, {
    archive: { receivedRequest: async () => { throw fault; } },
    signatureSkewMs: 300_000,
    logger: { warn: () => undefined },
    unreadableSeen: () => void (counted += 1),
  });
  const res = await app.inject({ method: 'GET', url: '/admin/evidence/T-1' });
  await app.close();
  return { status: res.statusCode, headers: res.headers, body: res.json<{ error: string }>(), counted };
}

describe('/admin/evidence for an archived request that does not open', () => {
  it('answers 503 with Retry-After when it is sealed under a data key not loaded yet (not counted: the row is sound)', async () => {
    const a = await evidenceAnswer(new DataKeyNotLoaded(7));
    expect([a.status, a.headers['retry-after'], a.counted]).toEqual([503, '5', 0]);
    expect(a.body.error).toContain('data key 7');
  });

  it('answers 422 naming the damaged row, with X-OpenDIP-Unreadable, counted', async () => {
    const a = await evidenceAnswer(new SealedForAnotherRecord('raw', 'T-1', 'raw request of T-1'));
    expect([a.status, a.headers['x-opendip-unreadable'], a.counted]).toEqual([422, '1', 1]);
    expect(a.body.error).toContain("'T-1' cannot be opened");
  });
});

describe('a synchronous replay meeting a row under a data key not loaded yet', () => {
  const row = (seq: number, extra: Partial<ArchivedMessage> = {}): ArchivedMessage =>
    ({ seq, transactionId: `T-${seq}`, outbound: JSON.stringify({ CommonBlock: { S1: {} } }), capacity: null, securityPattern: null, ...extra }) as unknown as ArchivedMessage;
  const replayOf = (rows: ArchivedMessage[]) =>
    new Replay({ appendReplayCopies: async () => undefined, queueState: async () => ({ headSeq: 0, ackedSeq: 0 }) } as never, { findArchived: async () => rows, countArchived: async () => rows.length }, { copyFor: async () => '{}' }, new FakeClock());
  const queue = { recipientDipId: '1000000001', channel: 'IF-021' };
  const filter = { fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, eventCode: null, mpan: null, transactionIds: null };

  it('refuses the page (ArchiveKeysNotLoaded, answered 503 + Retry-After) naming the row, rather than skip a sound message', async () => {
    const replay = replayOf([row(1, { outbound: '', unreadable: 'sealed with data key 7', keyNotLoaded: true })]);
    await expect(replay.replay(queue, filter)).rejects.toBeInstanceOf(ArchiveKeysNotLoaded);
    await expect(replay.replay(queue, filter)).rejects.toThrow('T-1');
  });

  it('still skips and names a damaged row', async () => {
    const replay = replayOf([row(1, { outbound: '', unreadable: 'the sealed copy does not open' })]);
    const page = await replay.replay(queue, filter);
    expect(page.unreadable).toEqual([{ transactionId: 'T-1', why: 'the sealed copy does not open' }]);
  });
});
