import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';
import { adminApi } from './helpers/admin.js';

describe('operator accounts', () => {
  let t: TestDip;
  let bootstrap: ReturnType<typeof adminApi>;

  beforeAll(async () => {
    t = await startTestDip();
    bootstrap = adminApi(t);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('the bootstrap token creates the first admin; each operator then acts under its own name and role', async () => {
    const created = await bootstrap('POST', '/admin/operators', { name: 'alice', role: 'admin' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.token).toMatch(/^dipop_/);
    const alice = adminApi(t, created.body.token);
    expect((await alice('GET', '/admin/whoami')).body).toEqual({ name: 'alice', role: 'admin' });

    const bob = adminApi(t, (await alice('POST', '/admin/operators', { name: 'bob', role: 'operator' })).body.token);
    const vera = adminApi(t, (await alice('POST', '/admin/operators', { name: 'vera', role: 'viewer' })).body.token);
    expect((await bootstrap('POST', '/admin/operators', { name: 'bob', role: 'viewer' })).status).toBe(409);
    expect((await bootstrap('POST', '/admin/operators', { name: 'no spaces', role: 'viewer' })).status).toBe(400);

    // Roles: a viewer reads, an operator runs the DIP, only an admin manages accounts and security.
    expect((await vera('GET', '/admin/dead-letters')).status).toBe(200);
    expect((await vera('POST', '/admin/dead-letters/requeue', { recipientDipId: '1000000001', channel: 'IF-021' })).status).toBe(403);
    expect((await bob('POST', '/admin/dead-letters/requeue', { recipientDipId: '1000000001', channel: 'IF-021' })).status).toBe(200);
    expect((await bob('GET', '/admin/operators')).status).toBe(403);
    expect((await bob('POST', '/admin/keys/rotate')).status).toBe(403);
    expect((await adminApi(t, 'dipop_not-a-token')('GET', '/admin/whoami')).status).toBe(401);

    // Every act is attributable to its named operator, with what it changed.
    const byBob = await alice('GET', '/admin/journal?actor=operator:bob');
    expect(byBob.body).toEqual([expect.objectContaining({ actor: 'operator:bob', action: 'POST /admin/dead-letters/requeue', target: '1000000001/IF-021', status: 200 })]);
    const creations = await alice('GET', '/admin/journal?action=operator.create');
    expect(creations.body.map((e: { actor: string; target: string }) => [e.actor, e.target])).toEqual([
      ['operator:alice', 'vera'],
      ['operator:alice', 'bob'],
      ['bootstrap', 'alice'],
    ]);
    // Refused calls change nothing and are not acts: vera's refused requeue is not in the journal.
    expect((await alice('GET', '/admin/journal?actor=operator:vera')).body).toEqual([]);

    // A disabled account stops at once; a new token replaces the old one.
    const disabled = await alice('PATCH', '/admin/operators/bob', { disabled: true });
    expect(disabled.body.operator).toMatchObject({ name: 'bob', disabled: true, version: 2 });
    expect((await bob('GET', '/admin/queues')).status).toBe(401);
    const renewed = await alice('PATCH', '/admin/operators/vera', { newToken: true });
    expect((await vera('GET', '/admin/queues')).status).toBe(401);
    expect((await adminApi(t, renewed.body.token)('GET', '/admin/whoami')).body).toEqual({ name: 'vera', role: 'viewer' });
    const journalled = (await alice('GET', '/admin/journal?target=bob&action=operator.update')).body;
    expect(journalled[0]).toMatchObject({ actor: 'operator:alice', before: { disabled: false }, after: { disabled: true } });
    // Nobody sees a token or its hash again.
    expect(JSON.stringify((await alice('GET', '/admin/operators')).body)).not.toMatch(/tokenHash|dipop_/);
  });
});
