/** What a webhook's answer means for the message it carried (published DIP API callback rules). */
export type DeliveryVerdict = 'delivered' | 'retry' | 'rejected';

/**
 * The answers the published callback marks "no retry": a verdict on the message (or, for 505, on the
 * call as made). Every other answer outside 2xx is retried until the channel's staleness limit: the
 * published 408, 429 and 5xx, and what it does not name (a redirect during a recipient's maintenance,
 * 409, 422 …), which is no published verdict and must not set a message aside after one call.
 * Redirects are not followed: the destination checks judge the URL the recipient registered.
 */
const FINAL_STATUSES = new Set([400, 401, 403, 404, 405, 406, 413, 505]);

export function classifyStatus(status: number): DeliveryVerdict {
  if (status >= 200 && status < 300) return 'delivered';
  return FINAL_STATUSES.has(status) ? 'rejected' : 'retry';
}

export interface RetryPolicy {
  baseMs: number;
  capMs: number;
}

/**
 * Capped exponential backoff with jitter: the wait before attempt n+1 is uniform in [c/2, c], where
 * c = min(cap, base * 2^n), and never under the base. Half of it is random, so recipients coming back
 * after an outage are not hit in lockstep; half is fixed, so the waits grow with each failure (with
 * "full" jitter, uniform in [0, c], every few attempts fell back to the base at random, which a
 * recipient's operator reads as no backoff at all).
 * A Retry-After from the recipient (429/503) is honoured as a floor, still within the cap.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  failedAttempts: number,
  random: number,
  retryAfterMs?: number,
): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(failedAttempts, 30));
  const jittered = Math.max(Math.min(policy.baseMs, ceiling), Math.floor(ceiling / 2 + (random * ceiling) / 2));
  if (retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs > 0) {
    return Math.min(policy.capMs, Math.max(jittered, retryAfterMs));
  }
  return jittered;
}

/** Parses an HTTP Retry-After header (seconds or HTTP date) to milliseconds from now. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/**
 * OpenSSL's verdicts on a receiver's certificate the DIP does not trust. The attempt's error (what the
 * participant sees in the portal, and the operator in GET /admin/attempts) says why and what to do, not
 * only the code: such a call is retried like any failed connection until the receiver is fixed.
 */
export const UNTRUSTED_CERTIFICATE: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'INVALID_CA',
]);

/** OpenSSL's verdicts when what answers the TLS ClientHello is not TLS. */
export const NOT_TLS: ReadonlySet<string> = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST']);

/**
 * What a failed webhook call's error says, in words that name nothing of the recipient's systems: the
 * sender of a message that went stale reads it (its status message, its journey), and the raw error
 * names the recipient's host, address, port or certificate names. The operator keeps the raw error in
 * the delivery journal and the queue's state.
 */
export function failureKind(error: string): string {
  const http = /^HTTP (\d{3})$/.exec(error);
  if (http) return `the recipient answered HTTP ${http[1]}`;
  const code = /^([A-Z][A-Z0-9_]*):/.exec(error)?.[1] ?? '';
  if (code === 'TIMEOUT' || code === 'ETIMEDOUT' || (code.startsWith('UND_ERR_') && code.includes('TIMEOUT'))) return 'no answer in time';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return "the webhook's host name did not resolve";
  if (code === 'ECONNREFUSED') return 'the connection was refused';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return "the webhook's host could not be reached";
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET') return 'the connection was closed before an answer';
  if (NOT_TLS.has(code)) return 'what answered is not TLS (a plain-http server at an https:// callbackURL?)';
  if (UNTRUSTED_CERTIFICATE.has(code)) return "the DIP does not trust the receiver's TLS certificate";
  if (code === 'EPROTO' || /CERT|TLS|SSL|ALTNAME|HANDSHAKE/.test(code)) return 'TLS failed (certificate or handshake)';
  return 'the call failed';
}
