import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRuns } from './helpers/cli-budget.js';
import { runDip } from './helpers/dip-cli.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';

/** The on-call operator's commands against a running DIP: what they print, and their exit codes. */
describe('`dip health`, `dip alarms`, `dip queues`', () => {
  let t: TestDip;
  let env: Record<string, string>;
  beforeAll(async () => {
    t = await startTestDip();
    await t.participant('1000000001', ['SUP']);
    env = { DIP_DATA_DIR: t.config.dataDir, DIP_ADMIN_PORT: String(t.dip.adminPort) };
  });
  afterAll(async () => t?.close());

  it('print the health, the alarms and the queues as the operator API answers them', cliRuns(3), async () => {
    const [health, alarms, queues] = await Promise.all([runDip(env, 'health'), runDip(env, 'alarms'), runDip(env, 'queues')]);
    expect(health.code, health.stderr).toBe(0);
    expect(JSON.parse(health.stdout)).toMatchObject({ storage: { state: 'ok' }, loading: null });
    expect(alarms.code, alarms.stderr).toBe(0);
    expect(JSON.parse(alarms.stdout)).toEqual({ alarms: expect.any(Array) });
    expect(queues.code, queues.stderr).toBe(0);
    expect(JSON.parse(queues.stdout)).toEqual(expect.any(Array));
  });

  it('exit 1 with the refusal when the DIP refuses: a queue that does not exist, a node that is not lost', cliRuns(2), async () => {
    const [resume, removed] = await Promise.all([
      runDip(env, 'queues', 'resume', '--recipient', '1000000001', '--channel', 'IF-021'),
      runDip(env, 'node-removed', 'node-that-never-was'),
    ]);
    expect(resume.code).toBe(1);
    expect(resume.stderr).toMatch(/^dip: admin API answered 404: .*no queue 1000000001\/IF-021: nothing was ever enqueued/);
    expect(removed.code).toBe(1);
    expect(removed.stderr).toMatch(/^dip: admin API answered 404: .*node-that-never-was/);
  });
});
