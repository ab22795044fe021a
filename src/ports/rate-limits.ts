export type RateDecision = { ok: true; remaining: number } | { ok: false; retryAfterMs: number };

/**
 * Fair use: a token bucket per caller (a participant, else its certificate or address). In memory for one
 * process (src/security/rate-limit.ts); shared by every node in a cluster, so a participant's limit is
 * the same whichever node its requests reach.
 */
export interface RateLimits {
  readonly enabled: boolean;
  take(key: string, nowMs: number): RateDecision | Promise<RateDecision>;
}
