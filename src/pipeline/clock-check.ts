import type { AlarmCondition } from '../ports/alarms.js';
import type { Clock } from '../ports/clock.js';

/**
 * One participant's signature date as the DIP checked it (X-DIP-Signature-Date against its own clock):
 * `skewMs` is the signed date less the DIP's time (positive: dated ahead of the DIP's clock), `refused`
 * whether it was beyond maxClockSkewSeconds. Told by whichever thread checked it (an ingest thread's in
 * its IngestResult), to the one ClockCheck of the process.
 */
export interface SignatureDate {
  participant: string;
  skewMs: number;
  refused: boolean;
}

/** The `dip-clock` rule: refusals of at least this many distinct participants… */
export const CLOCK_PARTICIPANTS = 3;
/** …whose latest signature within this window was refused, all dated the same way (src/pipeline/clock-check.ts). */
export const CLOCK_WINDOW_MS = 10 * 60_000;

/** What GET /admin/health says of the clock check: the last refusal each way, and the rule's state. */
export interface ClockCheckView {
  /** Whether the `dip-clock` rule holds now (the alarm is raised with alarms on). */
  suspect: boolean;
  /** Participants whose latest signature within the window was refused dated ahead of this DIP's clock, and behind it; and whose verified. */
  participants: { ahead: number; behind: number; verified: number };
  /** The last signature refused for its date each way (null: none within the window). */
  lastAhead: RefusalSeen | null;
  lastBehind: RefusalSeen | null;
  windowMs: number;
}

export interface RefusalSeen {
  participant: string;
  skewMs: number;
  /** How long ago (on the clock check's clock: the monotonic one, not the suspect wall clock). */
  agoMs: number;
}

interface Latest {
  skewMs: number;
  refused: boolean;
  at: number;
}

/**
 * Tells the DIP's own clock being wrong from a participant's. A participant whose clock is wrong has its
 * signatures refused (401, clock-skew) while others' verify; a DIP whose clock is wrong refuses them all,
 * every one dated the same way from it: the fault campaign stepped one node's clock and 2,382 submissions
 * were refused with nothing raised, the participants blamed.
 *
 * The rule (`dip-clock`): among the participants whose latest signature date was checked within the
 * window (CLOCK_WINDOW_MS, 10 min), at least CLOCK_PARTICIPANTS (3) had it refused dated the same way
 * (all ahead of this DIP's clock, or all behind it), and they outnumber all the others heard from (those
 * whose latest verified, and those refused the other way). One participant, however badly set its clock
 * and however often it sends, is one participant; a few badly set ones among participants whose
 * signatures verify are outnumbered; a DIP clock stepped beyond the allowed skew refuses everyone, the
 * same way. The summary says which way and about how far (the median of the refused dates' skew).
 *
 * Resolves once the rule no longer holds: as the refused participants' signatures verify again (each
 * participant's latest counts), or once their refusals are older than the window. The window is measured
 * on `clock`, which the DIP gives as the monotonic clock: the wall clock is the suspect, and correcting it
 * (a step back) must not keep the refusals fresh. So is the alarm's `since` (the process's start time,
 * counted on by the monotonic clock): while the wall clock is stepped it differs from the other alarms'.
 */
export class ClockCheck {
  private readonly latest = new Map<string, Latest>();
  /** Since when the rule has held (the first of the refusals it counts, kept while it holds). */
  private since: number | null = null;

  constructor(
    private readonly clock: Pick<Clock, 'now'>,
    private readonly maxSkewMs: number,
    private readonly node?: string,
  ) {}

  /** A signature date checked (SignatureDate); undefined (a call refused before its date was read) is ignored. */
  dated(d: SignatureDate | undefined): void {
    if (d === undefined) return;
    this.latest.set(d.participant, { skewMs: d.skewMs, refused: d.refused, at: this.now() });
  }

