/**
 * Replay protection (src/security/replay-guard.ts) and fair use (src/security/rate-limit.ts): the
 * data structures on their own, then the rate limit over real HTTPS.
 */
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimiter } from '../src/security/rate-limit.js';
import { ReplayGuard } from '../src/security/replay-guard.js';
import { Signer } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

describe('ReplayGuard', () => {
  const SKEW = 300_000;

  it('refuses a signature seen before, with the time it was first used', () => {
    const g = ReplayGuard.forClockSkew(SKEW);
    const t0 = Date.parse('2026-11-23T10:00:00Z');
    expect(g.check('sig-a', t0)).toEqual({ replayed: false });
    expect(g.check('sig-b', t0 + 1)).toEqual({ replayed: false });
    expect(g.check('sig-a', t0 + 1000)).toEqual({ replayed: true, firstSeenAt: new Date(t0) });
  });

  it('remembers each signature for at least 2 × skew (as long as it could still verify)', () => {
    const g = ReplayGuard.forClockSkew(SKEW);
    const t0 = 1_000_000_000;
    g.check('sig', t0);
    expect(g.check('sig', t0 + 2 * SKEW - 1).replayed).toBe(true);
    expect(g.check('sig', t0 + 2 * SKEW).replayed).toBe(true);
  });

  it('forgets signatures a bucket after 2 × skew, so memory follows the request rate', () => {
    const g = new ReplayGuard(2 * SKEW, 16);
    const t0 = 1_000_000_000;
    // 100 signatures a second for 30 minutes of simulated time.
    let max = 0;
    for (let s = 0; s < 1800; s++) {
      for (let i = 0; i < 100; i++) g.check(`sig-${s}-${i}`, t0 + s * 1000 + i * 10);
      max = Math.max(max, g.size);
    }
    // At most 2 × skew (600 s) plus one bucket (37.5 s) of signatures at 100/s.
    expect(max).toBeLessThanOrEqual(100 * (600 + 38));
    expect(max).toBeGreaterThanOrEqual(100 * 600);
    // A signature first seen 20 minutes ago is gone; one from a minute ago is not.
    expect(g.check('sig-600-0', t0 + 1800 * 1000).replayed).toBe(false);
    expect(g.check('sig-1740-0', t0 + 1800 * 1000).replayed).toBe(true);
  });

  it('copes with the clock stepping back', () => {
    const g = ReplayGuard.forClockSkew(1000);
    g.check('x', 10_000);
    expect(g.check('x', 5_000).replayed).toBe(true);
    expect(g.check('y', 5_000).replayed).toBe(false);
  });
});

describe('RateLimiter', () => {
  it('allows a burst, then one request per 1/rate seconds, with the wait until the next', () => {
    const r = new RateLimiter({ requestsPerSecond: 10, burst: 3 });
    const t = 1_000_000;
    expect([r.take('a', t), r.take('a', t), r.take('a', t)].every((d) => d.ok)).toBe(true);
    const refused = r.take('a', t);
    expect(refused).toEqual({ ok: false, retryAfterMs: 100 });
    expect(r.take('a', t + 50)).toEqual({ ok: false, retryAfterMs: 50 });
    expect(r.take('a', t + 100).ok).toBe(true);
    expect(r.take('b', t).ok).toBe(true); // another caller has its own bucket
  });

  it('drops buckets that have refilled, so idle callers cost nothing', () => {
    const r = new RateLimiter({ requestsPerSecond: 100, burst: 10 });
    for (let i = 0; i < 2000; i++) r.take(`caller-${i}`, 0);
    expect(r.size).toBe(2000);
    for (let i = 0; i < 1024; i++) r.take('busy', 10_000 + i);
    expect(r.size).toBeLessThan(10);
  });

  it('takes a wall clock stepped back as a refill point, not as a debt to wait out', () => {
    // Found by the fault campaign: after the clock went an hour back, every request was 429 until it caught up.
    const r = new RateLimiter({ requestsPerSecond: 10, burst: 3 });
    const t = 10_000_000;
    for (let i = 0; i < 3; i++) r.take('a', t);
    const back = t - 3_600_000;
    expect(r.take('a', back)).toEqual({ ok: false, retryAfterMs: 100 });
    expect(r.take('a', back + 100).ok, 'refilling from the step, at the usual rate').toBe(true);
    // A step forward refills the bucket (at most a burst); the correction back must not hold the caller for the step.
    const ahead = back + 3_600_000;
    for (let i = 0; i < 3; i++) expect(r.take('b', ahead).ok).toBe(true);
    expect(r.take('b', back + 200)).toEqual({ ok: false, retryAfterMs: 100 });
    expect(r.take('b', back + 300).ok).toBe(true);
  });

  it('is off at 0 requests/s', () => {
    const r = new RateLimiter({ requestsPerSecond: 0, burst: 1 });
    for (let i = 0; i < 1000; i++) expect(r.take('a', 0).ok).toBe(true);
    expect(r.size).toBe(0);
  });
});

