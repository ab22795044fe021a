import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MSG } from '../src/domain/response-codes.js';
import { cliRuns } from './helpers/cli-budget.js';
import { profileDir, runDip } from './helpers/dip-cli.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * The publisher's withdrawal from its own side: DipClient.withdrawPublication and `dip publication
 * withdraw`, against a real DIP (the route itself: publications-withdrawal.test.ts).
 */
const CSV = Buffer.from('MPAN,Volume\n1000000000001,1.5\n');
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('base64');

describe("a publisher's withdrawal, from its client and the command line", () => {
  let t: TestDip;
  let vas: TestParticipant;
  let sup: TestParticipant;

  beforeAll(async () => {
    t = await startTestDip();
    vas = await t.participant('VAS0000001', ['VAS']);
    sup = await t.participant('SUP0000001', ['SUP']);
  });
  afterAll(async () => t?.close());

  const publish = async (type: string): Promise<string> => {
    const answer = await vas.client.publish('REP-002', { type, version: '1', format: 'csv' }, CSV, sha(CSV));
    expect(answer.status).toBe(201);
    return (answer.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
  };
  const downloadStatus = async (id: string): Promise<number> => {
    const answer = await sup.client.download(`/dip-channel/REP-002/publications/${id}/content`);
    answer.body.resume();
    return answer.status;
  };

  it('DipClient.withdrawPublication withdraws its own publication, and only its own', async () => {
    const id = await publish('ByClient');
    const notMine = await sup.client.withdrawPublication('REP-002', id, 'not mine');
    expect([notMine.status, notMine.body.messageArray[0]!.help]).toEqual([404, `no publication ${id} on REP-002`]);
    const done = await vas.client.withdrawPublication('REP-002', id, 'uploaded the wrong file');
    expect([done.status, done.body.messageArray[0]!.message, done.body.publication?.publicationID, done.body.publication?.withdrawn]).toEqual([
      200,
      MSG.success,
      id,
      { at: expect.any(String), by: `participant:${vas.dipId}`, reason: 'uploaded the wrong file' },
    ]);
    expect(await downloadStatus(id)).toBe(410);
    expect((await vas.client.withdrawPublication('REP-002', id, 'again')).status).toBe(409);
  });

  it('`dip publication withdraw` withdraws it and prints the answer', async () => {
    const id = await publish('ByCli');
    const dir = profileDir(vas, t.dip.url);
    const run = await runDip({ DIP_DATA_DIR: t.config.dataDir }, 'publication', 'withdraw', id, '--as', dir, '--channel', 'REP-002', '--reason', 'sent to the wrong channel');
    expect(run.code, run.stderr).toBe(0);
    const printed = JSON.parse(run.stdout) as { publication: { publicationID: string; withdrawn: { by: string; reason: string } } };
    expect([printed.publication.publicationID, printed.publication.withdrawn.by, printed.publication.withdrawn.reason]).toEqual([id, `participant:${vas.dipId}`, 'sent to the wrong channel']);
    expect(await downloadStatus(id)).toBe(410);
  }, cliRuns(1).timeout);
});
