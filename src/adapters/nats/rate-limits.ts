import type { KV } from '@nats-io/kv';
import type { Logger } from '../../ports/logger.js';
import type { RateDecision, RateLimits } from '../../ports/rate-limits.js';
import { refill, type RateLimitSettings } from '../../security/rate-limit.js';
import type { Unreachable } from './unreachable.js';

/** The shared bucket of one caller, as kept in the KV entry. */
interface Shared {
  tokens: number;
  at: number;
}

/** How many times a node retries a compare-and-set another node beat it to before letting the request through. */
const CAS_TRIES = 5;

/**
 * Fair use across the cluster: one token bucket per caller in a KV bucket, lent out in slices.
 *
 * Consistency: every token is taken from the shared bucket by a compare-and-set, so the cluster as a
 * whole never admits more than the limit (rate × time + burst) — the property fair use needs. A node
 * takes a slice (a tenth of the burst) at a time and spends it locally, so the shared bucket is touched
 * once per slice rather than once per request; the price is that a node may refuse while another still
 * holds a few unspent tokens of the same caller (at most one slice per node), which errs on the side of
 * the limit. When NATS cannot be reached the limit is not enforced (logged): fair use is not worth
 * refusing the market's traffic over.
 */
export class NatsRateLimits implements RateLimits {
  readonly enabled: boolean;
  private readonly perMs: number;
  private readonly burst: number;
  private readonly slice: number;
  private readonly local = new Map<string, number>();

  constructor(
    private readonly kv: KV,
    settings: RateLimitSettings,
    private readonly down: Unreachable,
    private readonly logger?: Logger,
  ) {
    this.perMs = settings.requestsPerSecond / 1000;
    this.enabled = this.perMs > 0;
    this.burst = Math.max(1, settings.burst);
    this.slice = Math.max(1, Math.ceil(this.burst / 10));
  }

  async take(key: string, nowMs: number): Promise<RateDecision> {
    if (!this.enabled) return { ok: true, remaining: Number.POSITIVE_INFINITY };
    const mine = this.local.get(key) ?? 0;
    if (mine >= 1) {
      this.local.set(key, mine - 1);
      return { ok: true, remaining: Math.floor(mine - 1) };
    }
    if (this.down.skipping) return { ok: true, remaining: 0 };
    // Caller keys hold ':' and certificate fingerprints: base64url is a valid KV key whatever they hold.
    const k = Buffer.from(key, 'utf8').toString('base64url');
    try {
      for (let i = 0; i < CAS_TRIES; i++) {
        const entry = await this.kv.get(k);
        const live = entry && entry.operation === 'PUT' ? (JSON.parse(entry.string()) as Shared) : { tokens: this.burst, at: nowMs };
        // Counted from this node's time, even when it is behind the entry's (a step back, or another node's
        // clock a little ahead): keeping the later time held the caller until this clock reached it. Nodes'
        // clocks agree to within the clock-skew check, so what that lends a caller is negligible.
        const { tokens } = refill({ tokens: live.tokens, updatedAt: live.at }, nowMs, this.perMs, this.burst);
        const grant = Math.min(this.slice, Math.floor(tokens));
        if (grant < 1) return { ok: false, retryAfterMs: Math.ceil((1 - tokens) / this.perMs) };
        const next = JSON.stringify({ tokens: tokens - grant, at: nowMs } satisfies Shared);
        try {
          if (entry) await this.kv.update(k, next, entry.revision);
          else await this.kv.create(k, next);
        } catch (err) {
          if (/wrong last sequence|key exists/.test((err as Error).message)) continue;
          throw err;
        }
        this.local.set(key, grant - 1);
        return { ok: true, remaining: grant - 1 };
      }
      this.logger?.warn({ key }, 'shared rate limit contended: request let through');
    } catch (err) {
      this.down.failed();
      this.logger?.warn({ err }, 'shared rate limits unreachable: requests let through (for the next 5 s without asking)');
    }
    return { ok: true, remaining: 0 };
  }
}
