/** How long a long fold runs before it gives the event loop a turn. */
export const SLICE_MS = 10;

/**
 * Cuts a long fold on the event loop into slices of about SLICE_MS: between two, the loop takes a turn
 * (setImmediate), so submissions, group commits, deliveries and health answers go on while a report of up
 * to 200,000 messages is folded and written. The main thread is the writer of the message road: one fold
 * held whole held every participant's submissions for its length (seconds). A fold cut so keeps its order
 * and answer; only its time is spread.
 */
export class Slices {
  private since = performance.now();
  private calls = 0;

  /** True once this slice has run its time (the clock is read every 16th call). */
  due(): boolean {
    this.calls += 1;
    return (this.calls & 15) === 0 && performance.now() - this.since >= SLICE_MS;
  }

  /** The event loop's turn; the next slice starts after it. */
  async pause(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.since = performance.now();
  }

  /** Gives the loop a turn when the slice is due. */
  async step(): Promise<void> {
    if (this.due()) await this.pause();
  }

  /** `items.map(fn)`, in slices. */
  async map<T, U>(items: readonly T[], fn: (item: T, i: number) => U): Promise<U[]> {
    const out = new Array<U>(items.length);
    for (let i = 0; i < items.length; i++) {
      out[i] = fn(items[i]!, i);
      if (this.due()) await this.pause();
    }
    return out;
  }

  /**
   * A stable sort in slices (a bottom-up merge sort): the order Array.prototype.sort (stable) gives with
   * the same comparator, which sorted 200,000 rows in one go.
   */
  async sort<T>(items: readonly T[], compare: (a: T, b: T) => number): Promise<T[]> {
    const n = items.length;
    let from = items.slice();
    let to = new Array<T>(n);
    for (let width = 1; width < n; width *= 2) {
      for (let lo = 0; lo < n; lo += 2 * width) {
        const mid = Math.min(lo + width, n);
        const hi = Math.min(lo + 2 * width, n);
        let i = lo;
        let j = mid;
        let k = lo;
        // The left run's element first unless the right's sorts strictly before it: stable.
        while (i < mid && j < hi) to[k++] = compare(from[j]!, from[i]!) < 0 ? from[j++]! : from[i++]!;
        while (i < mid) to[k++] = from[i++]!;
        while (j < hi) to[k++] = from[j++]!;
        // A merge is at most n steps: the clock is read after each.
        if (performance.now() - this.since >= SLICE_MS) await this.pause();
      }
      [from, to] = [to, from];
    }
    return from;
  }

  /** `items.filter(keep)`, in slices. */
  async filter<T>(items: readonly T[], keep: (item: T) => boolean): Promise<T[]> {
    const out: T[] = [];
    for (const x of items) {
      if (keep(x)) out.push(x);
      if (this.due()) await this.pause();
    }
    return out;
  }
}
