import type { Cancel, Clock } from '../ports/clock.js';
import type { LoadGauge } from '../ports/load.js';

export interface DeliveryShareSettings {
  /** A queue whose oldest waiting message is older than this is catching up (after an outage, a requeue). */
  catchUpAfterMs: number;
  /** Messages per second that all catching-up queues together may be handed, when the DIP is not pressed. */
  catchUpPerSecond: number;
  /** The least fraction of catchUpPerSecond kept while the DIP is pressed, so every backlog still drains. */
  minShare: number;
  /** The DIP counts as pressed while its event loop runs later than this (LoadGauge). */
  pressedAboveMs: number;
  /** How often the share looks at the load and adjusts the catch-up rate. */
  adjustEveryMs: number;
}

export const DEFAULT_SHARE: DeliveryShareSettings = {
  catchUpAfterMs: 2_000,
  catchUpPerSecond: 5_000,
  minShare: 0.1,
  pressedAboveMs: 20,
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
 * bucket. The rate adapts to measured load (additive increase, multiplicative decrease): while the event
 * loop runs late the rate halves, down to minShare of catchUpPerSecond, and it climbs back by a tenth each
 * adjustment once the loop is on time. So a recovering recipient drains at catchUpPerSecond on an idle DIP,
 * never below minShare of it, and gives way to live traffic in between. Within a queue the order never
 * changes: a recovering recipient gets its oldest message first, and what arrived during the outage
 * before what arrives now.
 */
export class DeliveryShare {
  private tokens: number;
  private last: number;
  private factor = 1;
  private readonly line: Waiter[] = [];
  private timer: Cancel | null = null;
  private adjusting: Cancel | null = null;

  constructor(
    private readonly settings: DeliveryShareSettings,
    private readonly clock: Clock,
    private readonly load: Pick<LoadGauge, 'delayP99Ms'> | null,
  ) {
    this.last = clock.now();
    this.tokens = this.capacity();
  }

  /** Starts adjusting the rate to the measured load (without a gauge the rate stays at catchUpPerSecond). */
  start(): void {
    if (!this.load || this.adjusting) return;
    const load = this.load;
    this.adjusting = this.clock.every(this.settings.adjustEveryMs, () => {
      this.refill();
      if (load.delayP99Ms() > this.settings.pressedAboveMs) this.factor = Math.max(this.settings.minShare, this.factor / 2);
      else this.factor = Math.min(1, this.factor + 0.1);
      this.pump();
    });
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
