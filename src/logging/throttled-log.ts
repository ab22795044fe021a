import { LruMap } from '../domain/lru-map.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';

/** What a throttled warning's line is told: how many occurrences it stands for, and over when. */
export interface Occurrences {
  /** Occurrences since the previous line, this call's included (on the first line: this call's). */
  count: number;
  /** Occurrences since the first, this call's included. */
  total: number;
  /** When the key first occurred (epoch ms), or first again after it ended. */
  since: number;
  /** When the previous line was logged; absent on the first line. */
  previousAt?: number;
  /** Now (epoch ms). */
  at: number;
}

/** A log line as its caller words it: fields, then message. */
export type LogLine = readonly [fields: object, msg: string];

interface Key {
  since: number;
  total: number;
  loggedAt: number;
  /** Occurrences since the last line, not yet in one. */
  unlogged: number;
}

/** Distinct keys kept by default: past it the least recently met is forgotten (and is logged as new when met again). */
const KEYS_KEPT = 1000;

/**
 * The one way a warning whose cause repeats while it lasts is logged: when its key (what it is about) is
 * first met, at once; then at most once per `everyMs`, saying how many occurrences came since the previous
 * line; and, for a cause that can end (a failure that works again), one line when it does. Logged at each
 * occurrence, such a warning (NATS out of reach at every claim pass; a misconfigured channel or MPAN lookup
 * at every IF-021 batch, thousands a minute) buried what else the log said. The wording is each caller's;
 * the rhythm is this. Keys are bounded, since some are named by what arrives (a lookup feed's holders).
 */
export class ThrottledLog {
  private readonly keys: LruMap<string, Key>;

  constructor(
    private readonly clock: Pick<Clock, 'now'>,
    private readonly logger: Logger | undefined,
    readonly everyMs: number,
    keysKept: number = KEYS_KEPT,
  ) {
    this.keys = new LruMap(keysKept);
  }

  /** `count` more occurrences of `key`: a warning worded by `line` if one is due. */
  warn(key: string, count: number, line: (o: Occurrences) => LogLine): void {
    const now = this.clock.now();
    const k = this.keys.get(key);
    if (!k) {
      this.keys.set(key, { since: now, total: count, loggedAt: now, unlogged: 0 });
      this.logger?.warn(...line({ count, total: count, since: now, at: now }));
      return;
    }
    k.total += count;
    k.unlogged += count;
    // A wall clock stepped back (NTP, `date -s`) makes a line due rather than silencing the key until the
    // clock is back where it was.
    if (now >= k.loggedAt && now - k.loggedAt < this.everyMs) return;
    const o: Occurrences = { count: k.unlogged, total: k.total, since: k.since, previousAt: k.loggedAt, at: now };
    k.loggedAt = now;
    k.unlogged = 0;
    this.logger?.warn(...line(o));
  }

  /** `key`'s cause is gone: one line worded by `line` (info) if it had occurred, and the key starts afresh. */
  ended(key: string, line: (o: Pick<Occurrences, 'total' | 'since' | 'at'>) => LogLine): void {
    const k = this.keys.get(key);
    if (!k) return;
    this.keys.delete(key);
    this.logger?.info(...line({ total: k.total, since: k.since, at: this.clock.now() }));
  }
}
