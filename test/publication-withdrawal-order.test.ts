import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { StoreError } from '../src/ports/errors.js';
import type { AcceptedBatch } from '../src/ports/message-log.js';
import type { PublicationNotice } from '../src/ports/publications.js';
import { NOTICE_GRACE_MS } from '../src/pipeline/publications.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { publicationBackends } from './helpers/publication-backends.js';

/**
 * A withdrawal and the availability notice: recipients are told of a withdrawal only after, and only if,
 * they were told the publication was available; and a withdrawal whose journal entry fails is still one.
 * Faults are injected through the ports, as the recovery tests do.
 */
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('base64');
const CSV = Buffer.from('MPAN,Volume\n1000000000001,1.5\n');

const backends = publicationBackends('opendip_withdraw_order');

describe.each(backends)('a withdrawal and the availability notice ($name)', ({ storage: openStorage }) => {
  let cleanup: () => Promise<void> = async () => {};
  let t: TestDip;
  let vas: TestParticipant;
  let sup: TestParticipant;
  const clock = new ShiftableClock();

  beforeAll(async () => {
    const opened = await openStorage();
    cleanup = opened.cleanup;
    t = await startTestDip({ ...(opened.storage ? { storage: opened.storage } : {}), publications: { ...DEFAULTS.publications } }, undefined, { clock });
    vas = await t.participant('VAS0000001', ['VAS']);
    sup = await t.participant('SUP0000001', ['SUP']);
  });
  afterAll(async () => {
    await t?.close();
    await cleanup();
  });

  const publish = async (type: string): Promise<string> => {
    const answer = await vas.client.publish('REP-002', { type, version: '1', format: 'csv' }, CSV, sha(CSV));
    expect(answer.status).toBe(201);
    return (answer.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
  };
  /** A publish whose availability notice cannot be appended: stored, its notice pending. */
  const publishUntold = async (type: string): Promise<string> => {
    const log = t.dip.backend.log;
    const append = log.append.bind(log);
    log.append = async () => {
      throw new StoreError('unavailable', 'the store was lost here', 'ECONNRESET');
    };
    try {
      return await publish(type);
    } finally {
      log.append = append;
    }
  };
  const withdraw = (id: string) => vas.client.call<{ notice?: string }>('POST', `/dip-channel/REP-002/publications/${id}/withdraw`, JSON.stringify({ reason: 'the wrong file' }), { 'content-type': 'application/json' });
  /** What SUP was told of the publication, oldest first: 'available' or 'withdrawn'. */
  const told = async (id: string): Promise<string[]> => {
    const pulled = (await sup.client.pull('REP-002', sup.dipId, 100)).body as Array<{ payload: { CustomBlock: { P02List: Array<{ additionalInformation: string }> } } }>;
    return pulled
      .map((n) => JSON.parse(n.payload.CustomBlock.P02List[0]!.additionalInformation) as { publicationID: string; withdrawn?: unknown })
      .filter((n) => n.publicationID === id)
      .map((n) => (n.withdrawn ? 'withdrawn' : 'available'));
  };
  const awaiting = async (notice: PublicationNotice): Promise<string[]> => (await t.dip.backend.publications.awaitingNotice(Number.MAX_SAFE_INTEGER, 100, notice)).map((r) => r.id);

  it('owes neither notice for a publication withdrawn before its availability notice was queued', async () => {
    const id = await publishUntold('Untold');
    expect(await awaiting('availability')).toContain(id);
    expect((await withdraw(id)).status).toBe(200);
    expect(await awaiting('availability')).not.toContain(id);
    expect(await awaiting('withdrawal')).not.toContain(id);
    clock.jump(NOTICE_GRACE_MS + 60_000);
    await t.dip.publications.queueMissedNotices();
    expect(await told(id)).toEqual([]);
  });

  it('never queues "available" from a pass that read the record before it was withdrawn', async () => {
    const id = await publishUntold('Stale');
    const index = t.dip.backend.publications;
    const stale = await index.awaitingNotice(Number.MAX_SAFE_INTEGER, 100, 'availability');
    expect(stale.map((r) => r.id)).toContain(id);
    expect((await withdraw(id)).status).toBe(200);
    // Another node's pass read the awaiting records just before the withdrawal.
    const read = index.awaitingNotice.bind(index);
    index.awaitingNotice = async (before, limit, notice) => {
      index.awaitingNotice = read;
      return notice === 'withdrawal' ? read(before, limit, notice) : stale;
    };
    try {
      await t.dip.publications.queueMissedNotices();
    } finally {
      index.awaitingNotice = read;
    }
    expect(await told(id)).toEqual([]);
  });

  /**
   * A pass for missed notices that meets the publisher's withdrawal while it appends the availability notice
   * of `id` (claimed already); with `answerLost`, that append commits and its answer is lost (a broken
   * connection after COMMIT), so the pass takes its claim back. The withdrawal's answer.
   */
  const passMeetingWithdrawal = async (id: string, answerLost: boolean) => {
    const index = t.dip.backend.publications;
    const log = t.dip.backend.log;
    const append = log.append.bind(log);
    const read = index.awaitingNotice.bind(index);
    let withdrawal: Awaited<ReturnType<typeof withdraw>> | undefined;
    log.append = async (batch: AcceptedBatch) => {
      const ours = withdrawal === undefined && batch.messages[0]!.senderUniqueReference?.endsWith(`-PUB${id.replace(/-/g, '')}`) === true;
      if (ours && !answerLost) withdrawal = await withdraw(id);
      const answer = await append(batch);
      if (ours && answerLost) {
        withdrawal = await withdraw(id);
        throw new StoreError('unavailable', 'the answer to COMMIT was lost', 'ECONNRESET');
      }
      return answer;
    };
    index.awaitingNotice = async (_before, limit, notice) => read(Number.MAX_SAFE_INTEGER, limit, notice);
    try {
      await t.dip.publications.queueMissedNotices().catch((err: unknown) => {
        if (!answerLost) throw err;
      });
    } finally {
      log.append = append;
      index.awaitingNotice = read;
    }
    return withdrawal;
  };

  it('tells a withdrawal made while the pass appends the availability notice after that notice, never before', async () => {
    const id = await publishUntold('InFlight');
    expect((await passMeetingWithdrawal(id, false))?.status).toBe(200);
    clock.jump(NOTICE_GRACE_MS + 60_000);
    await t.dip.publications.queueMissedNotices();
    expect(await told(id)).toEqual(['available', 'withdrawn']);
    expect(await awaiting('withdrawal')).not.toContain(id);
  });

  it('still tells a withdrawal made while "available" was appended when that append committed but its answer was lost', async () => {
    // Recipients were told "available", so they must be told "withdrawn" (review finding: taking the claim
    // back cancelled that notice).
    const id = await publishUntold('AnswerLost');
    expect((await passMeetingWithdrawal(id, true))?.status).toBe(200);
    clock.jump(NOTICE_GRACE_MS + 60_000);
    await t.dip.publications.queueMissedNotices();
    expect(await told(id)).toEqual(['available', 'withdrawn']);
  });

  it('answers a withdrawal whose journal entry fails as taken: its recipients told, a retry a 409', async () => {
    const id = await publish('Unjournalled');
    const journal = t.dip.backend.journal;
    const entry = journal.append.bind(journal);
    journal.append = async () => {
      throw new StoreError('unavailable', 'the journal was lost here', 'ECONNRESET');
    };
    let answer;
    try {
      answer = await withdraw(id);
    } finally {
      journal.append = entry;
    }
    expect(answer.status).toBe(200);
    expect(await told(id)).toEqual(['available', 'withdrawn']);
    expect((await t.dip.publications.get(id))?.withdrawn?.reason).toBe('the wrong file');
    expect((await withdraw(id)).status).toBe(409);
    // The entry is owed: the pass for missed notices writes it once the withdrawal is past the grace, once.
    const entries = async () => (await journal.entries({ action: 'publication.withdraw', target: id, limit: 10 })).map((e) => [e.actor, (e.after as { withdrawn: { reason: string } }).withdrawn.reason]);
    expect(await entries()).toEqual([]);
    clock.jump(NOTICE_GRACE_MS + 60_000);
    await t.dip.publications.queueMissedNotices();
    await t.dip.publications.queueMissedNotices();
    expect(await entries()).toEqual([['participant:VAS0000001', 'the wrong file']]);
  });
});
