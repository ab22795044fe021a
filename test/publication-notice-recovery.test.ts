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
 * Two DIPs, one after the other, on the same data directory and clock (the restart finds what the first
 * left as old as it is): the first with a publisher and two recipients of REP-002; the second started by
 * restart() once the first is closed. Everything is closed after the suite.
 */
function twoRuns(prefix: string) {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const clock = new ShiftableClock();
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });
  return {
    clock,
    async start(openStorage: (typeof backends)[number]['storage']) {
      const { storage, cleanup } = await openStorage();
      closers.push(cleanup);
      const overrides = { publications: { ...DEFAULTS.publications }, ...(storage ? { storage } : {}) };
      const first: TestDip = await startTestDip(overrides, dataDir, { clock });
      let stopped = false;
      closers.push(async () => {
        if (!stopped) await first.close();
      });
      const vas: TestParticipant = await first.participant('VAS0000001', ['VAS']);
      const recipients = [await first.participant('SUP0000001', ['SUP']), await first.participant('LDS0000001', ['LDSO'])];
      const restart = async (): Promise<TestDip> => {
        stopped = true;
        await first.close();
        const second = await startTestDip(overrides, dataDir, { clock });
        closers.push(() => second.close());
        return second;
      };
      /** A recipient's client on the second DIP. */
      const clientOn = (second: TestDip, p: TestParticipant): DipClient => {
        const client = new DipClient({ baseUrl: second.dip.url, apiKey: p.apiKey, keyPem: p.credentials.keyPem, certPem: p.credentials.certPem, caPem: second.dip.pki.ca.certPem, now: () => new Date(clock.now()) });
        closers.push(() => client.close());
        return client;
      };
      return { first, vas, recipients, restart, clientOn };
    },
  };
}

/**
 * Pattern B's two writes, the publication's record and its notice in the message log, are not one: a
 * process killed between them (or a notice append that failed) left a published, downloadable
 * publication whose recipients were never told. Here the store dies at those points in the first DIP (its writes fail from there on, as a kill
 * leaves them), and a second DIP starts on the same data: every recipient gets each notice exactly once.
 */
describe.each(backends)('a publication whose notice a crash cut off is notified after the restart, exactly once ($name)', ({ storage: openStorage }) => {
  const runs = twoRuns('opendip-notice-');
  const clock = runs.clock;

  it('re-queues the notice the crash lost, and not the one it had queued', async () => {
    const { first, vas, recipients, restart, clientOn } = await runs.start(openStorage);
    const [sup, ldso] = recipients as [TestParticipant, TestParticipant];
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

    const second = await restart();
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
      const pulled = (await clientOn(second, p).pull('REP-002', p.dipId, 100)).body as Array<{ payload: { CustomBlock: { P02List: Array<{ additionalInformation: string; distributionDeliveryURI: string }> } } }>;
      const told = pulled.map((n) => (JSON.parse(n.payload.CustomBlock.P02List[0]!.additionalInformation) as { publicationType: string }).publicationType);
      expect([p.dipId, told.sort()]).toEqual([p.dipId, ['Lost', 'Queued']]);
      const lostNotice = pulled.find((n) => n.payload.CustomBlock.P02List[0]!.additionalInformation.includes(lostRecord!.id))!;
      expect(lostNotice.payload.CustomBlock.P02List[0]!.distributionDeliveryURI).toMatch(new RegExp(`^https://[^/]+:${second.dip.port}/dip-channel/REP-002/publications/${lostRecord!.id}/content$`));
    }
  });
});

/**
 * A withdrawal's two writes, the record marked withdrawn and the withdrawal notice in the message log, are
 * not one either: the notice's append fails (the store lost, the process killed there) after the record
 * is marked, or the process dies after the append, before it is recorded. A second DIP on the same data
 * tells every recipient that was told of the publication exactly once.
 */
describe.each(backends)('a withdrawal whose notice a crash cut off is notified after the restart, exactly once ($name)', ({ storage: openStorage }) => {
  const runs = twoRuns('opendip-withdrawal-notice-');

  it('re-queues the withdrawal notice the crash lost, and not the one it had queued', async () => {
    const { first, vas, recipients, restart, clientOn } = await runs.start(openStorage);
    const ids: Record<string, string> = {};
    for (const type of ['Queued', 'Lost']) {
      const published = await vas.client.publish('REP-002', { type, version: '1', format: 'csv' }, Buffer.from(CSV), sha(CSV));
      expect(published.status).toBe(201);
      ids[type] = (published.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
    }
    const withdraw = (id: string) => vas.client.call('POST', `/dip-channel/REP-002/publications/${id}/withdraw`, JSON.stringify({ reason: 'the wrong file' }), { 'content-type': 'application/json' });
    const backend = first.dip.backend;

    // Killed after the withdrawal notice was appended, before it was recorded as queued.
    const index = backend.publications as unknown as Record<string, unknown>;
    const mark = index.noticeQueued;
    index.noticeQueued = async () => {
      throw new StoreError('unavailable', 'the process died here', 'ECONNRESET');
    };
    expect((await withdraw(ids['Queued']!)).status).toBe(200);
    index.noticeQueued = mark;

    // The append fails after the record was marked: withdrawn all the same, its notice to follow.
    const append = backend.log.append.bind(backend.log);
    backend.log.append = async () => {
      throw new StoreError('unavailable', 'the store was lost here', 'ECONNRESET');
    };
    const lost = await withdraw(ids['Lost']!);
    backend.log.append = append;
    expect([lost.status, lost.body.messageArray[0]!.help]).toEqual([200, expect.stringContaining('could not be queued now')]);

    const second = await restart();
    const awaiting = async () => (await second.dip.backend.publications.awaitingNotice(Number.MAX_SAFE_INTEGER, 10, 'withdrawal')).map((r) => r.publicationType);
    expect(await awaiting()).toEqual(['Queued', 'Lost']);
    runs.clock.jump(DEFAULTS.purgeIntervalSeconds * 1000);
    await waitFor(async () => (await awaiting()).length === 0, 10_000, 'both withdrawal notices recorded as queued');
    expect(await second.dip.publications.queueMissedNotices()).toBe(0);

    for (const p of recipients) {
      const pulled = (await clientOn(second, p).pull('REP-002', p.dipId, 100)).body as Array<{ payload: { CustomBlock: { P02List: Array<{ additionalInformation: string }> } } }>;
      const told = pulled.map((n) => JSON.parse(n.payload.CustomBlock.P02List[0]!.additionalInformation) as { publicationType: string; withdrawn?: { reason: string } });
      // Each publication's notice, then each withdrawal's, once.
      expect([p.dipId, told.map((n) => `${n.publicationType}${n.withdrawn ? ` withdrawn: ${n.withdrawn.reason}` : ''}`).sort()]).toEqual([p.dipId, ['Lost', 'Lost withdrawn: the wrong file', 'Queued', 'Queued withdrawn: the wrong file']]);
    }
  });
});
