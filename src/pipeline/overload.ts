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
  /**
   * Bodies still arriving are held in memory too: their Content-Length adds up to at most this many bytes
   * across all senders (a submission without one counts as the body limit). A sender past it is
   * refused at its headers, before a byte of its body is kept.
   */
  maxBytesArriving: number;
  /**
   * …and to at most this many from any one sender (the participant its certificate names, else its address), so one
   * participant trickling large bodies fills its own share, not everyone's. One upload alone is always taken
   * up to it; a larger one never fits, and is refused for good (tooLarge).
   */
  maxBytesArrivingPerSender: number;
}

/** What the guard is told of a submission at its headers. */
export interface Arriving {
  /** Its Content-Length, or null when it did not declare one (chunked). */
  declaredBytes: number | null;
  /**
   * Who sends it: the participant its client certificate names (its DIP IDs), else the certificate's
   * fingerprint, else its address (src/api/overload.ts senderKey).
   */
  sender: string;
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

export interface OverloadStats {
  eventLoopDelayMs: number;
  submissionsInFlight: number;
  bytesInFlight: number;
  bytesArriving: number;
  /** Submissions refused since the start. */
  refused: number;
}

export interface Refusal {
  /** null: sending it again cannot help (answered 413, without Retry-After). */
  retryAfterSeconds: number | null;
  help: string;
}

/**
 * Graceful overload: when the DIP cannot keep up it says so at once, before a submission's body is read,
 * instead of letting every answer (and every delivery, which shares the process) grow late without bound.
 * Two measurements decide: how late the event loop runs (everything the process does waits on it), and how
 * much work is in hand: submissions read whole, being checked, or waiting for the group commit to make them
 * durable (the writer's backlog), counted and by their bytes. A submission still arriving is not work in
 * hand: a sender trickling its bodies (a robustness probe held 256 of them open for 120 s) took every
 * slot while both cores idled, and every other sender was refused as "overloaded". Its bytes are memory,
 * though (a probe's 300 uploads of 1,000 messages each, read whole at once, took the process to 2.2 GB):
 * they are bounded apart, by what the uploads declared, per sender and in all. A refused submission is
 * not read at all, so nothing of it was accepted and the sender sends it again unchanged after
 * Retry-After; a submission admitted is handled to the end as usual.
 */
export class OverloadGuard {
  private inFlight = 0;
  private bytesInFlight = 0;
  private refused = 0;
  private bytesArriving = 0;
  private readonly arrivingBySender = new Map<string, number>();
  /** What each sender has in hand (submissions, bytes): its fair share is judged by it (inHand). */
  private readonly inHandBySender = new Map<string, { count: number; bytes: number }>();

  /**
   * `maxBodyBytes`: the body limit. An upload is counted as arriving by its Content-Length up to it (a
   * larger one is refused 413 unread), and as it when it declared none.
   */
  constructor(
    private readonly limits: OverloadLimits,
    private readonly load: Pick<LoadGauge, 'delayMeanMs'>,
    private readonly maxBodyBytes = limits.maxBytesArrivingPerSender,
  ) {}

  /**
   * A submission's headers have come: admitted (its body may be read: the ticket follows it until it is
   * answered), or refused with why and when to try again.
   */
  admit(arriving: Arriving = { declaredBytes: null, sender: '' }): Admitted | Refusal {
    const refusal = this.judge(arriving);
    if (refusal) {
      this.refused += 1;
      return refusal;
    }
    return this.started(arriving);
  }

