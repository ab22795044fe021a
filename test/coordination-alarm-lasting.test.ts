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
  it('not within lastingMs of the first failed probe, then raised with that as its start; gone after a lease length of ok', async () => {
    const clock = new FakeClock(1_000_000);
    let health: CoordinationHealth = { state: 'unavailable', since: clock.now(), reason: 'NATS JetStream (dip_leases): no quorum' };
    const alarms = coordinationAlarms(() => health, clock, 'node-a', 12_000);
    expect(await alarms()).toEqual([]);
    await clock.advance(11_999);
    expect(await alarms()).toEqual([]);
    await clock.advance(1);
    expect(await alarms()).toEqual([expect.objectContaining({ key: 'coordination:node-a', rule: 'coordination', since: 1_000_000 })]);
    health = { state: 'ok' };
    expect(await alarms()).toHaveLength(1);
    await clock.advance(6_000);
    expect(await alarms()).toEqual([]);
  });
});

/**
 * A JetStream that takes a write now and then while most fail (reviewF): each probe that lands reset the
 * outage's start, so a hold of two lease lengths was never reached and the alarm never raised while
 * delivery mostly stood still. An outage ends only once the probe has been taken for a lease length; once
 * raised, the alarm stays until then rather than flapping with each probe.
 */
describe('the coordination alarm on a flapping JetStream', () => {
  it('counts the outage from its first failed probe through short recoveries, and resolves after a lease length of ok', async () => {
    const clock = new FakeClock(0);
    let health: CoordinationHealth = { state: 'ok' };
    const alarms = coordinationAlarms(() => health, clock, 'node-a', 12_000);
    const flap = async () => {
      health = { state: 'unavailable', since: clock.now(), reason: 'NATS JetStream (dip_leases): timeout' };
      expect(await alarms()).toEqual([]);
      await clock.advance(8_000);
      health = { state: 'ok' };
      await alarms();
      await clock.advance(2_000);
    };
    await flap();
    await flap();
    // 20 s in, unavailable again since 20 s: the outage began at 0.
    health = { state: 'unavailable', since: clock.now(), reason: 'NATS JetStream (dip_leases): timeout' };
    expect(await alarms()).toEqual([expect.objectContaining({ key: 'coordination:node-a', since: 0 })]);
    // A probe taken: still raised until a lease length (6 s) of ok.
    health = { state: 'ok' };
    expect(await alarms()).toHaveLength(1);
    await clock.advance(5_999);
    expect(await alarms()).toHaveLength(1);
    await clock.advance(1);
    expect(await alarms()).toEqual([]);
  });
});
