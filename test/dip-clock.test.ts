/**
 * The `dip-clock` alarm (src/pipeline/clock-check.ts): this node's own clock is wrong when participants'
 * signature dates are refused wholesale, all the same way; a participant whose own clock is wrong is not
 * the DIP's. The fault campaign stepped one node's clock: 2,382 submissions were refused for their date and
 * nothing was raised. Shown on the rule itself (FakeClock), then on a whole DIP whose clock is stepped
 * (ShiftableClock) while its participants' are right, over real mTLS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { alarmAction, alarmSeverity } from '../src/pipeline/alarm-actions.js';
import { CLOCK_WINDOW_MS, ClockCheck } from '../src/pipeline/clock-check.js';
import { OPERATOR_RULES } from '../src/ports/alarms.js';
import { Signer } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import { adminApi } from './helpers/admin.js';
import { FakeClock, ShiftableClock } from './helpers/clocks.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

const LIMIT = 300_000;

describe('the clock check rule', () => {
  const setUp = () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    return { clock, check: new ClockCheck(clock, LIMIT) };
  };

  it('is not raised by one participant refused again and again, however far off its clock', () => {
    const { check } = setUp();
    for (let i = 0; i < 500; i++) check.dated({ participant: '2000000001', skewMs: -3_600_000, refused: true });
    check.dated({ participant: '2000000002', skewMs: 120, refused: false });
    expect(check.conditions()).toEqual([]);
    expect(check.view()).toMatchObject({ suspect: false, participants: { ahead: 0, behind: 1, verified: 1 }, lastBehind: { participant: '2000000001', skewMs: -3_600_000 } });
  });

  it('is not raised by a few badly set participants while more participants verify, nor by refusals both ways', () => {
    const { check } = setUp();
    for (const p of ['2000000001', '2000000002', '2000000003']) check.dated({ participant: p, skewMs: 400_000, refused: true });
    for (const p of ['2000000004', '2000000005', '2000000006']) check.dated({ participant: p, skewMs: -80, refused: false });
    // As many verified as refused: the DIP's clock agrees with as many as it disagrees with.
    expect(check.conditions()).toEqual([]);
    const both = setUp().check;
    for (const p of ['2000000001', '2000000002', '2000000003']) both.dated({ participant: p, skewMs: 400_000, refused: true });
    for (const p of ['2000000004', '2000000005', '2000000006']) both.dated({ participant: p, skewMs: -400_000, refused: true });
    expect(both.conditions()).toEqual([]);
  });

  it('is raised when at least three participants are refused the same way and outnumber the rest, saying which way and how far; resolved as they verify again', async () => {
    const { clock, check } = setUp();
    const first = clock.now();
    // The DIP's clock stepped 10 min forward: every signature is dated about 10 min behind it.
    check.dated({ participant: '2000000001', skewMs: -600_400, refused: true });
    check.dated({ participant: '2000000004', skewMs: 30, refused: false });
    await clock.advance(1000);
    check.dated({ participant: '2000000002', skewMs: -598_800, refused: true });
    expect(check.conditions()).toEqual([]);
    check.dated({ participant: '2000000003', skewMs: -601_100, refused: true });
    expect(check.conditions()).toEqual([
      {
        key: 'dip-clock',
        rule: 'dip-clock',
        participant: null,
        summary:
          "this DIP's clock appears about 600 s (10.0 min) ahead of its participants': the signatures of 3 of the 4 participants heard from in the last 10 min were refused as dated behind it (by 599 to 601 s; the limit is 300 s), the last from 2000000003",
        since: first,
      },
    ]);
    expect(check.view()).toMatchObject({ suspect: true, participants: { ahead: 0, behind: 3, verified: 1 }, lastAhead: null, lastBehind: { participant: '2000000003', skewMs: -601_100, agoMs: 0 } });
    // One of them verifying again (the clock corrected) leaves two: resolved.
    check.dated({ participant: '2000000001', skewMs: 200, refused: false });
    expect(check.conditions()).toEqual([]);
  });

  it('forgets refusals older than the window', async () => {
    const { clock, check } = setUp();
    for (const p of ['2000000001', '2000000002', '2000000003']) check.dated({ participant: p, skewMs: 700_000, refused: true });
    expect(check.conditions()[0]!.summary).toMatch(/^this DIP's clock appears about 700 s \(11\.7 min\) behind its participants': the signatures of 3 of the 3 participants heard from in the last 10 min were refused as dated ahead of it \(by 700 s;/);
    await clock.advance(CLOCK_WINDOW_MS - 1);
    expect(check.conditions()).toHaveLength(1);
    await clock.advance(1);
    expect(check.conditions()).toEqual([]);
    expect(check.view()).toMatchObject({ suspect: false, participants: { ahead: 0, behind: 0, verified: 0 }, lastAhead: null });
  });

  it('is an operator alarm, critical, that says to check NTP', () => {
    expect(OPERATOR_RULES.has('dip-clock')).toBe(true);
    expect(alarmSeverity({ rule: 'dip-clock' })).toBe('critical');
    expect(alarmAction({ rule: 'dip-clock' }, 'operator')).toMatch(/chronyc tracking/);
  });
});

describe('a DIP whose own clock is stepped', () => {
  const clock = new ShiftableClock();
  let t: TestDip;
  const senders: TestParticipant[] = [];
  let sup: TestParticipant;
  let n = 0;

  beforeAll(async () => {
    t = await startTestDip({}, undefined, { clock });
    sup = await t.participant('1000000001', ['SUP']);
    for (const id of ['2000000001', '2000000002', '2000000003']) {
      const p = await t.participant(id, ['SDS']);
      // Their clocks are right (the system's), whatever the DIP's says.
      const client = new DipClient({ baseUrl: t.dip.url, apiKey: p.apiKey, keyPem: p.credentials.keyPem, certPem: p.credentials.certPem, caPem: t.dip.pki.ca.certPem, now: () => new Date() });
      senders.push({ ...p, client });
    }
  }, 60_000);
  afterAll(async () => {
    // The harness closes the clients it made; these are the test's own.
    for (const s of senders) await s.client.close();
    await t?.close();
  });

  const submitAll = () => Promise.all(senders.map((s) => s.client.submit('IF-021', [buildIF021({ senderDipId: s.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `clk${(n += 1)}` })])));
  const health = async (): Promise<{ clockCheck?: { lastBehind: { skewMs: number } | null } }> => (await adminApi(t)('GET', '/admin/health')).body;

  it('raises dip-clock when every participant is refused for its date, shows it in /admin/health, and resolves once they verify again', async () => {
    expect((await submitAll()).map((a) => a.status)).toEqual([201, 201, 201]);
    await t.dip.alarms!.evaluate();
    expect(t.dip.alarms!.current().filter((a) => a.rule === 'dip-clock')).toEqual([]);
    expect((await health()).clockCheck).toMatchObject({ suspect: false, participants: { ahead: 0, behind: 0, verified: 3 } });

    clock.jump(10 * 60_000);
    const refused = await submitAll();
    expect(refused.map((a) => a.status)).toEqual([401, 401, 401]);
    expect(refused[0]!.body.messageArray[0]!.help).toMatch(/clock skew/);
    await t.dip.alarms!.evaluate();
    const raised = t.dip.alarms!.current().filter((a) => a.rule === 'dip-clock');
    expect(raised).toHaveLength(1);
    expect(raised[0]!.summary).toMatch(/^this DIP's clock appears about 60\d s \(10\.0 min\) ahead of its participants': the signatures of 3 of the 3 participants heard from in the last 10 min were refused as dated behind it/);
    const h = await health();
    expect(h.clockCheck).toMatchObject({ suspect: true, participants: { ahead: 0, behind: 3, verified: 0 }, lastAhead: null });
    expect(h.clockCheck!.lastBehind!.skewMs).toBeLessThan(-590_000);

    // NTP steps it back: their signatures verify, and the alarm resolves.
    clock.jump(-10 * 60_000);
    expect((await submitAll()).map((a) => a.status)).toEqual([201, 201, 201]);
    await t.dip.alarms!.evaluate();
    expect(t.dip.alarms!.current().filter((a) => a.rule === 'dip-clock')).toEqual([]);
  });
  it('counts a signature refused for anything but its date neither as verified nor as refused for its date', async () => {
    const before = (await health()).clockCheck;
    // Signed rightly dated, sent with another body: refused as a bad signature, its date within the limit.
    const item = (suffix: string) => JSON.stringify([buildIF021({ senderDipId: sup.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: suffix })]);
    const signed = await new Signer(sup.credentials.keyPem, sup.credentials.certPem).sign('POST', `${t.dip.url}/dip-channel/IF-021`, item('signed'));
    const answer = await sup.client.call('POST', '/dip-channel/IF-021', item('sent'), { ...signed });
    expect(answer.status).toBe(401);
    expect((await health()).clockCheck).toEqual(before);
  });
});
