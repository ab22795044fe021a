import { describe, expect, it } from 'vitest';
import { certificateAlarms, clockSkewAlarms, storageAlarms } from '../src/pipeline/alarm-sources.js';
import type { BackendHealth, PeerClockOffset } from '../src/ports/backend.js';
import type { ExpiringCertificate } from '../src/security/expiry.js';
import { FakeClock } from './helpers/clocks.js';

// A fault campaign's wrong alarms: each raised by one reading that the next one contradicted.
describe('alarms that one stale reading does not raise', () => {
  it('clock-skew: one late-read roll call (a node just restarted, or resumed after SIGSTOP) raises nothing; an offset that lasts is raised, since it was first found', async () => {
    const clock = new FakeClock();
    let offset: PeerClockOffset | null = null;
    const alarms = clockSkewAlarms(() => offset, clock, 'n1');
    // -1648 ms, read late at the start: gone at the next roll call (the estimate is the largest sample).
    offset = { node: 'n2', offsetMs: -1_648, allowanceMs: 1_000, believed: true };
    expect(await alarms()).toEqual([]);
    await clock.advance(2_000);
    offset = { node: 'n2', offsetMs: -2, allowanceMs: 1_000, believed: true };
    expect(await alarms()).toEqual([]);
    // A real offset: not at its first reading, but once it has lasted.
    offset = { node: 'n2', offsetMs: -3_000, allowanceMs: 1_000, believed: true };
    const foundAt = clock.now();
    expect(await alarms()).toEqual([]);
    await clock.advance(10_000);
    expect(await alarms()).toEqual([expect.objectContaining({ key: 'clock-skew:n1', since: foundAt })]);
  });

  it('storage: one stale failure after the process was frozen raises nothing; an outage that lasts is raised within seconds, since it was first found', async () => {
    const clock = new FakeClock();
    let health: BackendHealth = { state: 'ok' };
    const alarms = storageAlarms(() => health, clock, 'n1');
    // SIGCONT after 45 s: the query under way when frozen timed out; the next probe, a second later, answers.
    health = { state: 'unavailable', reason: 'Query read timeout', code: null };
    expect(await alarms()).toEqual([]);
    await clock.advance(1_000);
    health = { state: 'ok' };
    expect(await alarms()).toEqual([]);
    // PostgreSQL stopped: raised at the first evaluation 3 s on.
    health = { state: 'unavailable', reason: 'Connection terminated unexpectedly', code: null };
    const foundAt = clock.now();
    expect(await alarms()).toEqual([]);
    await clock.advance(3_000);
    expect(await alarms()).toEqual([expect.objectContaining({ key: 'storage:n1', since: foundAt })]);
  });

  it("certificate-expiring: read again when the registry changes (a participant onboarded), not only hourly", async () => {
    const clock = new FakeClock();
    const certs: ExpiringCertificate[] = [];
    const changed: Array<() => void> = [];
    const alarms = certificateAlarms(() => [...certs], clock, 3_600_000, (l) => changed.push(l));
    expect(await alarms()).toEqual([]);
    certs.push({ owner: 'participant F400000001', subject: 'CN=F400000001', serialNumber: '01', fingerprint256: 'AA', notAfter: '2026-01-06T00:00:00.000Z', daysLeft: 5 });
    for (const l of changed) l();
    await clock.advance(10_000);
    expect((await alarms()).map((c) => c.key)).toEqual(['certificate-expiring:participant F400000001:2026-01-06T00:00:00.000Z']);
  });
});
