import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApi } from './helpers/admin.js';
import { FakeClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';

type Json = Record<string, any>;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
const company = (dipId: string, role: string, from: number) => [
  { companyRegNumber: '01234567', companyName: 'Scheduled Energy Ltd', companyDetails: [{ MPID: 'SCHE', marketRole: 'X', DIPID: dipId, DIPRole: role, datetimeFrom: iso(from), datetimeTo: null }] },
];

/** The register's endpoint: answers what `serve` says, and counts the calls that carried its credentials. */
type Answer = { status: number; body: string; chunked?: boolean };
async function startRegister(): Promise<{ url: string; calls: () => number; serve: (answer: Answer) => void; close(): void }> {
  let answer: Answer = { status: 200, body: '[]' };
  let calls = 0;
  const server: Server = createServer((req, res) => {
    if (req.headers.authorization !== 'Bearer register-secret') return res.writeHead(401).end();
    calls += 1;
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    // Chunked: no Content-Length to judge by, so only the streaming read can stop it.
    if (!answer.chunked) return res.end(answer.body);
    for (let i = 0; i < answer.body.length; i += 512) res.write(answer.body.slice(i, i + 512));
    return res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/companyDetails`,
    calls: () => calls,
    serve: (a) => {
      answer = a;
    },
    close: () => server.close(),
  };
}

describe('scheduled register pull (config register.pull) on a fake clock', () => {
  const clock = new FakeClock(Date.now());
  let t: TestDip;
  let admin: ReturnType<typeof adminApi>;
  let register: Awaited<ReturnType<typeof startRegister>>;
  const runs = async () => ((await admin('GET', '/admin/journal?action=register.pull')).body as Json[]).reverse();

  beforeAll(async () => {
    register = await startRegister();
    t = await startTestDip(
      {
        register: {
          pull: { url: register.url, intervalMinutes: 15, headers: { authorization: 'Bearer register-secret' }, snapshot: false },
          // The test's register is on loopback: listed, as an operator lists a private link.
          allowList: ['127.0.0.1'],
          maxFeedMb: 0.001,
        },
      },
      undefined,
      { clock },
    );
    admin = adminApi(t);
  });
  afterAll(async () => {
    await t?.close();
    register?.close();
  });

  it('pulls every interval on the clock, each run journalled: applied, failed upstream, refused as too large', async () => {
    register.serve({ status: 200, body: JSON.stringify(company('1000000077', 'SUP', clock.now() - 3_600_000)) });
    // Nothing before the first interval has passed.
    await clock.advance(14 * 60_000);
    expect(register.calls()).toBe(0);
    await clock.advance(60_000);
    await waitFor(async () => (await runs()).length === 1, 10_000, 'the first scheduled run journalled');
    expect(register.calls()).toBe(1);
    const [first] = await runs();
    expect(first).toMatchObject({ actor: 'register:schedule', target: register.url.split('/')[2], after: { url: register.url, changed: ['1000000077'], participants: 1 } });
    expect(((await admin('GET', '/admin/register')).body as Json[]).map((e) => e.dipId)).toEqual(['1000000077']);
    // The change itself is journalled by the feed, naming the endpoint; the credentials nowhere.
    expect(((await admin('GET', '/admin/journal?target=1000000077')).body as Json[])[0]).toMatchObject({ actor: `register:pull:${register.url.split('/')[2]}` });
    expect(JSON.stringify((await admin('GET', '/admin/journal')).body)).not.toContain('register-secret');

    // The next interval: the same feed, applied idempotently (nothing changed), still journalled.
    await clock.advance(15 * 60_000);
    await waitFor(async () => (await runs()).length === 2, 10_000, 'the second run');
    expect((await runs())[1]).toMatchObject({ after: { changed: [] } });

    // The register fails: journalled with why, nothing applied, and the next interval tries again.
    register.serve({ status: 500, body: 'down' });
    await clock.advance(15 * 60_000);
    await waitFor(async () => (await runs()).length === 3, 10_000, 'the failed run');
    expect((await runs())[2]!.after.failed).toBe(`${register.url} answered 500: nothing applied`);

    // A feed past register.maxFeedMb (here about 1 kB) is refused as it streams in, with its own error.
    register.serve({ status: 200, chunked: true, body: JSON.stringify(Array.from({ length: 40 }, (_, i) => company(`10000001${String(i).padStart(2, '0')}`, 'SUP', clock.now())[0])) });
    await clock.advance(15 * 60_000);
    await waitFor(async () => (await runs()).length === 4, 10_000, 'the oversized run');
    expect((await runs())[3]!.after.failed).toBe('the feed is larger than 0.001 MB (register.maxFeedMb): nothing applied');
    expect(((await admin('GET', '/admin/register')).body as Json[]).map((e) => e.dipId)).toEqual(['1000000077']);
    expect(register.calls()).toBe(4);
  });

  it('POST /admin/register/pull answers an oversized feed 502 with the same error (here judged by its Content-Length)', async () => {
    register.serve({ status: 200, body: JSON.stringify(Array.from({ length: 40 }, (_, i) => company(`10000001${String(i).padStart(2, '0')}`, 'SUP', clock.now())[0])) });
    const pulled = await admin('POST', '/admin/register/pull', { url: register.url, headers: { authorization: 'Bearer register-secret' } });
    expect(pulled.status).toBe(502);
    expect(pulled.body.error).toBe('the feed is larger than 0.001 MB (register.maxFeedMb): nothing applied');
  });
  it('keeps no secret of the URL: a key in its query is shown as …, a user and password are refused before any call', async () => {
    register.serve({ status: 500, body: 'down' });
    // secretlint-disable-next-line -- a made-up key in a test URL
    const keyed = `${register.url}?code=query-key-123&region=gb`;
    const pulled = await admin('POST', '/admin/register/pull', { url: keyed, headers: { authorization: 'Bearer register-secret' } });
    expect([pulled.status, pulled.body.error]).toEqual([502, `${register.url}?code=…&region=… answered 500: nothing applied`]);
    expect((await runs()).at(-1)!.after).toMatchObject({ url: `${register.url}?code=…&region=…` });

    const calls = register.calls();
    // secretlint-disable-next-line -- a made-up password in a test URL
    const withUser = register.url.replace('http://', 'http://feed:url-password@');
    const refused = await admin('POST', '/admin/register/pull', { url: withUser, headers: { authorization: 'Bearer register-secret' } });
    expect([refused.status, refused.body.error]).toEqual([400, expect.stringMatching(/^body\/url must not carry a user name or password/)]);
    expect(register.calls()).toBe(calls);
    const journal = JSON.stringify((await admin('GET', '/admin/journal')).body);
    expect([journal.includes('query-key-123'), journal.includes('url-password')]).toEqual([false, false]);
  });
});

describe('register pull destinations', () => {
  let t: TestDip;
  let register: Awaited<ReturnType<typeof startRegister>>;
  beforeAll(async () => {
    register = await startRegister();
    // DEV, where message webhooks may point anywhere: the register pull is checked all the same.
    t = await startTestDip();
  });
  afterAll(async () => {
    await t?.close();
    register?.close();
  });

  it('refuses loopback, private and link-local endpoints not on register.allowList, naming why, before any call', async () => {
    const admin = adminApi(t);
    for (const url of [register.url, 'http://10.1.2.3/feed', 'http://169.254.169.254/latest/meta-data', 'http://[::1]:8080/feed']) {
      const refused = await admin('POST', '/admin/register/pull', { url, headers: { authorization: 'Bearer register-secret' } });
      expect(refused.status, url).toBe(400);
      expect(refused.body.error, url).toMatch(/^body\/url: .*(loopback|private|link-local).*register\.allowList/);
    }
    expect(register.calls()).toBe(0);
    const runs = (await admin('GET', '/admin/journal?action=register.pull')).body as Json[];
    expect(runs).toHaveLength(4);
    expect(runs[0]).toMatchObject({ actor: 'bootstrap', after: { failed: expect.stringContaining('register.allowList') } });
  });
});
