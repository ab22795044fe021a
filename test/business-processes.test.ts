import { describe, expect, it } from 'vitest';
import { BUSINESS_FLOWS } from '../src/catalogue/business-flows.js';
import { linkProcesses, PROCESSES, trackProcess } from '../src/pipeline/reports.js';
import type { TracedDelivery, TracedMessage } from '../src/ports/traces.js';

const T0 = Date.parse('2026-12-01T09:00:00Z');
const MIN = 60_000;

const delivery = (recipient: string, state: TracedDelivery['state'] = 'delivered'): TracedDelivery => ({
  recipient, seq: 1, state, deliveredAt: state === 'delivered' ? T0 : null, firstAttemptAt: T0, attempts: [],
  deadLetter: state === 'dead' ? { reason: 'stale', status: null, detail: 'undelivered for 14 days', at: T0 } : null,
});

let n = 0;
const message = (channel: string, eventCode: string, atMin: number, deliveries: TracedDelivery[] = [delivery('1000000001')]): TracedMessage => ({
  transactionId: `T-${channel}-${++n}`, channel, eventCode, sender: '7000000001', senderRole: 'REGS', senderUniqueReference: null,
  correlationId: 'COS-1', receivedAt: T0 + atMin * MIN, replayOf: null, deliveries,
});

describe('business processes: one table of flows, one tracker', () => {
  it('tracks the flows the catalogue table marks, with their stages in the table order', () => {
    expect(PROCESSES.map((p) => p.id)).toEqual(BUSINESS_FLOWS.filter((f) => f.tracked).map((f) => f.id));
    expect(PROCESSES.find((p) => p.id === 'change-of-supplier')?.stages).toEqual(['IF-001', 'IF-002', 'IF-036']);
    expect(PROCESSES.find((p) => p.id === 'service-appointment')?.stages).toEqual(['IF-031', 'IF-032', 'IF-033', 'IF-034', 'IF-035', 'IF-036', 'IF-037']);
  });

  it('a change of supplier is in progress, then stuck when nothing follows for the threshold, then complete at IF-036', () => {
    const started = [message('IF-002', '[GainMPANInfo]', 5), message('IF-001', '[ChangeOfSupplier]', 0)];
    const at = (min: number, msgs = started) => trackProcess('COS-1', msgs, T0 + min * MIN, 60 * MIN);
    const early = at(30);
    expect(early).toMatchObject({ flow: 'change-of-supplier', process: 'Change of supplier', state: 'in-progress', current: 'IF-002', reason: null, startedAt: T0, lastAt: T0 + 5 * MIN });
    // Stages in the flow's order, whatever order they come in.
    expect(early.stages.map((s) => s.channel)).toEqual(['IF-001', 'IF-002']);

    const late = at(66);
    expect(late.state).toBe('stuck');
    expect(late.reason).toBe('nothing since 2026-12-01T09:05:00.000Z (61 min)');

    const done = at(600, [...started, message('IF-036', '[DSAppActive]', 20)]);
    expect(done).toMatchObject({ state: 'complete', current: 'IF-036', reason: null });
  });

  it('a process with a dead-lettered message is stuck at once, naming it', () => {
    const dead = message('IF-002', '[GainMPANInfo]', 1, [delivery('1000000002', 'dead')]);
    const p = trackProcess('COS-1', [message('IF-001', '[ChangeOfSupplier]', 0), dead], T0 + 2 * MIN, 60 * MIN);
    expect(p.state).toBe('stuck');
    expect(p.reason).toBe(`IF-002 ${dead.transactionId} is dead-lettered`);
    expect(p.stages[1]!.deliveries).toEqual([{ recipient: '1000000002', state: 'dead' }]);
  });

  it('an appointment ends at a rejection (IF-035 [DSAppRejected]) but not at an acceptance', () => {
    const steps = (last: string) => ['IF-031', 'IF-032', 'IF-033', 'IF-034'].map((c, i) => message(c, '[DSApp]', i)).concat(message('IF-035', last, 4));
    expect(trackProcess('CI-1', steps('[DSAppRejected]'), T0 + 10 * MIN, 60 * MIN)).toMatchObject({ flow: 'service-appointment', state: 'complete', current: 'IF-035' });
    expect(trackProcess('CI-1', steps('[DSAppAccepted]'), T0 + 10 * MIN, 60 * MIN)).toMatchObject({ flow: 'service-appointment', state: 'in-progress' });
  });

  it('messages on channels no tracked flow holds are an unknown process', () => {
    expect(trackProcess('X-1', [message('IF-021', '[ActivePower]', 0)], T0, 60 * MIN)).toMatchObject({ flow: null, process: 'unknown', state: 'in-progress' });
  });
});

