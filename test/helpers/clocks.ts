import type { Cancel, Clock } from '../../src/ports/clock.js';

interface Timer {
  due: number;
  fn: () => void;
  every: number | null;
}

/**
 * A clock that moves only when the test says so: `advance(ms)` runs every timer that falls due, in
 * order, with `now()` at each one's due time. For unit tests of time-driven logic (the queue worker,
 * retention, rate limits): nothing sleeps, nothing races a busy machine.
 */
export class FakeClock implements Clock {
  private t: number;
  private readonly timers = new Set<Timer>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Cancel {
    const timer: Timer = { due: this.t + Math.max(0, ms), fn, every: null };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  }

  every(ms: number, fn: () => void): Cancel {
    const timer: Timer = { due: this.t + ms, fn, every: ms };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  }

  /** Timers waiting, soonest first (what the code under test has scheduled). */
  pending(): number[] {
    return [...this.timers].map((t) => t.due - this.t).sort((a, b) => a - b);
  }

  /** Moves time forward, running due timers (and the promise jobs they start) in order. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const next = [...this.timers].filter((t) => t.due <= end).sort((a, b) => a.due - b.due)[0];
      if (!next) break;
      this.t = next.due;
      if (next.every === null) this.timers.delete(next);
      else next.due += next.every;
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

/** Lets promise chains and I/O callbacks started so far run to their next wait. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/**
 * Real time that a test can jump forward: `now()` is the wall clock plus the jumps so far, and timers are
 * real ones that a jump brings forward. For whole-DIP tests over real sockets that need hours or days to
 * pass (staleness, retention) without waiting for them. `ShiftableClock.held()` starts one whose time moves
 * only by jumps, for tests that read waits off answers (Retry-After), which real time on a loaded machine
 * would otherwise shorten; its timers still run in real time.
 */
export class ShiftableClock implements Clock {
  private offset = 0;
  private readonly timers = new Map<Timer, NodeJS.Timeout>();

  /** `base` is the time before jumps: the wall clock unless `held()`. */
  constructor(private readonly base: () => number = Date.now) {}

  /** A clock that stands still between jumps (a periodic timer then comes round every `every` ms of real time). */
  static held(start = Date.now()): ShiftableClock {
    return new ShiftableClock(() => start);
  }

  now(): number {
    return this.base() + this.offset;
  }

  after(ms: number, fn: () => void): Cancel {
    const timer: Timer = { due: this.now() + ms, fn, every: null };
    this.arm(timer);
    return () => this.disarm(timer);
  }

  every(ms: number, fn: () => void): Cancel {
    const timer: Timer = { due: this.now() + ms, fn, every: ms };
    this.arm(timer);
    return () => this.disarm(timer);
  }

  /** Jumps forward: timers falling due in the jump fire now (each periodic one once). */
  jump(ms: number): void {
    this.offset += ms;
    for (const timer of [...this.timers.keys()]) {
      this.disarm(timer);
      this.arm(timer);
    }
  }

  private arm(timer: Timer): void {
    const handle = setTimeout(() => {
      this.timers.delete(timer);
      if (timer.every !== null) {
        // Drift-free on a running clock; on a held one `due + every` would move further ahead at each round.
        timer.due = this.base === Date.now ? Math.max(timer.due + timer.every, this.now()) : this.now() + timer.every;
        this.arm(timer);
      }
      timer.fn();
    }, Math.max(0, timer.due - this.now()));
    handle.unref();
    this.timers.set(timer, handle);
  }

  private disarm(timer: Timer): void {
    const handle = this.timers.get(timer);
    if (handle) clearTimeout(handle);
    this.timers.delete(timer);
  }
}

/**
 * A node's wall clock over its elapsed time (a FakeClock the test advances): `now()` is elapsed time plus
 * the steps so far, and timers run on elapsed time, as a real wall clock's do (setTimeout is not moved by
 * NTP or `date -s`). `step(ms)`, either way, moves this clock alone: what a node sees when its wall clock
 * is stepped while its monotonic clock runs on.
 */
export class SteppedClock implements Clock {
  private offset = 0;

  constructor(private readonly elapsed: Clock) {}

  now(): number {
    return this.elapsed.now() + this.offset;
  }

  after(ms: number, fn: () => void): Cancel {
    return this.elapsed.after(ms, fn);
  }

  every(ms: number, fn: () => void): Cancel {
    return this.elapsed.every(ms, fn);
  }

  step(ms: number): void {
    this.offset += ms;
  }
}
