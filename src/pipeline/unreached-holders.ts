import type { Clock } from '../ports/clock.js';
import type { UnreachedHolder } from './ingest.js';

/** One holder the MPAN lookup named who got no copy, on one channel, for one reason: how often and when. */
export interface UnreachedSeen {
  holder: string;
  slot: string;
  /** MSG1033 (not a participant) or MSG1034 (without the slot's role). */
  code: string;
  channel: string;
  /** Accepted messages that left it out since it was first seen in this run. */
  messages: number;
  /** The first and the last of them (epoch ms). */
  first: number;
  last: number;
}

/** Distinct (holder, slot, code, channel) kept: past it the one seen longest ago is forgotten (a bad feed naming many holders cannot grow memory). */
const KEPT = 1000;

/**
 * The holders an MPAN lookup named for accepted messages who got no copy (IngestResult.unreached), as
 * seen lately on this node: what the `mpan-holder-unreached` alarm reads. Each is kept until `quietMs`
 * pass with no message leaving it out, so the alarm resolves after a quiet period rather than at the
 * next evaluation (a holder left out once an hour would otherwise flap: raised, resolved, raised).
 */
export class UnreachedHolders {
  /** Ordered by last seen, oldest first (a sighting moves its entry to the end). */
  private readonly seen = new Map<string, UnreachedSeen>();

  constructor(
    private readonly clock: Pick<Clock, 'now'>,
    readonly quietMs: number,
  ) {}

  record(channel: string, holders: ReadonlyArray<Pick<UnreachedHolder, 'holder' | 'slot' | 'code'>>): void {
    const now = this.clock.now();
    this.forgetQuiet(now);
    for (const h of holders) {
      const key = `${h.holder}\u0000${h.slot}\u0000${h.code}\u0000${channel}`;
      const was = this.seen.get(key);
      this.seen.delete(key);
      this.seen.set(key, was ? { ...was, messages: was.messages + 1, last: now } : { holder: h.holder, slot: h.slot, code: h.code, channel, messages: 1, first: now, last: now });
    }
    for (const key of this.seen.keys()) {
      if (this.seen.size <= KEPT) break;
      this.seen.delete(key);
    }
  }

  /** Those left out within the quiet period, the most recently seen first. */
  recent(): UnreachedSeen[] {
    this.forgetQuiet(this.clock.now());
    return [...this.seen.values()].reverse();
  }

  private forgetQuiet(now: number): void {
    for (const [key, s] of this.seen) {
      if (now - s.last < this.quietMs) break;
      this.seen.delete(key);
    }
  }
}
