/** The webhook retry schedule (src/domain/retry.ts): what a recipient's operator sees between attempts. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyStatus, failureKind, NOT_TLS, parseRetryAfter, retryDelayMs, UNTRUSTED_CERTIFICATE } from '../src/domain/retry.js';

const policy = { baseMs: 500, capMs: 60_000 };

describe('retry schedule', () => {
  it('waits between half and all of min(cap, base × 2^n), never under the base nor over the cap', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), fc.double({ min: 0, max: 1, noNaN: true }), (n, r) => {
        const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** n);
        const wait = retryDelayMs(policy, n, r);
        expect(wait).toBeGreaterThanOrEqual(Math.max(policy.baseMs, ceiling / 2) - 1);
        expect(wait).toBeLessThanOrEqual(ceiling);
      }),
    );
  });

  it('grows with each failure whatever the draws, up to the cap: the least wait after n failures is at least the most after n-2', () => {
    // Consecutive attempts may overlap (that is the jitter), but the backoff never falls back to the base.
    for (let n = 2; n < 8; n++) expect(retryDelayMs(policy, n, 0)).toBeGreaterThanOrEqual(retryDelayMs(policy, n - 2, 1));
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((n) => retryDelayMs(policy, n, 0))).toEqual([500, 500, 1000, 2000, 4000, 8000, 16000, 30000]);
  });

  it("honours a recipient's Retry-After as a floor, within the cap", () => {
    expect(retryDelayMs(policy, 0, 0, 10_000)).toBe(10_000);
    expect(retryDelayMs(policy, 0, 0, 3_600_000)).toBe(60_000);
    expect(retryDelayMs(policy, 6, 1, 1_000)).toBe(32_000);
    expect(parseRetryAfter('7', 0)).toBe(7_000);
    expect(parseRetryAfter(new Date(90_000).toUTCString(), 30_000)).toBe(60_000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
  });

  it('takes 2xx as delivered, the published "no retry" answers as final, and retries every other (published or not)', () => {
    expect([200, 204, 408, 429, 500, 503, 507, 302, 307, 409, 422].map(classifyStatus)).toEqual(Array(2).fill('delivered').concat(Array(9).fill('retry')));
    expect([400, 401, 403, 404, 405, 406, 413, 505].map(classifyStatus)).toEqual(Array(8).fill('rejected'));
  });
});

describe('failureKind: a failed call in words that name nothing of the recipient', () => {
  it.each([
    ['TIMEOUT: no answer within 500 ms: connecting, the TLS handshake or the answer\'s headers', 'no answer in time'],
    ['ENOTFOUND: getaddrinfo ENOTFOUND hooks.internal.example', "the webhook's host name did not resolve"],
    ['ECONNREFUSED: connect ECONNREFUSED 10.0.3.7:8443', 'the connection was refused'],
    ['ECONNRESET: read ECONNRESET', 'the connection was closed before an answer'],
    ["ERR_TLS_CERT_ALTNAME_INVALID: Hostname/IP does not match certificate's altnames: DNS:a.internal", 'TLS failed (certificate or handshake)'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate (the DIP does not trust…)', "the DIP does not trust the receiver's TLS certificate"],
    ['INVALID_CA: invalid CA certificate', "the DIP does not trust the receiver's TLS certificate"],
    ['ERR_SSL_WRONG_VERSION_NUMBER: hooks.example:443 answered, but not in TLS', 'what answered is not TLS (a plain-http server at an https:// callbackURL?)'],
    ['EPROTO: write EPROTO 0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure', 'TLS failed (certificate or handshake)'],
    ['EHOSTUNREACH: connect EHOSTUNREACH 10.0.3.7:8443', "the webhook's host could not be reached"],
    ['HTTP 503', 'the recipient answered HTTP 503'],
    ['Error: something else at 10.0.0.1', 'the call failed'],
  ])('%s', (error, kind) => {
    expect(failureKind(error)).toBe(kind);
  });
  it('names every certificate and not-TLS verdict the webhook client knows as such, never as "the call failed"', () => {
    for (const code of UNTRUSTED_CERTIFICATE) expect(failureKind(`${code}: x`), code).toBe("the DIP does not trust the receiver's TLS certificate");
    for (const code of NOT_TLS) expect(failureKind(`${code}: x`), code).toMatch(/^what answered is not TLS/);
  });
});
