import type { Clock } from '../ports/clock.js';

/** The real clock. Its timers are unref'd: a pending retry or sweep never keeps the process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return () => clearInterval(t);
  },
};

/**
 * The system clock's timers with a time that never steps: the epoch time this process started, counted on
 * by the monotonic clock. For how long something has run or been silent, where a wall-clock step (NTP
 * correcting, an operator's `date -s`) must not count as time passed, or as time taken back.
 */
export const monotonicClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  after: (ms, fn) => systemClock.after(ms, fn),
  every: (ms, fn) => systemClock.every(ms, fn),
};
