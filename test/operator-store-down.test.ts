/**
 * The operator API while the store is down (README "Operator accounts"): a node on the cluster backend
 * whose PostgreSQL goes away (its connections reset, new ones refused, as a stopped server does). Before,
 * checking an operator's session asked the store, so every call, GET /admin/alarms among them, was a 503
 * exactly when the operator on call needed the alarms. Now a read is checked against the node's last
 * reading of the accounts (src/pipeline/operator-memory.ts) while it is at most
 * operators.rememberedMinutes old; writes still need the store; a session ended or an account disabled
 * before the store went is not let in; and past the bound nothing is let in without the store.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CHECKED_AT_HEADER } from '../src/api/admin-operators.js';
import { DEFAULTS } from '../src/config.js';
import { totpCode } from '../src/security/portal-credentials.js';
import { adminApi } from './helpers/admin.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';
import { pausableProxy, type PausableProxy } from './helpers/pausable-proxy.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

interface Offer {
  token: string;
  secret: string;
}

describe('the operator API while PostgreSQL is down', () => {
  let db: TestDatabase;
  let proxy: PausableProxy;
  let t: TestDip;
  const prefix = testPrefix();
  const clock = new ShiftableClock();
  const sessions: Record<string, string> = {};
  let monitoringToken: string;

  /** A person's first sign-in: enrols a TOTP and chooses a password; answers the session token. */
  const firstSignIn = async (name: string, password: string): Promise<string> => {
    const anyone = adminApi(t, 'none');
    const started = await anyone('POST', '/admin/session', { name, password });
    expect(started.status, JSON.stringify(started.body)).toBe(403);
    const offer = started.body.totpEnrolment as Offer;
    clock.jump(30_000);
    const done = await anyone('POST', '/admin/session/enrolment', { token: offer.token, code: totpCode(offer.secret, clock.now()), newPassword: `${password}-mine` });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    return done.body.token as string;
  };

  beforeAll(async () => {
    db = await createTestDatabase('opendip_opdown');
    const url = new URL(await db.freshSchema());
    proxy = await pausableProxy(url);
    const storage = { ...DEFAULTS.storage, kind: 'cluster' as const, postgres: { ...DEFAULTS.storage.postgres, url: proxy.url, poolSize: 4 }, nats: { ...DEFAULTS.storage.nats, servers: NATS_SERVERS, prefix, leaseTtlMs: 3000 } };
    t = await startTestDip({ storage }, mkdtempSync(join(tmpdir(), 'opendip-opdown-')), { clock });
    for (const [name, role] of [['alice', 'admin'], ['bob', 'operator'], ['carol', 'viewer']] as const) {
      // The bootstrap token makes the first admin; she makes the others.
      const made = await adminApi(t, sessions.alice)('POST', '/admin/operators', { name, role });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      sessions[name] = await firstSignIn(name, made.body.password as string);
    }
    const monitoring = await adminApi(t, sessions.alice)('POST', '/admin/operators', { name: 'monitoring', role: 'viewer', automation: true });
    expect(monitoring.status, JSON.stringify(monitoring.body)).toBe(201);
    monitoringToken = monitoring.body.token as string;
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await proxy?.close();
    await db?.drop();
    await deleteBuckets(prefix);
  });

  it('lets operators read the alarms from the node’s memory of the accounts, refuses writes, and stops at the bound', async () => {
    const alice = adminApi(t, sessions.alice);
    // Bob signs out and carol's account is disabled while the store answers: both refused at once.
    expect((await adminApi(t, sessions.bob)('DELETE', '/admin/session')).status).toBe(204);
    expect((await alice('PATCH', '/admin/operators/carol', { disabled: true })).status).toBe(200);
    expect((await adminApi(t, sessions.bob)('GET', '/admin/alarms')).status).toBe(401);
    expect((await adminApi(t, sessions.carol)('GET', '/admin/alarms')).status).toBe(401);
    const before = await alice('GET', '/admin/alarms');
    expect([before.status, before.headers?.[CHECKED_AT_HEADER]]).toEqual([200, undefined]);

    proxy.refuse();
    // Read with a session or an automation token: answered, saying when the credential was last checked.
    const during = await alice('GET', '/admin/alarms');
    expect(during.status, JSON.stringify(during.body)).toBe(200);
    expect(Array.isArray(during.body.alarms)).toBe(true);
    expect(Date.parse(String(during.headers?.[CHECKED_AT_HEADER]))).toBeLessThanOrEqual(clock.now());
    expect((await alice('GET', '/admin/whoami')).body).toEqual({ name: 'alice', role: 'admin' });
    expect((await adminApi(t, monitoringToken)('GET', '/admin/alarms')).status).toBe(200);
    // The role still applies.
    expect((await adminApi(t, monitoringToken)('GET', '/admin/activity')).status).toBe(403);
    // What was ended before the store went stays ended: never let in on the memory.
    for (const ended of [sessions.bob, sessions.carol]) expect((await adminApi(t, ended)('GET', '/admin/alarms')).status).not.toBe(200);
    // A forged session is refused without the store; an unknown token is not guessed at.
    expect((await adminApi(t, `${sessions.alice!.slice(0, -4)}AAAA`)('GET', '/admin/alarms')).status).toBe(401);
    const unknown = await adminApi(t, 'dipop_unknown')('GET', '/admin/alarms');
    expect([unknown.status, unknown.headers?.['retry-after']]).toEqual([503, '5']);
    // The bootstrap token is still refused once an admin exists (the memory knows one does).
    expect((await adminApi(t)('GET', '/admin/alarms')).status).toBe(401);
    // A write needs the store: 503 with Retry-After, nothing done.
    const write = await alice('POST', '/admin/alarms/subscriptions', { rules: ['storage'], email: 'ops@example.net' });
    expect([write.status, write.headers?.['retry-after']]).toEqual([503, '5']);

    // A server cut off (packets dropped) rather than refusing: the store known down, a read is checked
    // against the memory at once, not after the store's timeout (5 s to connect; 35 s for a query). Proved
    // without timing it: the store's read of an account (what checking a session asks it) never answers
    // and says when it is asked; the answer must come first, the store never asked.
    expect(t.dip.backend.health().state).toBe('unavailable');
    proxy.restore();
    proxy.silence();
    const store = t.dip.backend.portalAccounts;
    let asked: (() => void) | undefined;
    const storeAsked = new Promise<string>((resolve) => (asked = () => resolve('the store was asked, and never answers')));
    let release: ((e: Error) => void) | undefined;
    const hung = vi.spyOn(store, 'account').mockImplementation(() => {
      asked?.();
      return new Promise((_, reject) => (release = reject));
    });
    try {
      const first = await Promise.race([alice('GET', '/admin/alarms').then((a) => a.status), storeAsked]);
      expect(first).toBe(200);
      expect(hung).not.toHaveBeenCalled();
    } finally {
      hung.mockRestore();
      // A regression's request is left waiting on the store: let it end (as the store's timeout would).
      release?.(Object.assign(new Error('connection timeout'), { code: 'ETIMEDOUT' }));
    }
    proxy.resume();
    proxy.refuse();

    // Past operators.rememberedMinutes from the last reading, the memory is no longer used.
    clock.jump(t.config.operators.rememberedMinutes * 60_000 + 31_000);
    const late = await alice('GET', '/admin/alarms');
    expect([late.status, late.headers?.['retry-after']]).toEqual([503, '5']);

    // The store back: checked against it again.
    proxy.restore();
    // A read alone does not call the store healthy again (c50b457: only a write does, here the health
    // probe's, every 2 s): until then the memory answers, 200 with the header.
    const checked = async (): Promise<boolean> => {
      const a = await alice('GET', '/admin/alarms');
      return a.status === 200 && a.headers?.[CHECKED_AT_HEADER] === undefined;
    };
    await waitFor(checked, 20_000, 'the store answering again, and credentials checked against it');
  }, 60_000);
});