  private judge({ declaredBytes, sender }: Arriving): Refusal | null {
    // Past the body limit is Fastify's 413; between the arriving limits and it, this one's.
    if (declaredBytes !== null && declaredBytes <= this.maxBodyBytes) {
      const tooLarge = this.tooLarge(declaredBytes);
      if (tooLarge) return tooLarge;
    }
    const delay = this.load.delayMeanMs();
    if (delay > this.limits.maxEventLoopDelayMs && this.inFlight >= this.limits.delayCountsFromSubmissions) {
      // Back in about the time the loop is behind, so a crowd of senders does not all return at once.
      const retryAfterSeconds = Math.min(30, Math.max(1, Math.ceil((2 * delay) / 1000)));
      return { retryAfterSeconds, help: `the DIP is overloaded (it runs ${Math.round(delay)} ms late with ${this.inFlight} submissions in hand, the limit is ${this.limits.maxEventLoopDelayMs} ms); nothing of this batch was accepted: send it again unchanged after ${retryAfterSeconds} s` };
    }
    const reserve = this.reserved(declaredBytes);
    const mine = this.arrivingBySender.get(sender) ?? 0;
    if (mine > 0 && mine + reserve > this.limits.maxBytesArrivingPerSender) {
      return { retryAfterSeconds: 1, help: `the DIP is overloaded (${mib(mine)} of your submissions are still arriving, the limit per sender is ${mib(this.limits.maxBytesArrivingPerSender)}); nothing of this batch was accepted: send it again unchanged after 1 s` };
    }
    if (this.bytesArriving > 0 && this.bytesArriving + reserve > this.limits.maxBytesArriving) {
      return { retryAfterSeconds: 1, help: `the DIP is overloaded (${mib(this.bytesArriving)} of submissions are still arriving, the limit is ${mib(this.limits.maxBytesArriving)}); nothing of this batch was accepted: send it again unchanged after 1 s` };
    }
    return this.inHand(Math.min(declaredBytes ?? 0, this.maxBodyBytes), sender);
  }

  /**
   * An upload larger than may arrive from one sender (or from all) at once: taken alone, it went through
   * whatever its size while the limit bounded only a second upload; it can never fit, so no Retry-After.
   */
  private tooLarge(bytes: number): Refusal | null {
    const { maxBytesArrivingPerSender: perSender, maxBytesArriving: all } = this.limits;
    if (bytes <= Math.min(perSender, all)) return null;
    const [name, most] = perSender <= all ? ['from one sender at once (overload.maxBytesArrivingPerSender', perSender] : ['at once from all senders (overload.maxBytesArriving', all];
    return { retryAfterSeconds: null, help: `the body (${bytes} bytes) is larger than the DIP takes arriving ${name}, ${most} bytes): sent again it is refused again; nothing of this batch was accepted: send it in smaller batches` };
  }

  /** What an upload is counted as while it arrives: a Content-Length beyond the body limit will never be read. */
  private reserved(declaredBytes: number | null): number {
    return Math.min(declaredBytes ?? this.maxBodyBytes, this.maxBodyBytes);
  }

  /** Whether a submission of `bytes` more from `sender` fits in what is in hand (checked at its headers and again at its arrival). */
  private inHand(bytes: number, sender: string): Refusal | null {
    if (this.inFlight >= this.limits.maxSubmissionsInFlight) {
      return { retryAfterSeconds: 1, help: `the DIP is overloaded (${this.inFlight} submissions in hand, the limit is ${this.limits.maxSubmissionsInFlight}); nothing of this batch was accepted: send it again unchanged after 1 s` };
    }
    if (this.bytesInFlight > 0 && this.bytesInFlight + bytes > this.limits.maxBytesInFlight) {
      return { retryAfterSeconds: 1, help: `the DIP is overloaded (${mib(this.bytesInFlight)} of submissions in hand, the limit is ${mib(this.limits.maxBytesInFlight)}); nothing of this batch was accepted: send it again unchanged after 1 s` };
    }
    return this.pastShare(bytes, sender);
  }