  /** The alarm's conditions now (src/pipeline/alarms.ts ConditionSource). */
  conditions(): AlarmCondition[] {
    const s = this.state();
    if (s.way === null) return [];
    const refused = s.way === 'ahead' ? s.ahead : s.behind;
    const skews = refused.map((r) => r.skewMs).sort((a, b) => a - b);
    const median = skews[Math.floor(skews.length / 2)]!;
    const heard = s.ahead.length + s.behind.length + s.verified;
    // Dated ahead of this DIP's clock: this clock is behind theirs, and the other way round.
    const clockIs = s.way === 'ahead' ? 'behind' : 'ahead of';
    const summary =
      `this DIP's clock${this.onNode()} appears about ${duration(Math.abs(median))} ${clockIs} its participants': the signatures of ${refused.length} of the ${heard} participants heard from in the last ${Math.round(CLOCK_WINDOW_MS / 60_000)} min ` +
      `were refused as dated ${s.way === 'ahead' ? 'ahead of' : 'behind'} it (by ${range(skews)} s; the limit is ${Math.round(this.maxSkewMs / 1000)} s), the last from ${refused[refused.length - 1]!.participant}`;
    return [{ key: this.node === undefined ? 'dip-clock' : `dip-clock:${this.node}`, rule: 'dip-clock', participant: null, summary, since: s.since }];
  }

  view(): ClockCheckView {
    const s = this.state();
    const last = (rs: RefusalSeen[]): RefusalSeen | null => rs[rs.length - 1] ?? null;
    return { suspect: s.way !== null, participants: { ahead: s.ahead.length, behind: s.behind.length, verified: s.verified }, lastAhead: last(s.ahead), lastBehind: last(s.behind), windowMs: CLOCK_WINDOW_MS };
  }

  private state(): { way: 'ahead' | 'behind' | null; ahead: RefusalSeen[]; behind: RefusalSeen[]; verified: number; since: number } {
    const now = this.now();
    const ahead: RefusalSeen[] = [];
    const behind: RefusalSeen[] = [];
    let verified = 0;
    for (const [participant, l] of this.latest) {
      if (now - l.at >= CLOCK_WINDOW_MS) {
        this.latest.delete(participant);
        continue;
      }
      if (!l.refused) verified += 1;
      else (l.skewMs > 0 ? ahead : behind).push({ participant, skewMs: l.skewMs, agoMs: now - l.at });
    }
    // Oldest first: the last is the latest refusal.
    ahead.sort((a, b) => b.agoMs - a.agoMs);
    behind.sort((a, b) => b.agoMs - a.agoMs);
    const heard = ahead.length + behind.length + verified;
    const holds = (rs: RefusalSeen[]): boolean => rs.length >= CLOCK_PARTICIPANTS && rs.length > heard - rs.length;
    const way = holds(ahead) ? 'ahead' : holds(behind) ? 'behind' : null;
    if (way === null) this.since = null;
    else this.since ??= now - (way === 'ahead' ? ahead : behind)[0]!.agoMs;
    return { way, ahead, behind, verified, since: this.since ?? now };
  }

  // Whole milliseconds: the monotonic clock's are fractional, and `since` and `agoMs` are answered as integers.
  private now(): number {
    return Math.floor(this.clock.now());
  }

  private onNode(): string {
    return this.node === undefined ? '' : ` (node ${this.node})`;
  }
}

/** How far off, in seconds, and in minutes or hours too when it is that much (a step of an hour reads as one). */
function duration(ms: number): string {
  const s = `${Math.round(ms / 1000)} s`;
  if (ms >= 7_200_000) return `${s} (${(ms / 3_600_000).toFixed(1)} h)`;
  return ms >= 120_000 ? `${s} (${(ms / 60_000).toFixed(1)} min)` : s;
}

/** The refused dates' skews, smallest to largest off, in whole seconds ("598 to 601", or one number). */
function range(skews: number[]): string {
  const offs = skews.map((ms) => Math.round(Math.abs(ms) / 1000)).sort((a, b) => a - b);
  return offs[0] === offs[offs.length - 1] ? `${offs[0]}` : `${offs[0]} to ${offs[offs.length - 1]}`;
}
