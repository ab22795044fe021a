import { describe, expect, it } from 'vitest';
import { alarmAction, alarmSeverity } from '../src/pipeline/alarm-actions.js';
import { diskSpaceAlarms, storageAlarms } from '../src/pipeline/alarm-sources.js';
import { FakeClock } from './helpers/clocks.js';

// An operator's review: the low-free-space alarm said "ingest answers 503 … Resolves once the store's probe
// succeeds" while ingest still answered 201 and the probe succeeded all along.
describe('the storage alarm says what holds: low free space apart from a failing store', () => {
  const clock = new FakeClock();

  it('low free space: a warning, messages still accepted, resolves when free space is back above the threshold', async () => {
    const [low] = await diskSpaceAlarms(() => ({ path: '/var/lib/dip', freeBytes: 50 * 1024 * 1024, activityLogBytes: null }), 100, clock, 'node-a')();
    expect(low!.key).toBe('storage-disk:node-a');
    expect(alarmSeverity(low!)).toBe('warning');
    const action = alarmAction(low!, 'operator');
    expect(action).not.toMatch(/ingest answers 503 and/);
    expect(action).not.toMatch(/probe/);
    expect(action).toMatch(/still accepted \(201\)/);
    expect(action).toMatch(/storage\.minFreeDiskMb/);
  });

  it('a failing store: critical, ingest 503, resolves once its probe succeeds', async () => {
    const [failing] = await storageAlarms(() => ({ state: 'fatal', reason: 'disk full' }), clock, 'node-a')();
    expect(alarmSeverity(failing!)).toBe('critical');
    expect(alarmAction(failing!, 'operator')).toMatch(/ingest answers 503.*probe.*succeeds/);
  });
});
