import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

// Issue 13 item 4: superseded versions are kept for the channel's retention period, then purged with
// their bytes; the newest version of a type stays whatever its age.
const sha = (b: string): string => createHash('sha256').update(b).digest('base64');
const DAY = 86_400_000;

describe('publication retention and versions', () => {
  const clock = new ShiftableClock();
  let t: TestDip;
  let vas: TestParticipant;

  beforeAll(async () => {
    t = await startTestDip({ publications: { ...DEFAULTS.publications, retentionDays: 1 } }, undefined, { clock });
    vas = await t.participant('VAS0000001', ['VAS']);
  });
  afterAll(async () => {
    await t.close();
  });

  const publish = async (version: string, body: string): Promise<string> => {
    const answer = await vas.client.publish('REP-002', { type: 'DUoS', version, format: 'csv' }, Buffer.from(body), sha(body));
    expect(answer.status).toBe(201);
    return (answer.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
  };
  const blobs = (): string[] => readdirSync(join(t.config.dataDir, 'publications')).filter((f) => f.endsWith('.blob'));

  it('keeps a superseded version for the retention period, then removes its record and its bytes', async () => {
    const v1 = await publish('1', 'MPAN,GSPGroupID\n1000000000001,_A\n');
    const v2 = await publish('2', 'MPAN,GSPGroupID\n1000000000002,_B\n');
    expect(blobs()).toHaveLength(2);

    // Superseded, but younger than the channel's retention: kept, listed, downloadable.
    expect(await t.dip.publications.purge()).toBe(0);
    expect(await t.dip.publications.get(v1)).toBeDefined();

    clock.jump(2 * DAY);
    expect(await t.dip.publications.purge()).toBe(1);
    expect(await t.dip.publications.get(v1)).toBeUndefined();
    const gone = await vas.client.call('GET', `/dip-channel/REP-002/publications/${v1}`, '');
    expect(gone.status).toBe(404);
    // The newest version stays, however old.
    expect(await t.dip.publications.get(v2)).toBeDefined();
    expect(blobs()).toHaveLength(1);
    expect(await t.dip.publications.purge()).toBe(0);
  });

  it('removes bytes no committed record points to on the retention schedule, once older than the grace period', async () => {
    const kept = blobs();
    // What a crash between storing the bytes and committing the record leaves.
    const orphan = join(t.config.dataDir, 'publications', `${randomUUID()}.blob`);
    writeFileSync(orphan, 'sealed bytes whose record was never committed');
    clock.jump((DEFAULTS.publications.orphanGraceMinutes + 1) * 60_000 + DEFAULTS.purgeIntervalSeconds * 1000);
    await waitFor(() => !existsSync(orphan), 10_000, 'the orphan to be swept');
    expect(blobs()).toEqual(kept);
  });
});
