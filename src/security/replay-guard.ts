/**
 * Signature replay protection.
 *
 * A request's X-DIP-Signature covers method, URL, date and body hash, so a captured request stays
 * verifiable for as long as its X-DIP-Signature-Date is within the clock-skew window: up to
 * `maxClockSkew` either side of the DIP's clock. A signature first accepted at time t was signed at
 * t ± skew, so it verifies until at most t + 2 × skew: remembering each accepted signature for
 * 2 × skew after it was first seen is enough to refuse every replay, and nothing needs keeping longer.
 *
 * Memory is bounded by time: entries live in buckets of `bucketMs`, and whole buckets are dropped
 * once they are older than the retention. Only a 128-bit digest of each signature is kept (about
 * 100 bytes per entry all told), so 1 000 requests/s with a 300 s skew costs about 60 MB.
 */
import { createHash } from 'node:crypto';
import type { ReplayCheck, SignatureReplayGuard } from '../ports/replay-guard.js';

export type { ReplayCheck };

/** What is kept of a signature: 128 bits of its SHA-256 (base64url, also a valid NATS KV key). */
export const signatureDigest = (signature: string): string => createHash('sha256').update(signature, 'utf8').digest('base64url').slice(0, 22);

export class ReplayGuard implements SignatureReplayGuard {
  /** digest → first-seen time (ms). */
  private readonly seen = new Map<string, number>();
  /** bucket index → digests first seen in it, for eviction. */
  private readonly buckets = new Map<number, string[]>();
  private readonly bucketMs: number;
  private oldestBucket = Number.POSITIVE_INFINITY;

  /**
   * @param retainMs how long a signature is remembered: 2 × the clock-skew limit.
   * @param buckets how many buckets the retention is split into (eviction granularity).
   */
  constructor(
    readonly retainMs: number,
    buckets = 16,
  ) {
    if (!(retainMs > 0)) throw new Error(`ReplayGuard: retainMs must be > 0, got ${retainMs}`);
    this.bucketMs = Math.max(1, Math.ceil(retainMs / Math.max(1, buckets)));
  }

  /** For a DIP whose signature dates may be up to `maxSkewMs` either side of its clock. */
  static forClockSkew(maxSkewMs: number): ReplayGuard {
    return new ReplayGuard(2 * maxSkewMs);
  }

  /**
   * Records `signature` (the X-DIP-Signature value) as used at `nowMs`, unless it was already used
   * within the retention, in which case it reports the replay and records nothing.
   * Call it only once everything else about the request has been verified, so that unauthenticated
   * garbage cannot fill the set.
   */
  check(signature: string, nowMs: number): ReplayCheck {
    this.evict(nowMs);
    const digest = signatureDigest(signature);
    const first = this.seen.get(digest);
    if (first !== undefined) return { replayed: true, firstSeenAt: new Date(first) };
    this.seen.set(digest, nowMs);
    const b = Math.floor(nowMs / this.bucketMs);
    let list = this.buckets.get(b);
    if (!list) {
      list = [];
      this.buckets.set(b, list);
      if (b < this.oldestBucket) this.oldestBucket = b;
    }
    list.push(digest);
    return { replayed: false };
  }

  /**
   * Forgets `signature`. Its digest stays in its bucket's list, so that bucket's eviction may drop the
   * signature early should it be used again later: no earlier than 2 × skew after its first use, when it
   * can no longer verify anyway.
   */
  release(signature: string): void {
    this.seen.delete(signatureDigest(signature));
  }

  /** Signatures currently remembered. */
  get size(): number {
    return this.seen.size;
  }

  /** Drops every bucket that ended more than `retainMs` ago. */
  private evict(nowMs: number): void {
    // A bucket's entries were first seen no later than its end; keep it while end + retain > now.
    const keepFrom = Math.floor((nowMs - this.retainMs) / this.bucketMs);
    if (this.oldestBucket >= keepFrom) return;
    let oldest = Number.POSITIVE_INFINITY;
    for (const [b, list] of this.buckets) {
      if (b < keepFrom) {
        for (const d of list) this.seen.delete(d);
        this.buckets.delete(b);
      } else if (b < oldest) {
        oldest = b;
      }
    }
    this.oldestBucket = oldest;
  }
}
