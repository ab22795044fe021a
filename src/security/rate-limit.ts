/**
 * Fair use: a token bucket per caller (the API key's participant, else the TLS client certificate).
 * Each bucket holds up to `burst` tokens and refills at `ratePerSecond`; a request takes one token or
 * is refused with the time until one is available. Buckets that have refilled completely are
 * indistinguishable from new ones, so they are dropped: memory follows the number of active callers.
 */
export interface RateLimitSettings {
  /** Sustained requests per second per caller; 0 turns the limit off. */
  requestsPerSecond: number;
  /** Requests a caller may make at once after being idle. */
  burst: number;
}

import type { RateDecision, RateLimits } from '../ports/rate-limits.js';

export type { RateDecision };

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * A bucket's tokens at `nowMs`, and the time they are counted from next. Time is the wall clock (a
 * cluster's nodes share buckets, and only the wall clock is common to them), so it can step back (NTP
 * correcting, an operator's `date -s`): the step is taken as the point the bucket refills from, adding
 * nothing. Waiting for the clock to reach the bucket's old time instead refused every request of a caller
 * for as long as the step (an hour back: an hour of 429s, blaming the participant).
 */
export function refill(b: Bucket, nowMs: number, perMs: number, burst: number): Bucket {
  return { tokens: Math.min(burst, b.tokens + Math.max(0, nowMs - b.updatedAt) * perMs), updatedAt: nowMs };
}

const SWEEP_EVERY = 1024;

export class RateLimiter implements RateLimits {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly burst: number;
  private calls = 0;

  constructor(readonly settings: RateLimitSettings) {
    if (!(settings.requestsPerSecond >= 0)) throw new Error(`requestsPerSecond must be >= 0, got ${settings.requestsPerSecond}`);
    this.perMs = settings.requestsPerSecond / 1000;
    this.burst = Math.max(1, settings.burst);
  }

  get enabled(): boolean {
    return this.perMs > 0;
  }

  take(key: string, nowMs: number): RateDecision {
    if (!this.enabled) return { ok: true, remaining: Number.POSITIVE_INFINITY };
    if (++this.calls % SWEEP_EVERY === 0) this.sweep(nowMs);
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, updatedAt: nowMs };
      this.buckets.set(key, b);
    } else {
      b = refill(b, nowMs, this.perMs, this.burst);
      this.buckets.set(key, b);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true, remaining: Math.floor(b.tokens) };
    }
    return { ok: false, retryAfterMs: Math.ceil((1 - b.tokens) / this.perMs) };
  }

  /** Callers currently tracked. */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(nowMs: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (nowMs - b.updatedAt) * this.perMs >= this.burst) this.buckets.delete(key);
    }
  }
}
