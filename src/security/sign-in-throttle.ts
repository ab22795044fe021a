import { LruMap } from '../domain/lru-map.js';

/**
 * How failed sign-ins slow guessing down (OWASP Authentication and Credential Stuffing cheat sheets:
 * throttle, do not lock). Two limits, neither a lock a stranger can hold shut:
 *
 * - Per account name (cluster-wide, from the store's attempts in FAILURE_WINDOW_MS): after
 *   ACCOUNT_FREE_FAILURES failures, the next attempt waits a delay doubling from 1 s per further failure,
 *   capped at ACCOUNT_MAX_DELAY_MS, counted from the last failure. A refused attempt is not a failure, so
 *   waiting out the delay is the only way on. An address with fewer than TRUSTED_BELOW failures of its own
 *   (any name) is not held by the name's delay: the real user, signing in from their own address, is
 *   never kept out by someone failing against their name from elsewhere.
 * - Per source address (this node's memory, the SOURCES_KEPT most recent, an LRU): after
 *   SOURCE_FREE_FAILURES failures across any names, the address waits a delay doubling from 1 s per
 *   further failure, capped at SOURCE_MAX_DELAY_MS; it is forgotten after SOURCE_WINDOW_MS without a
 *   failure. One address spraying many names is slowed whatever the names. Behind a reverse proxy every
 *   client is the proxy's address (src/security/address-list.ts): they share this limit.
 */
export const FAILURE_WINDOW_MS = 15 * 60_000;
export const ACCOUNT_FREE_FAILURES = 5;
export const ACCOUNT_MAX_DELAY_MS = 60_000;
export const SOURCE_FREE_FAILURES = 10;
export const SOURCE_MAX_DELAY_MS = 15 * 60_000;
export const SOURCE_WINDOW_MS = 60 * 60_000;
export const TRUSTED_BELOW = 3;
const SOURCES_KEPT = 10_000;

/** The wait after `failures` failures: none for the first `free`, then 1 s doubled per failure beyond, at most `capMs`. */
export function backoffMs(failures: number, free: number, capMs: number): number {
  if (failures < free) return 0;
  return Math.min(capMs, 1000 * 2 ** Math.min(failures - free, 30));
}

/** Whole seconds to wait for `ms` (at least one), as Retry-After says it. */
export const retryAfterSeconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

interface SourceFailures {
  count: number;
  lastAt: number;
}

/** Failed sign-ins per source address on this node, bounded (least recently failed forgotten first). */
export class SourceThrottle {
  private readonly sources: LruMap<string, SourceFailures>;

  constructor(maxSources = SOURCES_KEPT) {
    this.sources = new LruMap(maxSources);
  }

  private current(source: string, now: number): SourceFailures | undefined {
    const s = this.sources.get(source);
    if (s && now - s.lastAt < SOURCE_WINDOW_MS) return s;
    if (s) this.sources.delete(source);
    return undefined;
  }

  /** The address's failures not yet forgotten. */
  failures(source: string, now: number): number {
    return this.current(source, now)?.count ?? 0;
  }

  /** Milliseconds until the address may try again (0: now). */
  waitMs(source: string, now: number): number {
    const s = this.current(source, now);
    return s ? Math.max(0, s.lastAt + backoffMs(s.count, SOURCE_FREE_FAILURES, SOURCE_MAX_DELAY_MS) - now) : 0;
  }

  failed(source: string, now: number): void {
    const s = this.current(source, now);
    this.sources.set(source, { count: (s?.count ?? 0) + 1, lastAt: now });
  }
}
