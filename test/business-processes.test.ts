import { describe, expect, it } from 'vitest';
import { BUSINESS_FLOWS } from '../src/catalogue/business-flows.js';
import { PROCESSES, trackProcess } from '../src/pipeline/reports.js';
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
