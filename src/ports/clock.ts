/**
 * Time as a dependency. Delivery, retention, rate limits, expiry and sweeps read the time and set timers
 * only through this, so tests drive them with a fake clock instead of sleeping and racing a busy machine.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms`; the returned function cancels it. Timers never keep the process alive. */
  after(ms: number, fn: () => void): Cancel;
  /** Runs `fn` every `ms` until cancelled. */
  every(ms: number, fn: () => void): Cancel;
}

export type Cancel = () => void;
