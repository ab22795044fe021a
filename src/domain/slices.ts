/** How long a long fold runs before it gives the event loop a turn. */
export const SLICE_MS = 10;

/**
 * The process's one slice budget, shared by every Slices running at once. Node runs every setImmediate
 * queued in one check phase: n folds each keeping its own 10 ms and each yielding with its own immediate
 * held one loop turn n x 10 ms (4 folds and a few 200,000-row answers being written: 60 to 100+ ms a
 * turn). So the folds that pause wait in one queue, and each loop turn resumes one of them (the first
 * waiting, round robin), which runs one slice: the loop's longest turn stays about one slice however many
 * folds and answers are running.
 */
export class SliceBudget {
  /** When the running slice began. */
  since: number;
  private readonly waiting: Array<() => void> = [];
  private turnAsked = false;

  constructor(readonly now: () => number = () => performance.now()) {
    this.since = now();
  }

  /** Set once the running slice is found spent, until the next slice starts: a fold then yields at once (no clock read). */
  over = false;

  /** True once the running slice has spent the budget. */
  spent(): boolean {
    if (!this.over && this.now() - this.since >= SLICE_MS) this.over = true;
    return this.over;
  }

  /** Waits for a loop turn of this fold's own: one fold resumes a turn, in the order they paused. */
  pause(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.waiting.push(resolve);
      this.askTurn();
    });
  }

  private askTurn(): void {
    if (this.turnAsked || this.waiting.length === 0) return;
    this.turnAsked = true;
    setImmediate(() => {
      this.turnAsked = false;
      const next = this.waiting.shift();
      // The next turn is asked first: the one resumed (its slice runs in this turn's microtasks) pauses behind the others.
      this.askTurn();
      this.since = this.now();
      this.over = false;
      next?.();
    });
  }
}

/** The budget every Slices shares unless given one (a test gives its own, on its own clock). */
export const loopBudget = new SliceBudget();

/**
 * Cuts a long fold on the event loop into slices of about SLICE_MS: between two, the loop takes a turn
 * (setImmediate), so submissions, group commits, deliveries and health answers go on while a report of up
 * to 200,000 messages is folded and written. The main thread is the writer of the message road: one fold
 * held whole held every participant's submissions for its length (seconds). A fold cut so keeps its order
 * and answer; only its time is spread. The budget is the process's (SliceBudget): folds running at once
 * take turns, one slice a loop turn, rather than each taking a slice every turn.
 */
export class Slices {
  private calls = 0;

  constructor(private readonly budget: SliceBudget = loopBudget) {}

  /** True once this slice has run its time (the clock is read every 16th call). */
  due(): boolean {
    this.calls += 1;
    return this.budget.over || ((this.calls & 15) === 0 && this.budget.spent());
  }

  /** The event loop's turn; the next slice starts after it (when this fold's turn comes). */
  async pause(): Promise<void> {
    await this.budget.pause();
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
        if (this.budget.spent()) await this.pause();
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