describe('fair use over HTTPS: 429 with Retry-After, per participant', () => {
  const clock = new ShiftableClock();
  let t: TestDip;
  let sds: TestParticipant;
  let other: TestParticipant;

  beforeAll(async () => {
    // One token per 5 s: the burst cannot refill while the test runs, however loaded the machine.
    t = await startTestDip({ rateLimit: { requestsPerSecond: 0.2, burst: 5 } }, undefined, { clock });
    sds = await t.participant('2000000001', ['SDS']);
    other = await t.participant('2000000002', ['SDS']);
    await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => {
    await t?.close();
  });

  const item = (sender: string, suffix: string) => buildIF021({ senderDipId: sender, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: suffix });

  it('answers a burst beyond 5 with 429, a StandardResponse and Retry-After; others are unaffected', async () => {
    const agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem, cert: sds.credentials.certPem, key: sds.credentials.keyPem } });
    const signer = new Signer(sds.credentials.keyPem, sds.credentials.certPem);
    const post = async (suffix: string) => {
      const body = JSON.stringify([item(sds.dipId, suffix)]);
      const sig = await signer.sign('POST', `${t.dip.url}/dip-channel/IF-021`, body);
      const res = await agent.request({ origin: t.dip.url, path: '/dip-channel/IF-021', method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': sds.apiKey, ...sig }, body });
      return { status: res.statusCode, headers: res.headers, json: (await res.body.json()) as { messageArray: Array<{ message: string; help: string; recipientID: string }>; timestamp: string } };
    };
    try {
      const started = Date.now();
      const answers: Array<Awaited<ReturnType<typeof post>>> = [];
      for (let i = 0; i < 15 && !answers.some((a) => a.status === 429); i++) answers.push(await post(`rl${i}`));
      const elapsedS = (Date.now() - started) / 1000;
      const statuses = answers.map((a) => a.status);
      expect(statuses.slice(0, 5)).toEqual([201, 201, 201, 201, 201]);
      expect(statuses.at(-1)).toBe(429);
      // The burst, plus whatever refilled (2/s) while the requests were under way.
      expect(statuses.filter((s) => s === 201).length).toBeLessThanOrEqual(5 + Math.ceil(elapsedS * 2));
      const refused = answers.at(-1)!;
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(refused.json.messageArray[0]).toMatchObject({ message: 'MSG1000 - Message Processing Failed', recipientID: sds.dipId });
      expect(refused.json.messageArray[0]!.help).toMatch(/limit is 0.2 requests\/s per participant \(bursts of 5\); retry after \d+ s/);
      expect(refused.json.timestamp).toHaveLength(25);
    } finally {
      await agent.close();
    }

    // Another participant has its own allowance.
    expect((await other.client.submit('IF-021', [item(other.dipId, 'rlo')])).status).toBe(201);
  });

  it('takes the participant again once tokens have refilled', async () => {
    clock.jump(5200); // a token refills in 5 s at 0.2/s
    expect((await sds.client.submit('IF-021', [item(sds.dipId, 'rlafter')])).status).toBe(201);
  });

  it('counts unknown API keys against the TLS certificate that brings them, before any database lookup', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 20 && !statuses.includes(429); i++) {
      const a = await other.client.call('POST', '/dip-channel/IF-021', '[]', { 'x-api-key': `dip_guess_${i}` });
      statuses.push(a.status);
    }
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses).toContain(429);
  });

  it("counts another participant's API key against the certificate that brings it, not against that participant", async () => {
    const third = await t.participant('2000000003', ['SDS']);
    clock.jump(5200); // sds has a token again
    const statuses: number[] = [];
    for (let i = 0; i < 20 && !statuses.includes(429); i++) {
      const a = await third.client.call('POST', '/dip-channel/IF-021', '[]', { 'x-api-key': sds.apiKey });
      statuses.push(a.status);
    }
    expect(statuses[0]).toBe(403); // the certificate is not sds's
    expect(statuses).toContain(429);
    // sds's own token is still there.
    expect((await sds.client.submit('IF-021', [item(sds.dipId, 'rlmine')])).status).toBe(201);
  });
});
