import type { Clock } from '../ports/clock.js';

/** A change of the wall clock against the monotonic one larger than this between two readings is a step, not drift (NTP slews ppm). */
export const STEP_TOLERANCE_MS = 1000;
/**
 * How often the clocks are read (Delivery's timer): a stamp made between the last reading and a step forward
 * of less than this may be taken as after it, so the boundary is this tight.
 */
export const STEP_READ_MS = 1000;
/** Steps remembered: a message accepted before more steps than this is not corrected for the oldest. */
const STEPS_KEPT = 16;

interface Step {
  /** Wall-clock times stamped before this (on the wall clock as it was before the step) predate the step. */
  boundary: number;
  deltaMs: number;
}

/**
 * The wall clock's steps (NTP stepping it, an operator's `date -s`) this process has seen, read against the
 * monotonic clock: at each reading, a change of their difference beyond STEP_TOLERANCE_MS is a step.
 *
 * For a duration from a wall-clock stamp made elsewhere or earlier (a message's acceptance, stamped by
 * whichever node or process accepted it) to now: the steps seen since the stamp are taken out, so a clock
 * stepped 10 min forward does not make every message accepted before it 10 min late (false
 * `delivery-latency` alarms), nor a step back make them early (read()'s comment says where a step's
 * boundary lies). A stamp from a node whose clock was right while this one's was stepped wrong is taken as
 * this node's, so its lateness may be underestimated by the step, never overstated. Samples are never
 * discarded: a latency below zero (a stamp ahead of this clock) is simply not late.
 */
export class WallClockSteps {
  private lastWall: number;
  private lastMonotonic: number;
  private readonly steps: Step[] = [];

  constructor(
    private readonly wall: Pick<Clock, 'now'>,
    private readonly monotonic: Pick<Clock, 'now'>,
  ) {
    this.lastWall = wall.now();
    this.lastMonotonic = monotonic.now();
  }

  /** Reads both clocks; called at every use and every STEP_READ_MS (the closer the readings, the tighter a step's boundary). */
  read(): void {
    const wall = this.wall.now();
    const monotonic = this.monotonic.now();
    const passed = monotonic - this.lastMonotonic;
    const delta = wall - this.lastWall - passed;
    if (Math.abs(delta) > STEP_TOLERANCE_MS) {
      // Stamps made before the step are at most lastWall + passed (the old clock's time at this reading);
      // those made after it at least lastWall + delta. Forward, the two do not meet, and what lies between
      // (another node's stamp, its clock right where this one's was behind) is taken as after the step;
      // back, they overlap, and what is in both is taken as after it: underestimated, never made late.
      // The wall clock reads whole milliseconds, the monotonic one fractions: lastWall is up to 1 ms behind
      // the wall time it was read at, so a stamp made in the last millisecond before a step forward is up
      // to lastWall + passed + 1 (without the slack, taken as after the step: a false delivery-latency alarm).
      this.steps.push({ boundary: this.lastWall + Math.min(passed + 1, delta), deltaMs: delta });
      if (this.steps.length > STEPS_KEPT) this.steps.shift();
    }
    this.lastWall = wall;
    this.lastMonotonic = monotonic;
  }

  /** How long from the wall-clock stamp `stampedAt` to the wall-clock time `now`, without the steps seen since the stamp. */
  since(stampedAt: number, now: number): number {
    this.read();
    let ms = now - stampedAt;
    for (const s of this.steps) if (stampedAt < s.boundary) ms -= s.deltaMs;
    return ms;
  }

  /** Time that never steps, for durations measured within this process (a window since the last late delivery). */
  elapsed(): number {
    return this.monotonic.now();
  }
}
