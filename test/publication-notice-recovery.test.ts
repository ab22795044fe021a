import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { DEFAULTS } from '../src/config.js';
import { StoreError } from '../src/ports/errors.js';
import type { QueueRef } from '../src/ports/message-log.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { publicationBackends } from './helpers/publication-backends.js';

const sha = (b: string): string => createHash('sha256').update(b).digest('base64');
const CSV = 'MPAN,Volume\n1000000000001,1.5\n';

const backends = publicationBackends('opendip_notice');

/**
 * Pattern B's two writes, the publication's record and its notice in the message log, are not one: a
 * process killed between them (or a notice append that failed) left a published, downloadable
 * publication whose recipients were never told. Here the store dies at those points in the first DIP (its writes fail from there on, as a kill
 * leaves them), and a second DIP starts on the same data: every recipient gets each notice exactly once.
 */
describe.each(backends)('a publication whose notice a crash cut off is notified after the restart, exactly once ($name)', ({ storage: openStorage }) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'opendip-notice-'));
  // One clock for both runs: the restart finds the publications as old as they are.
  const clock = new ShiftableClock();
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('re-queues the notice the crash lost, and not the one it had queued', async () => {
    const { storage, cleanup } = await openStorage();
    closers.push(cleanup);
    const overrides = { publications: { ...DEFAULTS.publications }, ...(storage ? { storage } : {}) };
    const first: TestDip = await startTestDip(overrides, dataDir, { clock });
    let stopped = false;
    closers.push(async () => {
      if (!stopped) await first.close();
    });
    const vas: TestParticipant = await first.participant('VAS0000001', ['VAS']);
    const sup = await first.participant('SUP0000001', ['SUP']);
    const ldso = await first.participant('LDS0000001', ['LDSO']);
    const publish = (type: string) => vas.client.publish('REP-002', { type, version: '1', format: 'csv' }, Buffer.from(CSV), sha(CSV));
    const backend = first.dip.backend;

    // Killed after the notice was appended, before it was marked queued: the mark never lands.
    const index = backend.publications as unknown as Record<string, unknown>;
    const mark = index.noticeQueued;
    index.noticeQueued = async () => {
      throw new StoreError('unavailable', 'the process died here', 'ECONNRESET');
    };
    const queued = await publish('Queued');
    index.noticeQueued = mark;
    expect(queued.status).toBe(201);

    // The notice's append fails after the record committed (the store lost for a moment, or the process
    // killed there): the record stays, not marked notified (it was once taken back, and the publisher
    // answered 503), and the publisher is told it is stored, its notice to follow.
    const append = backend.log.append.bind(backend.log);
    backend.log.append = async () => {
      throw new StoreError('unavailable', 'the store was lost here', 'ECONNRESET');
    };
    const lost = await publish('Lost');
    backend.log.append = append;
    const [lostRecord] = await backend.publications.find({ channel: 'REP-002', publicationType: 'Lost', limit: 1 });
    expect(lostRecord).toBeDefined();
    expect([lost.status, lost.body.messageArray[0]!.transactionID, lost.body.messageArray[0]!.help]).toEqual([201, null, expect.stringContaining(`could not be queued now: the DIP queues it itself once the publication is 5 minutes old`)]);

    stopped = true;
    await first.close();

    const second = await startTestDip(overrides, dataDir, { clock });
    closers.push(() => second.close());
    const queues: QueueRef[] = [sup, ldso].map((p) => ({ recipientDipId: p.dipId, channel: 'REP-002' }));
    const awaiting = async () => (await second.dip.backend.publications.awaitingNotice(Number.MAX_SAFE_INTEGER, 10)).map((r) => r.publicationType);
    // The pass at start leaves alone what a publish under way (on any node) may still notify: both are
    // younger than that grace.
    expect(await awaiting()).toEqual(['Queued', 'Lost']);
    // Once it is over, the next pass queues the lost notice; the one queued before the crash is made again
    // and refused by the log as a duplicate.
    clock.jump(DEFAULTS.purgeIntervalSeconds * 1000);
    await waitFor(async () => (await awaiting()).length === 0, 10_000, 'both notices recorded as queued');
    const heads = async () => Promise.all(queues.map(async (q) => (await second.dip.backend.log.queueState(q)).headSeq));
    expect(await heads()).toEqual([2, 2]);
    // Another pass finds nothing left to queue.
    expect(await second.dip.publications.queueMissedNotices()).toBe(0);
    expect(await heads()).toEqual([2, 2]);

    for (const p of [sup, ldso]) {
      const client = new DipClient({ baseUrl: second.dip.url, apiKey: p.apiKey, keyPem: p.credentials.keyPem, certPem: p.credentials.certPem, caPem: second.dip.pki.ca.certPem, now: () => new Date(clock.now()) });
      closers.push(() => client.close());
      const pulled = (await client.pull('REP-002', p.dipId, 100)).body as Array<{ payload: { CustomBlock: { P02List: Array<{ additionalInformation: string; distributionDeliveryURI: string }> } } }>;
      const told = pulled.map((n) => (JSON.parse(n.payload.CustomBlock.P02List[0]!.additionalInformation) as { publicationType: string }).publicationType);
      expect([p.dipId, told.sort()]).toEqual([p.dipId, ['Lost', 'Queued']]);
      const lostNotice = pulled.find((n) => n.payload.CustomBlock.P02List[0]!.additionalInformation.includes(lostRecord!.id))!;
      expect(lostNotice.payload.CustomBlock.P02List[0]!.distributionDeliveryURI).toMatch(new RegExp(`^https://[^/]+:${second.dip.port}/dip-channel/REP-002/publications/${lostRecord!.id}/content$`));
    }
  });
});
