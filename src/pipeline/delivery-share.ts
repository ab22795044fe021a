import type { Cancel, Clock } from '../ports/clock.js';

export interface DeliveryShareSettings {
  /** A queue whose oldest waiting message is older than this is catching up (after an outage, a requeue). */
  catchUpAfterMs: number;
  /** Messages per second that all catching-up queues together may be handed, while live traffic is on time. */
  catchUpPerSecond: number;
  /** The least fraction of catchUpPerSecond kept while live traffic runs late, so every backlog still drains. */
  minShare: number;
  /** A live call whose oldest message waited longer than this is late; the share yields while over a tenth are. */
  liveLateAfterMs: number;
  /** How often the share looks at the live calls and adjusts the catch-up rate. */
  adjustEveryMs: number;
}

export const DEFAULT_SHARE: DeliveryShareSettings = {
  catchUpAfterMs: 2_000,
  catchUpPerSecond: 5_000,
  minShare: 0.1,
  liveLateAfterMs: 50,
  adjustEveryMs: 250,
};

interface Waiter {
  key: string;
  want: number;
  resolve(granted: number): void;
}

/** The tokens a full bucket holds, in seconds of the current rate: the largest call a lone catching-up queue makes. */
const BUCKET_SECONDS = 0.25;

/**
 * Shares delivery capacity between recipient queues, so one queue's backlog never starves the others.
 *
 * Live queues (oldest waiting message younger than catchUpAfterMs) never wait here: what arrives now goes
 * out now. Queues that are catching up (a recipient back after an outage, a requeue of thousands) draw
 * messages from one token bucket refilled at the catch-up rate, served in turn (each queue waits at most
 * once in the line, so several backlogs drain at the same pace), each turn at most an equal part of the
 * bucket.
 *
 * The rate follows what it protects: the live queues report each call's lateness (how long its oldest
 * message waited), and while more than a tenth of a window's live calls are later than liveLateAfterMs
 * (their p90) the rate halves, down to minShare of catchUpPerSecond; once they are on time it climbs back
 * by a tenth each adjustment (additive increase, multiplicative decrease). It used to follow the event
 * loop's p99 delay instead, which misfired: in a busy delivery process one 500-message call or a GC
 * pause is over 20 ms in nearly every window, so catch-up sat at its floor with live traffic on time,
 * and live queues that fell two seconds behind joined the line and were held to that floor too (the
 * bench drain phase: backlog drained at the live rate, the others' p99 15 s). A window without live
 * calls has nobody to protect: the rate climbs.
 *
 * So a recovering recipient drains at catchUpPerSecond while the others' deliveries are on time, never
 * below minShare of it, and gives way to live traffic in between. Within a queue the order never changes:
 * a recovering recipient gets its oldest message first, and what arrived during the outage before what
 * arrives now.
 */
export class DeliveryShare {
  private tokens: number;
  private last: number;
  private factor = 1;
  private readonly line: Waiter[] = [];
  private timer: Cancel | null = null;
  private adjusting: Cancel | null = null;
  /** This window's live calls, and how many of them were late. */
  private liveCalls = 0;
  private lateCalls = 0;

  constructor(
    private readonly settings: DeliveryShareSettings,
    private readonly clock: Clock,
  ) {
    this.last = clock.now();
    this.tokens = this.capacity();
  }

  /** Starts adjusting the rate to the live calls' lateness (until then it stays at catchUpPerSecond). */
  start(): void {
    if (this.adjusting) return;
    this.adjusting = this.clock.every(this.settings.adjustEveryMs, () => {
      this.refill();
      if (this.lateCalls * 10 > this.liveCalls) this.factor = Math.max(this.settings.minShare, this.factor / 2);
      else this.factor = Math.min(1, this.factor + 0.1);
      this.liveCalls = 0;
      this.lateCalls = 0;
      this.pump();
    });
  }

  /** A live queue (not catching up) makes a call whose oldest message has waited `lateMs`. */
  live(lateMs: number): void {
    this.liveCalls += 1;
    if (lateMs > this.settings.liveLateAfterMs) this.lateCalls += 1;
  }

  stop(): void {
    this.adjusting?.();
    this.adjusting = null;
    this.timer?.();
    this.timer = null;
    for (const w of this.line.splice(0)) w.resolve(0);
  }

  /** Messages per second catching-up queues may be handed now. */
  rate(): number {
    return this.settings.catchUpPerSecond * this.factor;
  }

  /** True when a queue whose oldest waiting message arrived at `receivedAt` is catching up. */
  behind(receivedAt: number): boolean {
    return receivedAt < this.clock.now() - this.settings.catchUpAfterMs;
  }

  /** A catching-up queue asks to send up to `want` messages: resolves with how many it may (≥ 1; 0 if withdrawn). */
  grant(key: string, want: number): Promise<number> {
    const existing = this.line.findIndex((w) => w.key === key);
    if (existing !== -1) this.line.splice(existing, 1)[0]!.resolve(0);
    return new Promise<number>((resolve) => {
      this.line.push({ key, want: Math.max(1, want), resolve });
      this.pump();
    });
  }

  /** Returns what a queue was granted but did not send (it had fewer messages waiting). */
  giveBack(n: number): void {
    if (n <= 0) return;
    this.refill();
    this.tokens = Math.min(this.capacity(), this.tokens + n);
    this.pump();
  }

  /** A queue stops (lease lost, shutdown): it leaves the line with nothing. */
  withdraw(key: string): void {
    const i = this.line.findIndex((w) => w.key === key);
    if (i !== -1) this.line.splice(i, 1)[0]!.resolve(0);
  }

  /** Queues waiting for their turn. */
  waiting(): number {
    return this.line.length;
  }

  private capacity(): number {
    return Math.max(1, this.rate() * BUCKET_SECONDS);
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.capacity(), this.tokens + ((now - this.last) * this.rate()) / 1000);
    this.last = now;
  }

  private pump(): void {
    this.refill();
    while (this.line.length > 0) {
      const head = this.line[0]!;
      // An equal part of the bucket per queue in line: one backlog cannot take every turn's worth.
      const turn = Math.max(1, Math.floor(this.capacity() / this.line.length));
      const need = Math.min(head.want, turn);
      if (this.tokens < need) {
        this.timer?.();
        this.timer = this.clock.after(Math.ceil(((need - this.tokens) * 1000) / this.rate()), () => {
          this.timer = null;
          this.pump();
        });
        return;
      }
      this.tokens -= need;
      this.line.shift();
      head.resolve(need);
    }
  }
}
