import { describe, expect, it } from 'vitest';
import { ActivityLogDamage } from '../src/pipeline/activity-damage.js';
import type { ActivityLoss } from '../src/ports/activity-log.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';

/**
 * An acknowledgement covers what health showed when it was asked, nothing found while its write is under
 * way (reviewF: the acknowledged list was the live one, so damage met meanwhile was dropped from health and
 * the alarm unacknowledged); and the start's read of the store keeps what was met before it.
 */
describe('ActivityLogDamage: an acknowledgement covers what was shown, not what is found meanwhile', () => {
  const corrupt = Object.assign(new Error('database disk image is malformed'), { code: 'SQLITE_CORRUPT' });
  const journal = { append: async () => 0 };

  it('keeps damage met while the acknowledgement is written', async () => {
    const clock = new FakeClock(1_000);
    const stored: ActivityLoss[] = [{ at: 500, lost: 'a WAL short of committed records' }];
    let release!: () => void;
    const writing = new Promise<void>((resolve) => (release = resolve));
    const acknowledged: ActivityLoss[][] = [];
    const store = {
      unacknowledgedLosses: async () => stored,
      acknowledgeLosses: async (losses: ActivityLoss[]) => {
        acknowledged.push([...losses]);
        await writing;
      },
      keepLoss: async () => {},
    };
    const damage = new ActivityLogDamage(store, { clock, logger: quietLogger, journal });
    await damage.load();
    const acknowledging = damage.acknowledge('ops', clock.now());
    damage.met(corrupt);
    release();
    expect((await acknowledging).map((l) => l.at)).toEqual([500]);
    expect(acknowledged).toEqual([[{ at: 500, lost: 'a WAL short of committed records' }]]);
    expect(damage.current()?.found.map((l) => l.at)).toEqual([1_000]);
  });

  it("keeps damage met before the start's read of the store", async () => {
    const clock = new FakeClock(2_000);
    const store = { unacknowledgedLosses: async () => [{ at: 100, lost: 'the log replaced' }], acknowledgeLosses: async () => {}, keepLoss: async () => {} };
    const damage = new ActivityLogDamage(store, { clock, logger: quietLogger, journal });
    damage.met(corrupt);
    await damage.load();
    expect(damage.current()?.found.map((l) => l.at)).toEqual([100, 2_000]);
  });
});
