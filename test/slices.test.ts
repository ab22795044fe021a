import { describe, expect, it } from 'vitest';
import { SLICE_MS, SliceBudget, Slices } from '../src/domain/slices.js';

/**
 * Folds running at once share one slice budget: Node runs every setImmediate queued in one check phase,
 * so n folds each keeping its own budget held one loop turn n budgets. On an injected clock (each item
 * costs 0.5 ms), the work done between two turns of a watcher is counted: deterministic.
 */
describe('Slices: one budget for the process', () => {
  it('three folds at once hold a loop turn about one slice, not three, and each finishes in order', async () => {
    let t = 0;
    const budget = new SliceBudget(() => t);
    const ITEM_MS = 0.5;
    let longest = 0;
    let last = t;
    let running = true;
    const watch = () => {
      longest = Math.max(longest, t - last);
      last = t;
      if (running) setImmediate(watch);
    };
    setImmediate(watch);
    const fold = (n: number) =>
      new Slices(budget).map(
        Array.from({ length: n }, (_, i) => i),
        (i) => {
          t += ITEM_MS;
          return i * 2;
        },
      );
    const sorted = new Slices(budget).sort(Array.from({ length: 300 }, (_, i) => 300 - i), (a, b) => {
      t += 0.01;
      return a - b;
    });
    const [a, b, c] = await Promise.all([fold(400), fold(400), sorted]);
    running = false;
    expect(a).toEqual(Array.from({ length: 400 }, (_, i) => i * 2));
    expect(b).toEqual(a);
    expect(c).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    // One slice: SLICE_MS, overshot by at most 16 items (the clock is read every 16th) or one merge; three were 3 x that.
    expect(longest).toBeGreaterThanOrEqual(SLICE_MS);
    expect(longest).toBeLessThanOrEqual(SLICE_MS + 16 * ITEM_MS + 300 * 0.01);
  });
});
