/** What a webhook's answer means for the message it carried (published DIP API callback rules). */
export type DeliveryVerdict = 'delivered' | 'retry' | 'rejected';

const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

export function classifyStatus(status: number): DeliveryVerdict {
  if (status >= 200 && status < 300) return 'delivered';
  if (RETRY_STATUSES.has(status)) return 'retry';
  // Other 5xx (e.g. 501, 507) are server trouble, not a verdict on the message: retry them too.
  // 505 (HTTP version) is published as "no retry": the endpoint will never accept the call as made.
  if (status >= 500 && status !== 505) return 'retry';
  return 'rejected';
}

export interface RetryPolicy {
  baseMs: number;
  capMs: number;
}

/**
 * Capped exponential backoff with full jitter: the wait before attempt n+1 is uniform in
 * [0, min(cap, base * 2^n)], so recipients coming back after an outage are not hit in lockstep.
 * A Retry-After from the recipient (429/503) is honoured as a floor, still within the cap.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  failedAttempts: number,
  random: number,
  retryAfterMs?: number,
): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(failedAttempts, 30));
  const jittered = Math.floor(random * ceiling);
  if (retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs > 0) {
    return Math.min(policy.capMs, Math.max(jittered, retryAfterMs));
  }
  return Math.max(jittered, Math.min(policy.baseMs, ceiling));
}

/** Parses an HTTP Retry-After header (seconds or HTTP date) to milliseconds from now. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