  /**
   * A sender's fair share of the work in hand: while another sender has work in hand or arriving, one sender
   * holds at most 1/(n + 1) of the submissions and of the bytes in hand, n the senders with work in hand or
   * arriving (itself included): a third each while two send, a quarter while three do. Shared whole, one
   * sender's 850-message batches filled the 32 MB and every other sender was refused until they were
   * answered; held to half each, two senders filled it between them and a third (with nothing in hand, so
   * judged by the limits above) was refused until one of them was answered, and lost the freed room to
   * them (they are answered at once, it retries after 1 s). The share counted over n + 1 always leaves room
   * for one more. Alone a sender may use it all, and a sender with nothing in hand is judged by the limits
   * above only: no sender is kept out by its own share. A sender is the participant its certificate names
   * (src/api/overload.ts), so two certificates of one participant (a rotation's overlap) hold one share.
   */
  private pastShare(bytes: number, sender: string): Refusal | null {
    const mine = this.inHandBySender.get(sender);
    if (mine === undefined) return null;
    const senders = this.sendersWithWork();
    if (senders < 2) return null;
    const shareCount = Math.max(1, Math.floor(this.limits.maxSubmissionsInFlight / (senders + 1)));
    const shareBytes = this.limits.maxBytesInFlight / (senders + 1);
    if (mine.count + 1 <= shareCount && mine.bytes + bytes <= shareBytes) return null;
    return {
      retryAfterSeconds: 1,
      help: `the DIP is overloaded for you (you have ${mine.count} submissions, ${mib(mine.bytes)}, in hand; while ${senders} senders send, one may hold 1/${senders + 1}: ${shareCount} submissions, ${mib(shareBytes)}); nothing of this batch was accepted: send it again unchanged after 1 s`,
    };
  }

  /** How many senders have work in hand or arriving. */
  private sendersWithWork(): number {
    let n = this.inHandBySender.size;
    for (const sender of this.arrivingBySender.keys()) if (!this.inHandBySender.has(sender)) n += 1;
    return n;
  }

  private holds(sender: string, count: number, bytes: number): void {
    const mine = this.inHandBySender.get(sender) ?? { count: 0, bytes: 0 };
    const next = { count: mine.count + count, bytes: mine.bytes + bytes };
    if (next.count > 0) this.inHandBySender.set(sender, next);
    else this.inHandBySender.delete(sender);
  }

  /**
   * An admitted submission: its declared size counts as arriving until its body has arrived, then its
   * size as in hand until it is answered.
   */
  private started({ declaredBytes, sender }: Arriving): Admitted {
    let reserved = this.reserved(declaredBytes);
    this.bytesArriving += reserved;
    this.arrivingBySender.set(sender, (this.arrivingBySender.get(sender) ?? 0) + reserved);
    const settle = () => {
      if (reserved === 0) return;
      this.bytesArriving -= reserved;
      const left = (this.arrivingBySender.get(sender) ?? 0) - reserved;
      if (left > 0) this.arrivingBySender.set(sender, left);
      else this.arrivingBySender.delete(sender);
      reserved = 0;
    };
    let bytes = -1;
    let open = true;
    return {
      arrived: (n) => {
        if (!open || bytes >= 0) return null;
        settle();
        // Declared no length (chunked), it could only be judged by its size now.
        const refusal = this.tooLarge(n) ?? this.inHand(n, sender);
        if (refusal) {
          this.refused += 1;
          open = false;
          return refusal;
        }
        bytes = n;
        this.inFlight += 1;
        this.bytesInFlight += n;
        this.holds(sender, 1, n);
        return null;
      },
      done: () => {
        settle();
        if (!open) return;
        open = false;
        if (bytes < 0) return;
        this.inFlight -= 1;
        this.bytesInFlight -= bytes;
        this.holds(sender, -1, -bytes);
      },
    };
  }

  /** For metrics and the operator: how loaded the DIP is now and how often it refused. */
  stats(): OverloadStats {
    return { eventLoopDelayMs: this.load.delayMeanMs(), submissionsInFlight: this.inFlight, bytesInFlight: this.bytesInFlight, bytesArriving: this.bytesArriving, refused: this.refused };
  }
}

export const isRefusal = (r: Admitted | Refusal): r is Refusal => 'help' in r;

const mib = (n: number) => `${(n / 1_048_576).toFixed(1)} MiB`;
