import { describe, expect, it } from 'vitest';
import { coordinationAlarms } from '../src/pipeline/alarm-sources.js';
import type { CoordinationHealth } from '../src/ports/backend.js';
import { FakeClock } from './helpers/clocks.js';

/**
 * The coordination probe is a write to the leases bucket (natsfix3): a lost quorum stays `unavailable`
 * for as long as it lasts. So does a JetStream leader election after one NATS server of three is lost
 * (5-10 s without writes, on every node), which raised and resolved the alarm on every node at each
 * rolling restart of NATS. Health says what is true at once; the alarm waits until the outage has lasted
 * beyond what an election takes.
 */
describe('the coordination alarm is raised once the outage has lasted', () => {
  it('not within lastingMs of the first failed probe, then raised with that as its start; gone once ok', async () => {
    const clock = new FakeClock(1_000_000);
    let health: CoordinationHealth = { state: 'unavailable', since: clock.now(), reason: 'NATS JetStream (dip_leases): no quorum' };
    const alarms = coordinationAlarms(() => health, clock, 'node-a', 12_000);
    expect(await alarms()).toEqual([]);
    await clock.advance(11_999);
    expect(await alarms()).toEqual([]);
    await clock.advance(1);
    expect(await alarms()).toEqual([expect.objectContaining({ key: 'coordination:node-a', rule: 'coordination', since: 1_000_000 })]);
    health = { state: 'ok' };
    expect(await alarms()).toEqual([]);
  });
});
