import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyBudget } from '../src/pipeline/replay.js';
import { buildIF021 } from '../src/sim/messages.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * Every replayed or requeued copy is archived as a message of its own: a recipient sending the same
 * replay over and over wrote a page of rows a request, without end, on the disk every participant's
 * submissions need. A budget of copies per recipient per hour (config replayCopiesPerHour) bounds it.
 */
const ALL = JSON.stringify({ datetimeFrom: null, datetimeTo: null, eventCode: null, MPAN: null, version: null });

describe('the copies a recipient may replay or requeue (config replayCopiesPerHour)', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let ldso: TestParticipant;
  const clock = new ShiftableClock();
  const rows = () => {
    const db = new Database(join(t.config.dataDir, 'dip.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };
  beforeAll(async () => {
    t = await startTestDip({ replayCopiesPerHour: 1000 }, undefined, { clock });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    ldso = await t.participant('3000000001', ['LDSO']);
    const items = Array.from({ length: 600 }, (_, i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `b${i}` }));
    expect((await sds.client.submit('IF-021', items)).status).toBe(201);
  }, 60_000);
  afterAll(async () => t?.close());

  it('answers 429 with Retry-After, writing nothing, once the hour\'s copies are spent; the budget refills with time', async () => {
    const before = rows();
    const sinceFirst = clock.now();
    const first = await sup.client.call<unknown[]>('POST', `/dip-channel/IF-021/replay/${sup.dipId}`, ALL);
    expect(first.status).toBe(200);
    expect(first.body).toHaveLength(600);
    expect(rows()).toBe(before + 600);
    // 400 copies left: the same replay again needs 600.
    for (const path of [`/dip-channel/IF-021/replay/${sup.dipId}`, `/dip-channel/IF-021/requeue/${sup.dipId}`]) {
      const again = await sup.client.call('POST', path, ALL);
      expect(again.status, path).toBe(429);
      // 200 copies short at 1,000 an hour: 720 s, less the time since the first replay took its copies (the
      // budget refills continuously and the DIP's clock runs on with the wall clock, however slowly the test runs).
      const retryAfter = Number(again.headers['retry-after']);
      expect(retryAfter, path).toBeLessThanOrEqual(720);
      expect(retryAfter, path).toBeGreaterThanOrEqual(Math.floor(720 - (clock.now() - sinceFirst) / 1000));
      expect(again.body.messageArray[0]!.help).toContain('budget of 1,000 copies an hour');
    }
    expect(rows()).toBe(before + 600);
    // Another recipient's budget is its own (it has nothing to replay: 400 by default, not 429).
    expect((await ldso.client.call('POST', `/dip-channel/IF-021/replay/${ldso.dipId}`, ALL)).status).not.toBe(429);
    // 200 copies come back in 12 minutes.
    clock.jump(720_000);
    const later = await sup.client.call('POST', `/dip-channel/IF-021/requeue/${sup.dipId}`, ALL);
    expect([later.status, later.body.messageArray[0]!.help]).toEqual([200, '600 message(s) requeued']);
    expect(rows()).toBe(before + 1200);
  });

  it('keeps a budget per recipient that holds at least a page, and none when turned off', () => {
    const budget = new CopyBudget(10);
    expect(budget.take('a', 1000, 0)).toEqual({ ok: true }); // a page always fits a full bucket
    expect(budget.take('a', 1, 0)).toEqual({ ok: false, retryAfterMs: 360_000 });
    expect(budget.take('b', 1000, 0)).toEqual({ ok: true });
    expect(new CopyBudget(0).take('a', 1_000_000, 0)).toEqual({ ok: true });
  });

  it('gives back the copies of a write that failed, no more than a full bucket', () => {
    const budget = new CopyBudget(1000);
    expect(budget.take('a', 1000, 0)).toEqual({ ok: true });
    expect(budget.take('a', 1000, 0).ok).toBe(false);
    budget.giveBack('a', 1000); // the store refused the write: nothing was archived
    expect(budget.take('a', 1000, 0)).toEqual({ ok: true });
    budget.giveBack('a', 5000);
    expect(budget.take('a', 1001, 0).ok).toBe(false);
  });
});
