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
  /** Submissions are refused while this many are being handled (read, checked, waiting for their commit). */
  maxSubmissionsInFlight: number;
}

export interface Refusal {
  retryAfterSeconds: number;
  help: string;
}

/**
 * Graceful overload: when the DIP cannot keep up it says so at once, before a submission's body is read,
 * instead of letting every answer (and every delivery, which shares the process) grow late without bound.
 * Two measurements decide: how late the event loop runs (everything the process does waits on it), and how
 * many submissions are in hand (read, being checked, or waiting for the group commit to make them durable:
 * the writer's backlog). A refused submission is not read at all, so nothing of it was accepted and the
 * sender sends it again unchanged after Retry-After; a submission admitted is handled to the end as usual.
 */
export class OverloadGuard {
  private inFlight = 0;
  private refused = 0;

  constructor(
    private readonly limits: OverloadLimits,
    private readonly load: Pick<LoadGauge, 'delayMeanMs'>,
  ) {}

  /** Null when a submission may come in, else why not and when to try again. */
  admit(): Refusal | null {
    const delay = this.load.delayMeanMs();
    if (delay > this.limits.maxEventLoopDelayMs && this.inFlight >= this.limits.delayCountsFromSubmissions) {
      this.refused += 1;
      // Back in about the time the loop is behind, so a crowd of senders does not all return at once.
      const retryAfterSeconds = Math.min(30, Math.max(1, Math.ceil((2 * delay) / 1000)));
      return { retryAfterSeconds, help: `the DIP is overloaded (it runs ${Math.round(delay)} ms late with ${this.inFlight} submissions in hand, the limit is ${this.limits.maxEventLoopDelayMs} ms); nothing of this batch was accepted: send it again unchanged after ${retryAfterSeconds} s` };
    }
    if (this.inFlight >= this.limits.maxSubmissionsInFlight) {
      this.refused += 1;
      return { retryAfterSeconds: 1, help: `the DIP is overloaded (${this.inFlight} submissions in hand, the limit is ${this.limits.maxSubmissionsInFlight}); nothing of this batch was accepted: send it again unchanged after 1 s` };
    }
    return null;
  }

  /** A submission was admitted; `done` must be called once it is answered (or its connection closed). */
  started(): () => void {
    this.inFlight += 1;
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      this.inFlight -= 1;
    };
  }

  /** For metrics and the operator: how loaded the DIP is now and how often it refused. */
  stats(): { eventLoopDelayMs: number; submissionsInFlight: number; refused: number } {
    return { eventLoopDelayMs: this.load.delayMeanMs(), submissionsInFlight: this.inFlight, refused: this.refused };
  }
}
