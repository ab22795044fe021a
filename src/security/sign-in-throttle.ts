import { isIPv6 } from 'node:net';
import { LruMap } from '../domain/lru-map.js';

/**
 * How failed sign-ins slow guessing down (OWASP Authentication and Credential Stuffing cheat sheets:
 * throttle, do not lock; OWASP "Slow Down Online Guessing Attacks with Device Cookies"). A sign-in is
 * trusted when it presents a valid device cookie for its name (src/security/device-cookie.ts, set on the
 * name's last successful sign-in in that browser) that has failed fewer than DEVICE_FREE_FAILURES times;
 * every other sign-in is untrusted (no cookie, another name's, a forged one, and every `dip login` /
 * `POST /admin/session`, which have none). Two limits on untrusted sign-ins, neither a lock:
 *
 * - Per account name (cluster-wide, from the store's attempts in FAILURE_WINDOW_MS, trusted sign-ins'
 *   failures included): after ACCOUNT_FREE_FAILURES failures, the next untrusted attempt waits a delay
 *   doubling from 1 s per further failure, capped at ACCOUNT_MAX_DELAY_MS, counted from the last failure,
 *   whatever its address (a guesser rotating addresses gains nothing). A refused attempt is not a
 *   failure. A stranger can so slow a name's untrusted sign-ins by a minute at most, and never its
 *   owner's known browser.
 * - Per source address (this node's memory, the SOURCES_KEPT most recent, an LRU; an IPv6 address by its
 *   /64, as one host usually holds a whole /64; IPv4 and IPv4-mapped by the address): after
 *   SOURCE_FREE_FAILURES failures across any names, a delay doubling from 1 s per further failure, capped
 *   at SOURCE_MAX_DELAY_MS; forgotten after SOURCE_WINDOW_MS without a failure. One address spraying many
 *   names is slowed whatever the names. Capped at a minute too, not more: behind a reverse proxy (and on
 *   the loopback address `dip login` uses) everyone shares the address, so its wait falls on all of
 *   them, and a longer one would be a lock a stranger holds shut; a spraying address still gets at most
 *   about one guess a minute once held.
 */
export const FAILURE_WINDOW_MS = 15 * 60_000;
export const ACCOUNT_FREE_FAILURES = 5;
export const ACCOUNT_MAX_DELAY_MS = 60_000;
export const SOURCE_FREE_FAILURES = 10;
export const SOURCE_MAX_DELAY_MS = 60_000;
export const SOURCE_WINDOW_MS = 60 * 60_000;
/** A device cookie that failed this many times for its name (within SOURCE_WINDOW_MS of each other) is trusted no more. */
export const DEVICE_FREE_FAILURES = ACCOUNT_FREE_FAILURES;
const SOURCES_KEPT = 10_000;

/** The wait after `failures` failures: none for the first `free`, then 1 s doubled per failure beyond, at most `capMs`. */
export function backoffMs(failures: number, free: number, capMs: number): number {
  if (failures < free) return 0;
  return Math.min(capMs, 1000 * 2 ** Math.min(failures - free, 30));
}

/**
 * Milliseconds still to wait `delayMs` after a failure at `lastAt` (0: now), never more than `delayMs`: the
 * wall clock stepped back (NTP, `date -s`) must not hold a sign-in for the step as well.
 */
export const waitAfter = (lastAt: number, delayMs: number, now: number): number => Math.min(delayMs, Math.max(0, lastAt + delayMs - now));

/** Whole seconds to wait for `ms` (at least one), as Retry-After says it. */
export const retryAfterSeconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

interface SourceFailures {
  count: number;
  lastAt: number;
}

/** The eight groups of an IPv6 address (an IPv4 tail folded into the last two). */
function ipv6Groups(address: string): number[] {
  let s = address.split('%')[0]!;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

/**
 * What a client address is throttled as: an IPv6 address by its /64 (a host is commonly given a whole
 * /64, so its next address is free), an IPv4 or IPv4-mapped address by itself.
 */
export function sourceKey(address: string): string {
  if (!isIPv6(address.split('%')[0]!)) return address;
  const g = ipv6Groups(address.toLowerCase());
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return [g[6]! >> 8, g[6]! & 255, g[7]! >> 8, g[7]! & 255].join('.');
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}

/** Failed sign-ins per key (a source address's sourceKey, a device cookie's nonce) on this node, bounded (least recently failed forgotten first). */
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
    return s ? waitAfter(s.lastAt, backoffMs(s.count, SOURCE_FREE_FAILURES, SOURCE_MAX_DELAY_MS), now) : 0;
  }

  failed(source: string, now: number): void {
    const s = this.current(source, now);
    this.sources.set(source, { count: (s?.count ?? 0) + 1, lastAt: now });
  }
}
