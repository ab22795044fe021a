/** Who a portal request is signed in as (src/portal/session.ts signedIn): the cookie, the account, and for operators the operator account. */
import type { FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { PortalDeps } from '../src/portal/deps.js';
import { OPERATOR_REALM } from '../src/portal/operator-pages.js';
import { firstQueryValues } from '../src/portal/server.js';
import { namedCaller, signedIn } from '../src/portal/session.js';
import { USER_REALM } from '../src/portal/user-realm.js';
import { keyFromFile, SessionSigner } from '../src/security/portal-session.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from './helpers/clocks.js';

describe('an operator portal session', () => {
  it('lasts only while the operator account is in force: disabled, the next page finds no one signed in', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const sessions = new SessionSigner(Buffer.alloc(32, 7));
    const { token } = sessions.issue({ username: 'olga', realm: 'user', epoch: 0, expiresAt: clock.now() + 60_000, seenAt: clock.now() });
    const account = { username: 'olga', displayName: 'Olga', participantDipId: null, admin: true };
    let inForce = true;
    const deps = {
      clock,
      config: { portal: { sessionIdleMinutes: 30 } },
      sessions,
      accounts: { fromSession: async () => account },
      // What GET /admin/whoami answers for her: her name and role while enabled, a 401 (no data) once disabled.
      operatorApi: () => ({ GET: async () => (inForce ? { data: { name: 'olga', role: 'admin' } } : { data: undefined, error: { error: 'this session has ended' } }) }),
    } as unknown as PortalDeps;
    const req = { headers: { cookie: `${OPERATOR_REALM.cookie}=${token}` } } as FastifyRequest;
    expect((await signedIn(deps, req, OPERATOR_REALM))?.account.username).toBe('olga');
    inForce = false;
    expect(await signedIn(deps, req, OPERATOR_REALM)).toBeUndefined();
  });
});

describe('a portal session left idle, in the API activity log', () => {
  it('names nobody once the idle limit has passed (the page answered sent the person to sign in)', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const sessions = new SessionSigner(Buffer.alloc(32, 7));
    const { token } = sessions.issue({ username: 'una', realm: 'user', epoch: 0, expiresAt: clock.now() + 8 * 3_600_000, seenAt: clock.now() });
    const deps = { clock, sessions, config: { portal: { sessionIdleMinutes: 30 } } } as unknown as PortalDeps;
    const req = { method: 'GET', url: '/portal/', headers: { cookie: `${USER_REALM.cookie}=${token}` } } as FastifyRequest;
    expect(namedCaller(deps, req, USER_REALM)).toBe('user:una');
    await clock.advance(30 * 60_000);
    expect(namedCaller(deps, req, USER_REALM)).toBeNull();
  });
});

describe("the portals' query strings", () => {
  it('give one value per name, the first, decoded; __proto__ is a plain parameter', () => {
    const q = firstQueryValues('caller=a&caller=b&hours=24&note=x%20y&__proto__=p');
    expect({ ...q }).toEqual({ caller: 'a', hours: '24', note: 'x y', ['__proto__']: 'p' });
    expect(Object.getPrototypeOf(q)).toBeNull();
  });
});

describe('keyFromFile: the session and token keys in the data directory', () => {
  it('makes a whole 256-bit key once (no temporary file left), reads the same one after, and refuses a file that holds none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-key-'));
    const file = join(dir, 'session.key');
    const key = keyFromFile(file);
    expect(key.length).toBe(32);
    expect(keyFromFile(file).equals(key)).toBe(true);
    expect(readdirSync(dir)).toEqual(['session.key']);
    // What another node's half-made file looked like when it was written in place: never used as a key.
    writeFileSync(file, '');
    expect(() => keyFromFile(file)).toThrow(/holds no 256-bit key \(0 bytes\)/);
  });

  // A hand-placed admin token (the bootstrap token is one of these files, shared by every node since this
  // release) was read as base64url whatever it held: characters outside that alphabet were dropped, so
  // the token the other nodes were given (the bytes re-encoded) was not the text the operator placed.
  it('refuses, naming the file, what is not base64url of at least 32 bytes', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-key-')), 'admin-token');
    for (const text of ['my-own-token', `${'a+b/'.repeat(12)}==`]) {
      writeFileSync(file, `${text}\n`);
      expect(() => keyFromFile(file), text).toThrow(file);
      expect(() => keyFromFile(file), text).toThrow('it must hold at least 32 random bytes in base64url');
    }
    const placed = randomBytes(48).toString('base64url');
    writeFileSync(file, `${placed}\n`);
    expect(keyFromFile(file).toString('base64url')).toBe(placed);
  });
});
