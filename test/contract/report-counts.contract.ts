import { describe, expect, it } from 'vitest';
import { GRANULARITIES, Reports, type ReportFilter, type Viewer } from '../../src/pipeline/reports.js';
import { PULL_ACKNOWLEDGED } from '../../src/ports/archive.js';
import { attemptId, batch, mds, message, sup, useBackend, type BackendFactory } from './fixtures.js';

const DIP = '0000000000';
const [SDS1, SDS2, SUP, MDS] = ['SDS0000001', 'SDS0000002', 'SUP0000001', 'MDS0000001'];

/**
 * ReportCounts: throughput and latency counted in the store. Every engine answers exactly what the reports
 * answered when they read every message and counted it in memory (the traces' fold, kept for that as
 * Reports without a ReportCounts): the same buckets, counts and nearest-rank percentiles, for the operator
 * and for each participant's view, under every filter and granularity.
 */
const sumOf = (rows: ReadonlyArray<{ in: number; out: number; errors: number; pending: number }>) =>
  rows.reduce((s, r) => ({ in: s.in + r.in, out: s.out + r.out, errors: s.errors + r.errors, pending: s.pending + r.pending }), { in: 0, out: 0, errors: 0, pending: 0 });

export function reportCountsContract(name: string, open: BackendFactory): void {
  describe(`ReportCounts contract: ${name}`, () => {
    const ctx = useBackend(open);
    // Within the store's kept days (PostgreSQL makes partitions around now), 90 minutes across two hours.
    const T0 = Date.now() - 90 * 60_000;
    const period = { fromMs: T0 - 3_600_000, toMs: Date.now() + 3_600_000 };

    /** Originals, a replay, the DIP's own status message, webhook and pull deliveries, a dead letter requeued and delivered, one pending. */
    async function fill(): Promise<void> {
      const { log, archive, deadLetters } = ctx.backend;
      const a = message([SUP, MDS], { receivedAt: T0 });
      const b = message([SUP], { receivedAt: T0 + 10 });
      const c = message([SUP], { receivedAt: T0 + 20, senderDipId: SDS2 });
      const d = message([MDS], { receivedAt: T0 + 61 * 60_000 });
      const e = message([SDS1], { receivedAt: T0 + 5, senderDipId: DIP, senderRole: 'STS', channel: 'STATUS' });
      const f = message([SUP, MDS], { receivedAt: T0 + 62 * 60_000, channel: 'IF-022' });
      await log.append(batch([a, b]));
      await log.append({ ...batch([c]), senderDipId: SDS2 });
      await log.append(batch([d]));
      await log.append({ ...batch([e]), channel: 'STATUS', senderDipId: DIP });
      await log.append({ ...batch([f]), channel: 'IF-022' });
      const call = { url: 'https://sup.example/dip', error: null };
      // SUP: a failed call, then one delivering a, b and c; later a replay of a, delivered by a pull.
      await archive.recordAttempt({ attemptId: attemptId(), queue: sup, firstSeq: 1, lastSeq: 1, ...call, startedAt: T0 + 100, latencyMs: 7, status: 503, verdict: 'retry' });
      await archive.recordAttempt({ attemptId: attemptId(), queue: sup, firstSeq: 1, lastSeq: 3, ...call, startedAt: T0 + 1000, latencyMs: 12, status: 200, verdict: 'delivered' });
      await log.settle(sup, { upTo: 3 });
      const [entryA] = await log.readQueue(sup, 0, 1, 1 << 20);
      await log.appendReplayCopies([{ originalId: entryA!.messageId, transactionId: `${a.transactionId}-R`, receivedAt: T0 + 5000, outbound: a.outbound, recipientDipId: sup.recipientDipId, capacity: null }], sup);
      await archive.recordAttempt({ attemptId: attemptId(), queue: sup, firstSeq: 4, lastSeq: 4, url: PULL_ACKNOWLEDGED, startedAt: T0 + 6000, latencyMs: 0, status: null, verdict: 'delivered', error: null });
      await log.settle(sup, { upTo: 4 });
      // MDS: a refused (dead letter, requeued, then delivered by a later call); d still pending.
      const [entryMds] = await log.readQueue(mds, 0, 1, 1 << 20);
      await archive.recordAttempt({ attemptId: attemptId(), queue: mds, firstSeq: 1, lastSeq: 1, ...call, startedAt: T0 + 200, latencyMs: 5, status: 400, verdict: 'rejected' });
      await log.settle(mds, { upTo: 1, deadLetters: [{ seq: 1, messageId: entryMds!.messageId, reason: 'rejected', status: 400, detail: 'refused' }] });
      expect(await deadLetters.requeueDeadLetters(mds, [1])).toEqual([1]);
      await archive.recordAttempt({ attemptId: attemptId(), queue: mds, firstSeq: 1, lastSeq: 1, ...call, startedAt: Date.now() + 1000, latencyMs: 9, status: 200, verdict: 'delivered' });
    }

    const reports = (counted: boolean, messageLimit?: number) =>
      new Reports(ctx.backend.traces, { history: async () => [] }, () => Date.now(), DIP, null, { ...(counted ? { counts: ctx.backend.reportCounts } : {}), ...(messageLimit !== undefined ? { messageLimit } : {}) });

    it('counts as the fold of every message did, for every viewer, filter and granularity', async () => {
      await fill();
      const [folded, counted] = [reports(false), reports(true)];
      const viewers: Viewer[] = [{ kind: 'operator' }, ...[SDS1, SDS2, SUP, MDS, DIP].map((dipId): Viewer => ({ kind: 'participant', dipId }))];
      const filters: Array<Partial<ReportFilter>> = [{}, { channels: ['IF-021'] }, { channels: ['IF-022'] }, { channels: ['IF-021', 'IF-022'] }, { channels: ['IF-022', 'STATUS'] }, { channels: ['IF-013'] }, { sender: SDS1 }, { sender: SDS2 }, { recipient: SUP }, { recipient: MDS }, { sender: SDS1, recipient: MDS }];
      for (const viewer of viewers) {
        for (const filter of filters) {
          for (const granularity of GRANULARITIES) {
            const f: ReportFilter = { ...period, granularity, ...filter };
            const why = `${JSON.stringify(viewer)} ${JSON.stringify(filter)} ${granularity}`;
            expect(await counted.throughput(viewer, f), why).toEqual(await folded.throughput(viewer, f));
            expect(await counted.latency(viewer, f), why).toEqual(await folded.latency(viewer, f));
          }
        }
      }
      // What the operator's month holds, said outright: 5 originals in (not the replay, not the DIP's own),
      // out: a, b, c to SUP and a to MDS, delivered after its requeue (no error left); pending: d, f's two
      // copies, the status message and the requeue's new entry for a in MDS's queue.
      const month = await counted.throughput({ kind: 'operator' }, { ...period, granularity: 'month' });
      const total = sumOf(month);
      expect(total).toEqual({ in: 5, out: 4, errors: 0, pending: 5 });
      // Several channels at once (spec 5.11.1, "across multiple and individual message channels"): their sum, each counted once.
      const of = async (channels: string[]) => sumOf(await counted.throughput({ kind: 'operator' }, { ...period, granularity: 'month', channels }));
      expect(await of(['IF-021'])).toEqual({ in: 4, out: 4, errors: 0, pending: 2 });
      expect(await of(['IF-022'])).toEqual({ in: 1, out: 0, errors: 0, pending: 2 });
      expect(await of(['IF-021', 'IF-022'])).toEqual({ in: 5, out: 4, errors: 0, pending: 4 });
      expect(await of(['IF-022', 'IF-021', 'IF-022'])).toEqual(await of(['IF-021', 'IF-022']));
      expect(await of(['IF-022', 'STATUS'])).toEqual({ in: 1, out: 0, errors: 0, pending: 3 });
      const [lat] = await counted.latency({ kind: 'operator' }, { fromMs: T0, toMs: T0 + 60_000, granularity: 'day' });
      // e2e: a, b, c to SUP (1012, 1002, 992) and a to MDS (its call after the requeue, now); DIP processing:
      // a to SUP and MDS (100, 200), b and c (990, 980). Nearest rank: p50 of 4 is the 2nd.
      expect(lat).toMatchObject({ endToEnd: { count: 4, minMs: 992, p50Ms: 1002 }, dipProcessing: { count: 4, minMs: 100, maxMs: 990, avgMs: 567.5, p50Ms: 200, p90Ms: 990, p99Ms: 990 } });
    });

    it('answers a period holding more messages than a report reads one by one, which a listing report refuses, saying which reports count any period', async () => {
      await fill();
      const f: ReportFilter = { ...period, granularity: 'day' };
      const small = reports(true, 2);
      expect(await small.throughput({ kind: 'operator' }, f)).toEqual(await reports(false).throughput({ kind: 'operator' }, f));
      expect(await small.latency({ kind: 'participant', dipId: SUP }, f)).toEqual(await reports(false).latency({ kind: 'participant', dipId: SUP }, f));
      await expect(small.senderAudit({ kind: 'operator' }, f)).rejects.toThrow('holds more than 2 messages, the most one report counts: ask for it in parts (a shorter from/to, or one channel, sender or recipient) (throughput and latency are counted over any period; a sender audit, trace or process report reads its messages one by one)');
      await expect(reports(false, 2).throughput({ kind: 'operator' }, f)).rejects.toThrow('holds more than 2 messages');
    });

    it('takes nearest-rank percentiles over many values, repeated ones among them, as the fold did', async () => {
      const { log, archive } = ctx.backend;
      const many = Array.from({ length: 37 }, (_, i) => message([SUP], { receivedAt: T0 + i }));
      await log.append(batch(many));
      // Each copy delivered by a call of its own, after a delay that repeats (i mod 7) and grows.
      for (const [i, m] of many.entries()) {
        await archive.recordAttempt({ attemptId: attemptId(), queue: sup, firstSeq: i + 1, lastSeq: i + 1, url: 'https://sup.example/dip', startedAt: m.receivedAt + 10 * (i % 7) + i, latencyMs: (i * 13) % 5, status: 200, verdict: 'delivered', error: null });
      }
      await log.settle(sup, { upTo: many.length });
      for (const granularity of GRANULARITIES) {
        const f: ReportFilter = { ...period, granularity };
        expect(await reports(true).latency({ kind: 'operator' }, f)).toEqual(await reports(false).latency({ kind: 'operator' }, f));
      }
      const [row] = await reports(true).latency({ kind: 'operator' }, { ...period, granularity: 'month' });
      expect(row!.endToEnd.count).toBe(37);
    });

    // An operator's review: a copy dead-lettered before any call (stale) and requeued days later counted its
    // wait for the operator as the DIP's processing time (553,239 ms). DIP processing is receipt to the first
    // call made before any dead-lettering; a copy first called only after its requeue is left out of it.
    it("leaves out of DIP processing a copy first called only after its requeue (the operator's time, not the DIP's)", async () => {
      const { log, archive, deadLetters } = ctx.backend;
      const x = message([MDS], { receivedAt: T0 });
      await log.append(batch([x]));
      const [entry] = await log.readQueue(mds, 0, 1, 1 << 20);
      await log.settle(mds, { upTo: 1, deadLetters: [{ seq: 1, messageId: entry!.messageId, reason: 'stale', status: null, detail: 'older than the limit' }] });
      expect(await deadLetters.requeueDeadLetters(mds, [1])).toEqual([1]);
      await archive.recordAttempt({ attemptId: attemptId(), queue: mds, firstSeq: 1, lastSeq: 1, url: 'https://mds.example/dip', startedAt: Date.now() + 1000, latencyMs: 9, status: 200, verdict: 'delivered', error: null });
      const f: ReportFilter = { fromMs: T0 - 1, toMs: T0 + 60_000, granularity: 'day' };
      for (const counted of [true, false]) {
        const [row] = await reports(counted).latency({ kind: 'operator' }, f);
        expect(row!.dipProcessing.count, `counted ${counted}`).toBe(0);
      }
    });

    it('counts nothing in a period without messages', async () => {
      await fill();
      const f: ReportFilter = { fromMs: T0 - 7_200_000, toMs: T0 - 3_600_000, granularity: 'hour' };
      expect(await ctx.backend.reportCounts.counts({ ...f, dipId: DIP })).toEqual([]);
      expect(await ctx.backend.reportCounts.latency({ ...f, dipId: DIP })).toEqual([]);
    });
  });
}
