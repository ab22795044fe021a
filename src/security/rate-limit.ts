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
    } else if (nowMs > b.updatedAt) {
      b.tokens = Math.min(this.burst, b.tokens + (nowMs - b.updatedAt) * this.perMs);
      b.updatedAt = nowMs;
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
