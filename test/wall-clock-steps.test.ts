/**
 * WallClockSteps (src/pipeline/wall-clock-steps.ts): a duration from a wall-clock stamp to now, without the
 * wall clock's steps seen since the stamp, read against a clock that never steps. Two fake clocks: the
 * wall one the test steps, the monotonic one only advancing.
 */
import { describe, expect, it } from 'vitest';
import { WallClockSteps } from '../src/pipeline/wall-clock-steps.js';
import { FakeClock } from './helpers/clocks.js';

describe('wall-clock steps', () => {
  const setUp = () => {
    const wall = new FakeClock(Date.UTC(2026, 5, 1, 12));
    const mono = new FakeClock(1_000_000);
    const both = async (ms: number): Promise<void> => {
      await wall.advance(ms);
      await mono.advance(ms);
    };
    return { wall, mono, both, steps: new WallClockSteps(wall, mono) };
  };

  it('takes a step forward out of what was stamped before it, not of what was stamped after', async () => {
    const { wall, both, steps } = setUp();
    const before = wall.now();
    await both(1000);
    steps.read();
    await wall.advance(600_000); // NTP steps it 10 min forward
    const after = wall.now();
    await both(5000);
    expect(steps.since(before, wall.now())).toBe(6000);
    expect(steps.since(after, wall.now())).toBe(5000);
    // Slewing (under a second between readings) is time, not a step.
    await both(1000);
    await wall.advance(300);
    expect(steps.since(after, wall.now())).toBe(6300);
  });

  it('takes a step back out of what was stamped well before it; a stamp within the step of it is taken as after (never made late)', async () => {
    const { wall, both, steps } = setUp();
    const longBefore = wall.now();
    await both(120_000);
    steps.read();
    const justBefore = wall.now() - 10_000;
    await wall.advance(-60_000); // stepped a minute back
    await both(2000);
    expect(steps.since(longBefore, wall.now())).toBe(122_000);
    // Stamped 10 s before the step (12 s ago): taken as after it, so -48 s, not late; underestimated, never made late.
    expect(steps.since(justBefore, wall.now())).toBe(12_000 - 60_000);
  });
  it('takes a stamp made in the last millisecond before a step forward as before it (a whole-ms wall clock read against a fractional monotonic one)', async () => {
    // The wall clock reads whole milliseconds (Date.now), the monotonic one fractions (performance.now):
    // read at true wall time W + 0.5 (W), then 500.6 ms later at W + 501.1 (W + 501), when a message is
    // stamped and the clock stepped 10 min forward before the next reading. The old clock's time at that
    // reading is W + 500.6 by the monotonic clock, yet the stamp says W + 501.
    const wall = new FakeClock(Date.UTC(2026, 5, 1, 12));
    const mono = new FakeClock(1_000_000.25);
    const steps = new WallClockSteps(wall, mono);
    await mono.advance(500.6);
    await wall.advance(501);
    const stamp = wall.now();
    await wall.advance(600_000);
    steps.read();
    await mono.advance(1000);
    await wall.advance(1000);
    // About a second since the stamp, not 10 min (a false delivery-latency alarm).
    expect(steps.since(stamp, wall.now())).toBeCloseTo(999.6, 6);
  });
});
