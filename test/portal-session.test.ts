/** Who a portal request is signed in as (src/portal/session.ts signedIn): the cookie, the account, and for operators the operator account. */
import type { FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { PortalDeps } from '../src/portal/deps.js';
import { OPERATOR_REALM } from '../src/portal/operator-pages.js';
import { firstQueryValues } from '../src/portal/server.js';
import { signedIn } from '../src/portal/session.js';
import { SessionSigner } from '../src/security/portal-session.js';
import { FakeClock } from './helpers/clocks.js';

describe('an operator portal session', () => {
  it('lasts only while the operator account is in force: disabled, the next page finds no one signed in', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const sessions = new SessionSigner(Buffer.alloc(32, 7));
    const { token } = sessions.issue({ username: 'olga', epoch: 0, expiresAt: clock.now() + 60_000 });
    const account = { username: 'olga', displayName: 'Olga', participantDipId: null, admin: true };
    let inForce = true;
    const deps = {
      clock,
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

describe("the portals' query strings", () => {
  it('give one value per name, the first, decoded; __proto__ is a plain parameter', () => {
    const q = firstQueryValues('caller=a&caller=b&hours=24&note=x%20y&__proto__=p');
    expect({ ...q }).toEqual({ caller: 'a', hours: '24', note: 'x y', ['__proto__']: 'p' });
    expect(Object.getPrototypeOf(q)).toBeNull();
  });
});
