import type { KV } from '@nats-io/kv';
import type { AlarmCondition } from '../../ports/alarms.js';
import type { Cancel, Clock } from '../../ports/clock.js';
import type { AlarmNotifierLease, NotifiedAlarm } from '../../ports/leases.js';
import type { Logger } from '../../ports/logger.js';
import { isConflict, type LeaseSettings } from './leases.js';

/** Its key in the leases bucket: queue tokens are `<recipient>.<channel>` (a dot), so never this. */
export const NOTIFIER_KEY = 'alarm_notifier';

/** The lease's value (JSON): who holds it until when (the holder's clock), and what has been notified. */
interface NotifierValue {
  node: string;
  expiresAt: number;
  notified: Array<{ key: string; condition: AlarmCondition; asOf: number }>;
}

const decode = (b: Uint8Array): NotifierValue | undefined => {
  try {
    const v = JSON.parse(new TextDecoder().decode(b)) as Partial<NotifierValue>;
    return typeof v.node === 'string' && typeof v.expiresAt === 'number' && Array.isArray(v.notified) ? { node: v.node, expiresAt: v.expiresAt, notified: v.notified } : undefined;
  } catch {
    return undefined;
  }
};

const isDeleted = (op: string): boolean => op === 'DEL' || op === 'PURGE';

/**
 * The alarm notifier lease in the queue leases' bucket, taken and renewed by compare-and-set like a queue
 * lease (src/adapters/nats/leases.ts): two nodes can never both hold it. It is claimed only when a node
 * evaluates its alarms (turn()), and renewed every third of its length on a timer, so the holder keeps it
 * between evaluations however far apart they are. Each write carries what has been notified: the bucket
 * expires a key unwritten for 10 lease lengths, so the record lives as long as some node holds the lease.
 */
export class NatsAlarmNotifierLease implements AlarmNotifierLease {
  private held: { revision: number; validUntil: number; notified: Map<string, NotifiedAlarm> } | null = null;
  /** Writes one at a time: a renewal and a record racing on one revision would cost the lease. */
  private writing: Promise<unknown> = Promise.resolve();
  private readonly stopRenewing: Cancel;
  private closed = false;

  constructor(
    private readonly kv: KV,
    private readonly node: string,
    private readonly clock: Clock,
    private readonly settings: LeaseSettings,
    private readonly logger?: Logger,
  ) {
    this.stopRenewing = clock.every(Math.max(100, Math.floor(settings.ttlMs / 3)), () => {
      if (this.held) void this.serial(() => this.write());
    });
  }

  async turn(): Promise<Map<string, NotifiedAlarm> | null> {
    return this.serial(async () => {
      if (this.closed) return null;
      if (this.held && this.clock.now() < this.held.validUntil) return this.held.notified;
      this.held = null;
      try {
        const entry = await this.kv.get(NOTIFIER_KEY);
        const value = entry && !isDeleted(entry.operation) ? decode(entry.value) : undefined;
        // Held by a live node: its expiry plus the skew allowance, as for queue leases.
        if (value && value.node !== this.node && value.expiresAt + this.settings.skewMs > this.clock.now()) return null;
        const notified = new Map((value?.notified ?? []).map((n) => [n.key, { condition: n.condition, asOf: n.asOf }]));
        const startedAt = this.clock.now();
        const body = this.value(notified);
        const revision = !entry ? await this.kv.create(NOTIFIER_KEY, body) : await this.kv.update(NOTIFIER_KEY, body, entry.revision);
        this.held = { revision, validUntil: startedAt + this.settings.ttlMs - this.settings.skewMs, notified };
        this.logger?.info({ node: this.node, notified: notified.size }, 'this node now sends the notices of shared alarm conditions');
        return notified;
      } catch (err) {
        // Another node's claim came first, or NATS does not answer (the coordination alarm says so): not ours.
        if (!isConflict(err)) this.logger?.warn({ err }, 'the alarm notifier lease could not be read or claimed: shared alarm notices wait');
        return null;
      }
    });
  }

  async record(notified: Map<string, NotifiedAlarm>): Promise<boolean> {
    return this.serial(async () => {
      if (!this.held) return false;
      // Kept even if this write fails for want of NATS: the next renewal carries it.
      this.held.notified = notified;
      return this.write();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopRenewing();
    await this.serial(async () => {
      const h = this.held;
      if (!h) return;
      this.held = null;
      try {
        // Expired at once rather than deleted: the next holder needs what was notified.
        await this.kv.update(NOTIFIER_KEY, JSON.stringify({ node: this.node, expiresAt: 0, notified: [...h.notified].map(([key, n]) => ({ key, ...n })) } satisfies NotifierValue), h.revision);
      } catch {
        // Taken over already, or NATS is away: the lease expires by itself.
      }
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writing.then(fn);
    this.writing = run.catch(() => undefined);
    return run;
  }

  private value(notified: Map<string, NotifiedAlarm>): string {
    return JSON.stringify({ node: this.node, expiresAt: this.clock.now() + this.settings.ttlMs, notified: [...notified].map(([key, n]) => ({ key, ...n })) } satisfies NotifierValue);
  }

  /** Renews the lease with what has been notified; false (and no longer held) if another node took it over. */
  private async write(): Promise<boolean> {
    const h = this.held;
    if (!h) return false;
    const startedAt = this.clock.now();
    try {
      h.revision = await this.kv.update(NOTIFIER_KEY, this.value(h.notified), h.revision);
      h.validUntil = startedAt + this.settings.ttlMs - this.settings.skewMs;
      return true;
    } catch (err) {
      if (isConflict(err)) {
        this.logger?.warn({ node: this.node }, 'the alarm notifier lease was taken over: another node sends the notices of shared alarm conditions');
        this.held = null;
        return false;
      }
      // NATS away: this node stays the notifier until its lease's own end (turn() checks it).
      return true;
    }
  }
}