const about = (mpan: string | null, channel: string, eventCode: string, atMin: number, deliveries?: TracedDelivery[]): TracedMessage => ({ ...message(channel, eventCode, atMin, deliveries), correlationId: null, mpan });

describe('business processes linked by MPAN (spec 5.11.3)', () => {
  const mpanLinked = () => PROCESSES.filter((p) => p.linkage === 'mpan');

  it('the flow table says how each tracked flow is linked: the correlation-ID ones as before, de-acquisition and data collection by MPAN', () => {
    expect(PROCESSES.filter((p) => p.linkage === 'correlation').map((p) => p.id)).toEqual(['change-of-supplier', 'service-appointment']);
    expect(mpanLinked().map((p) => [p.id, p.stages, p.ends])).toEqual([
      ['de-acquisition', ['IF-001', 'IF-037', 'IF-041'], ['IF-037']],
      ['data-collection', ['IF-036', 'IF-041', 'IF-021', 'IF-013', 'IF-014'], ['IF-021']],
    ]);
    // A correlation ID is never matched against an MPAN-linked flow: IF-021 under one is still no tracked process.
    expect(trackProcess('X-1', [message('IF-021', '[ActivePower]', 0)], T0, 60 * MIN).flow).toBeNull();
  });

  it("an instance is one MPAN's messages on the flow from its first step to the next first step; what comes before a first step is no instance", async () => {
    const def = mpanLinked().find((p) => p.id === 'de-acquisition')!;
    const before = about('1200000000001', 'IF-037', '[DSDeApp]', -10);
    const msgs = [
      before,
      about('1200000000001', 'IF-001', '[ChangeOfSupplier]', 0),
      about('1200000000002', 'IF-001', '[ChangeOfSupplier]', 1),
      about('1200000000001', 'IF-041', '[ReadingCOS]', 6),
      about('1200000000001', 'IF-037', '[DSDeApp]', 5),
      about(null, 'IF-037', '[DSDeApp]', 7),
      about('1200000000001', 'IF-001', '[ChangeOfSupplier]', 100),
      // Not a step of the flow: not part of it.
      about('1200000000001', 'IF-021', '[ActivePower]', 8),
    ].sort((a, b) => a.receivedAt - b.receivedAt);
    const rows = await linkProcesses(def, msgs, 'mpan', T0 + 130 * MIN, 60 * MIN);
    expect(rows.map((r) => ['mpan' in r ? r.mpan : null, r.flow, r.process, r.stages.map((s) => s.channel), r.state, r.current])).toEqual([
      ['1200000000001', 'de-acquisition', 'De-acquisition', ['IF-001', 'IF-037', 'IF-041'], 'complete', 'IF-041'],
      ['1200000000002', 'de-acquisition', 'De-acquisition', ['IF-001'], 'stuck', 'IF-001'],
      ['1200000000001', 'de-acquisition', 'De-acquisition', ['IF-001'], 'in-progress', 'IF-001'],
    ]);
    // The same row shape as a correlation-ID process, the MPAN in place of the correlation ID.
    expect(Object.keys(rows[0]!)).toEqual(['mpan', 'flow', 'process', 'startedAt', 'lastAt', 'stages', 'current', 'state', 'reason']);
    expect(rows.flatMap((r) => r.stages.map((s) => s.transactionId))).not.toContain(before.transactionId);
  });

  it("a user's own chain is linked by the key it names and complete at its last channel", async () => {
    const chain = { id: null, name: 'custom', linkage: 'correlationID' as const, stages: ['IF-031', 'IF-032'], ends: ['IF-032'] };
    const rows = await linkProcesses(chain, [message('IF-031', '[DSApp]', 0), message('IF-032', '[DSAppAccepted]', 1)], 'correlationID', T0 + 2 * MIN, 60 * MIN);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ correlationId: 'COS-1', flow: null, process: 'custom', state: 'complete', current: 'IF-032' });
    expect(Object.keys(rows[0]!)[0]).toBe('correlationId');
    const byTx = await linkProcesses({ ...chain, linkage: 'transactionID' }, [message('IF-031', '[DSApp]', 0)], 'transactionID', T0, 60 * MIN);
    expect(byTx.map((r) => [Object.keys(r)[0], r.stages.length, r.state])).toEqual([['transactionId', 1, 'in-progress']]);
  });
});
