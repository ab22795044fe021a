import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRuns } from './helpers/cli-budget.js';
import { runDip } from './helpers/dip-cli.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * `dip participant add` run again for a registered participant (a new certificate, a role): it keeps the
 * participant's DIP Connection Provider unless told otherwise. It withdrew the nomination whenever
 * --connection-provider was left out, and with it the webhooks the provider registered for its client.
 */
describe('`dip participant add` for a registered participant', () => {
  let t: TestDip;
  let cp: TestParticipant;
  let sup: TestParticipant;
  let cert: string;
  beforeAll(async () => {
    t = await startTestDip();
    cp = await t.participant('5000000001', ['DCP']);
    sup = await t.participant('1000000003', ['SUP']);
    cert = join(mkdtempSync(join(tmpdir(), 'opendip-add-')), 'cert.pem');
    writeFileSync(cert, sup.credentials.certPem);
    const nominated = await sup.client.call('PUT', `/participants/${sup.dipId}/connection-provider`, JSON.stringify({ dipId: cp.dipId }), { 'content-type': 'application/json' });
    expect(nominated.status).toBe(200);
    const providers = await t.receiver();
    expect((await cp.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${providers.url}cp-hook` })).status).toBe(201);
  });
  afterAll(async () => t?.close());

  const provider = async () => (await t.dip.backend.registry.participants()).find((r) => r.participant.dipId === sup.dipId)!.participant.connectionProvider;
  const hooks = async () => (await t.dip.backend.registry.webhooks()).filter((w) => w.recipientDipId === sup.dipId).map((w) => [w.channel, w.registeredBy]);
  const add = (...more: string[]) => runDip({ DIP_DATA_DIR: t.config.dataDir }, 'participant', 'add', '--dip-id', sup.dipId, '--role', 'SUP', '--cert', cert, ...more);

  it('keeps the nomination when --connection-provider is left out, and says so; --no-connection-provider withdraws it', cliRuns(2), async () => {
    const kept = await add();
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stdout).toContain(`Connection provider: ${cp.dipId}, kept (--no-connection-provider withdraws it)`);
    expect(await provider()).toBe(cp.dipId);
    expect(await hooks()).toEqual([['IF-021', cp.dipId]]);

    const withdrawn = await add('--no-connection-provider');
    expect(withdrawn.code, withdrawn.stderr).toBe(0);
    expect(withdrawn.stdout).toContain(`Connection provider: none (was ${cp.dipId}, withdrawn)`);
    expect(withdrawn.stdout).toContain(`Webhooks ${cp.dipId} registered for it, removed (their messages wait to be pulled): IF-021`);
    expect(await provider()).toBeNull();
    expect(await hooks()).toEqual([]);

    // Each run issued an API key: journalled as the operator at the command line (it left nothing but the
    // register's entries), the withdrawal of the nomination as its own entry.
    const journal = (await t.dip.backend.journal.entries({ target: sup.dipId, limit: 20 })).reverse().filter((e) => e.actor.startsWith('cli:'));
    expect(journal.map((e) => e.action)).toEqual(['participant.register', 'participant.register', 'participant.connection-provider.withdraw']);
    expect(journal[1]!.before).toMatchObject({ connectionProvider: cp.dipId });
    expect(journal[1]!.after).toMatchObject({ connectionProvider: null, apiKey: 'a new one issued: the one before no longer works' });
  });
});
