import type { LoadGauge } from '../ports/load.js';

export interface OverloadLimits {
  /** Submissions are refused while the event loop runs later than this on average over the last windows, ms… */
  maxEventLoopDelayMs: number;
  /**
   * …and at least this many submissions are in hand. A late loop with few submissions waiting is a machine
   * busy with other work, and their senders wait for their answers anyway; a late loop with a queue of
   * submissions is a DIP falling behind what arrives.
   */
  delayCountsFromSubmissions: number;
  /** Submissions are refused while this many are in hand (read whole, being checked, waiting for their commit). */
  maxSubmissionsInFlight: number;
  /**
   * …or while their bodies add up to this many bytes, what a new one would bring counted in (its
   * Content-Length): the work in hand, so a crowd of 1,000-message batches cannot queue minutes of it
   * behind the 201s. One submission alone is always taken, whatever its size.
   */
  maxBytesInFlight: number;
}

/** One admitted submission: counted once its body has arrived, until it is answered. */
export interface Admitted {
  /**
   * Its body is read whole (`bytes` long): from now on it is work in hand, unless the work in hand has
   * meanwhile reached the limits (uploads that all began before any arrived were each admitted against
   * what was in hand then): then why not, and it is not counted.
   */
  arrived(bytes: number): Refusal | null;
  /** Answered, or its connection closed; once is enough. */
  done(): void;
}

export interface Refusal {
  retryAfterSeconds: number;
  help: string;
}

/**
 * Graceful overload: when the DIP cannot keep up it says so at once, before a submission's body is read,
 * instead of letting every answer (and every delivery, which shares the process) grow late without bound.
 * Two measurements decide: how late the event loop runs (everything the process does waits on it), and how
 * much work is in hand: submissions read whole, being checked, or waiting for the group commit to make them
 * durable (the writer's backlog), counted and by their bytes. A submission still arriving is not work in
 * hand: a sender trickling its bodies (a robustness probe held 256 of them open for 120 s) took every
 * slot while both cores idled, and every other sender was refused as "overloaded". A refused submission is
 * not read at all, so nothing of it was accepted and the sender sends it again unchanged after
 * Retry-After; a submission admitted is handled to the end as usual.
 */
export class OverloadGuard {
  private inFlight = 0;
  private bytesInFlight = 0;
  private refused = 0;

  constructor(
    private readonly limits: OverloadLimits,
    private readonly load: Pick<LoadGauge, 'delayMeanMs'>,
  ) {}

  /** Null when a submission of `declaredBytes` (its Content-Length; 0 when not given) may come in, else why not and when to try again. */
  admit(declaredBytes = 0): Refusal | null {
    const delay = this.load.delayMeanMs();
    if (delay > this.limits.maxEventLoopDelayMs && this.inFlight >= this.limits.delayCountsFromSubmissions) {
      this.refused += 1;
      // Back in about the time the loop is behind, so a crowd of senders does not all return at once.
      const retryAfterSeconds = Math.min(30, Math.max(1, Math.ceil((2 * delay) / 1000)));
      return { retryAfterSeconds, help: `the DIP is overloaded (it runs ${Math.round(delay)} ms late with ${this.inFlight} submissions in hand, the limit is ${this.limits.maxEventLoopDelayMs} ms); nothing of this batch was accepted: send it again unchanged after ${retryAfterSeconds} s` };
    }
    return this.inHand(declaredBytes);
  }

  /** Whether a submission of `bytes` more fits in what is in hand (checked at its headers and again at its arrival). */
  private inHand(bytes: number): Refusal | null {
    if (this.inFlight >= this.limits.maxSubmissionsInFlight) {
      this.refused += 1;
      return { retryAfterSeconds: 1, help: `the DIP is overloaded (${this.inFlight} submissions in hand, the limit is ${this.limits.maxSubmissionsInFlight}); nothing of this batch was accepted: send it again unchanged after 1 s` };
    }
    if (this.bytesInFlight > 0 && this.bytesInFlight + bytes > this.limits.maxBytesInFlight) {
      this.refused += 1;
      const mb = (n: number) => `${(n / 1_048_576).toFixed(1)} MiB`;
      return { retryAfterSeconds: 1, help: `the DIP is overloaded (${mb(this.bytesInFlight)} of submissions in hand, the limit is ${mb(this.limits.maxBytesInFlight)}); nothing of this batch was accepted: send it again unchanged after 1 s` };
    }
    return null;
  }

  /** A submission was admitted: it counts from when its body has arrived until it is answered. */
  started(): Admitted {
    let bytes = -1;
    let open = true;
    return {
      arrived: (n) => {
        if (!open || bytes >= 0) return null;
        const refusal = this.inHand(n);
        if (refusal) {
          open = false;
          return refusal;
        }
        bytes = n;
        this.inFlight += 1;
        this.bytesInFlight += n;
        return null;
      },
      done: () => {
        if (!open) return;
        open = false;
        if (bytes < 0) return;
        this.inFlight -= 1;
        this.bytesInFlight -= bytes;
      },
    };
  }

  /** For metrics and the operator: how loaded the DIP is now and how often it refused. */
  stats(): { eventLoopDelayMs: number; submissionsInFlight: number; bytesInFlight: number; refused: number } {
    return { eventLoopDelayMs: this.load.delayMeanMs(), submissionsInFlight: this.inFlight, bytesInFlight: this.bytesInFlight, refused: this.refused };
  }
}
