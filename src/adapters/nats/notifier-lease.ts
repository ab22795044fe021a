import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { AlarmCondition } from '../../ports/alarms.js';
import type { Cancel, Clock } from '../../ports/clock.js';
import type { AlarmNotifierLease, NotifiedAlarm } from '../../ports/leases.js';
import type { Logger } from '../../ports/logger.js';
import type { KeyEraser } from './connection.js';
import { FailureLog } from './failure-log.js';
import type { IncarnationFence } from './fence.js';
import { isConflict, type LeaseSettings } from './leases.js';

/** Its key in the leases bucket: queue tokens are `<recipient>.<channel>` (a dot), so never this. */
export const NOTIFIER_KEY = 'alarm_notifier';

/** Says the notified conditions are kept one entry each in the record bucket, not in the lease's value. */
const RECORD_IN_BUCKET = 'bucket';

/**
 * The lease's value (JSON): who holds it until when (the holder's clock). Small and of fixed size whatever
 * is in alarm: it is rewritten at every renewal, and NATS refuses a value over its max_payload (1 MB), which
 * a record of thousands of conditions in it once passed (then no renewal got through and the lease changed
 * hands, each new holder notifying again). `notified` stays, empty, for nodes of the version before, which
 * read the lease only with it (they then honour its expiry); a value without `record` was written by such a
 * node (or by one of this version that took such a lease over and has not yet written its record into the
 * bucket in full), and its `notified` is then what has been notified.
 */
interface NotifierValue {
  node: string;
  expiresAt: number;
  notified: NotifiedEntry[];
  record?: typeof RECORD_IN_BUCKET;
}

/** One notified condition: an entry of the record bucket (or of a lease value written by the version before). */
interface NotifiedEntry {
  key: string;
  condition: AlarmCondition;
  asOf: number;
}

const parse = (b: Uint8Array): unknown => {
  try {
    return JSON.parse(new TextDecoder().decode(b)) as unknown;
  } catch {
    return undefined;
  }
};

const decode = (b: Uint8Array): NotifierValue | undefined => {
  const v = parse(b) as Partial<NotifierValue> | undefined;
  if (typeof v?.node !== 'string' || typeof v.expiresAt !== 'number') return undefined;
  return { node: v.node, expiresAt: v.expiresAt, notified: Array.isArray(v.notified) ? v.notified : [], ...(v.record === RECORD_IN_BUCKET ? { record: RECORD_IN_BUCKET } : {}) };
};

const decodeEntry = (b: Uint8Array): NotifiedEntry | undefined => {
  const v = parse(b) as Partial<NotifiedEntry> | undefined;
  return typeof v?.key === 'string' && typeof v.asOf === 'number' && typeof v.condition?.key === 'string' ? { key: v.key, condition: v.condition, asOf: v.asOf } : undefined;
};

const isDeleted = (op: string): boolean => op === 'DEL' || op === 'PURGE';

/** A condition's key in the record bucket: alarm keys hold ':' and '/', and a digest is a valid token of fixed length. */
export const recordKey = (alarmKey: string): string => createHash('sha256').update(alarmKey).digest('hex').slice(0, 40);

/** Record entries written or deleted at once: a first record of thousands of conditions is not one round trip each in turn. */
const WRITES_IN_FLIGHT = 64;

/**
 * The alarm notifier lease in the queue leases' bucket, taken and renewed by compare-and-set like a queue
 * lease (src/adapters/nats/leases.ts): two nodes can never both hold it. It is claimed only when a node
 * evaluates its alarms (turn()), and renewed every third of its length on a timer, so the holder keeps it
 * between evaluations however far apart they are.
 *
 * What has been notified is kept apart, in the record bucket (no expiry), one entry per notified condition
 * under the digest of its key: written when a condition is notified raised, erased when notified resolved
 * (no deletion marker left: the bucket holds what is in alarm, not every condition ever resolved), and
 * never at a renewal. So each value is one condition's size, the lease's value stays small however
 * many queues are in alarm, and a node taking the lease over reads the whole record (one pass over the
 * bucket) and sends only what changed since.
 */
export class NatsAlarmNotifierLease implements AlarmNotifierLease {
  /**
   * `notified`: null until the record has been read since the lease was claimed. `legacy`: the record a
   * holder of the version before kept in the lease's value, until it is written into the bucket in full.
   */
  private held: { revision: number; validUntil: number; notified: Map<string, NotifiedAlarm> | null; legacy: NotifiedEntry[] | null; incarnation: string | undefined } | null = null;
  /** What the record bucket holds, as far as this node has read or written it (by alarm key). */
  private stored = new Map<string, NotifiedAlarm>();
  /** Whether `held.notified` may differ from `stored` (a change not written yet, or a write that failed). */
  private dirty = false;
  /** Writes one at a time: a renewal and a record racing on one revision would cost the lease. */
  private writing: Promise<unknown> = Promise.resolve();
  private readonly stopRenewing: Cancel;
  private closed = false;
  /** Turns that found the lease unreadable: logged when they start, a minute apart, and when they stop (not at every evaluation). */
  private readonly readFailures: FailureLog;

  constructor(
    private readonly kv: KV,
    /** The record of what has been notified. */
    private readonly records: KV,
    /** Removes a record entry for good (a delete would leave a marker per condition ever resolved). */
    private readonly erase: KeyEraser,
    private readonly node: string,
    private readonly clock: Clock,
    private readonly settings: LeaseSettings,
    private readonly logger?: Logger,
    /** A holder's expiry in this node's time (NatsQueueLeases.expiryHere: the holder's clock as last heard). */
    private readonly expiryHere: (value: { node: string; expiresAt: number }) => number = (v) => v.expiresAt,
    /**
     * The queue leases' fence (NatsQueueLeases.fence), which the notifier lease shares, being kept in the
     * same bucket: created again, the bucket is empty, and a node finding the lease's key absent took it
     * while its holder of before still sent notices (two notifiers; the class says never). So it is held
     * only in the incarnation it was claimed in, and claimed only outside the fence. Absent: not followed.
     */
    private readonly fence?: IncarnationFence,
  ) {
    this.readFailures = new FailureLog(clock, logger, 'the alarm notifier lease could not be read or claimed: shared alarm notices wait', 'the alarm notifier lease can be read and claimed again');
    this.stopRenewing = clock.every(Math.max(100, Math.floor(settings.ttlMs / 3)), () => {
      if (!this.held) return;
      void this.serial(async () => {
        if (this.heldElsewhere()) return;
        if (await this.write()) await this.flush();
      });
    });
  }

  async turn(): Promise<Map<string, NotifiedAlarm> | null> {
    return this.serial(async () => {
      if (this.closed) return null;
      if (!this.heldElsewhere() && this.held && this.clock.now() < this.held.validUntil) return this.held.notified ?? this.readRecord(this.held);
      this.held = null;
      if (this.fence?.fenced()) return null;
      // The incarnation this claim begins in (see IncarnationFence.claimLanded).
      const known = this.fence?.current();
      try {
        const entry = await this.kv.get(NOTIFIER_KEY);
        const value = entry && !isDeleted(entry.operation) ? decode(entry.value) : undefined;
        // Held by a live node: its expiry plus the skew allowance, as for queue leases. A turn with nothing to write.
        if (value && value.node !== this.node && this.expiryHere(value) + this.settings.skewMs > this.clock.now()) {
          this.readFailures.succeeded();
          return null;
        }
        // A holder of the version before kept the record in the lease's value: that is what was notified
        // (the first flush writes it into the bucket, erasing what the bucket held before it).
        const legacy = value && value.record !== RECORD_IN_BUCKET ? value.notified : null;
        const startedAt = this.clock.now();
        const body = this.value(legacy);
        const revision = !entry ? await this.kv.create(NOTIFIER_KEY, body) : await this.kv.update(NOTIFIER_KEY, body, entry.revision);
        if (this.fence && !(await this.fence.claimLanded(known))) {
          // Landed in a bucket created again since the claim began, or inside the fence: undone, expired at once (as close does).
          await this.kv.update(NOTIFIER_KEY, this.value(legacy, 0), revision).catch(() => undefined);
          return null;
        }
        // Only once the claim is written: the read may be answered while writes fail (a warning and a
        // recovery line at every turn, before).
        this.readFailures.succeeded();
        const held = { revision, validUntil: startedAt + this.settings.ttlMs - this.settings.skewMs, notified: null, legacy, incarnation: known };
        this.held = held;
        const notified = await this.readRecord(held);
        if (notified) this.logger?.info({ node: this.node, notified: notified.size }, 'this node now sends the notices of shared alarm conditions');
        return notified;
      } catch (err) {
        // Another node's claim came first, or NATS does not answer (the coordination alarm says so): not ours.
        if (!isConflict(err)) this.readFailures.failed(err);
        return null;
      }
    });
  }

  async record(notified: Map<string, NotifiedAlarm>): Promise<boolean> {
    return this.serial(async () => {
      if (this.heldElsewhere() || !this.held?.notified) return false;
      // Only while the lease is ours by our own clock, and confirmed by a renewal first: a holder paused past
      // its lease (a frozen VM) between its turn and this record would otherwise write over the record of the
      // node that took over, and the next takeover would notify those conditions again.
      if (this.clock.now() >= this.held.validUntil || !(await this.write())) return false;
      // Kept even if a write fails for want of NATS: the next renewal writes what is left.
      this.held.notified = notified;
      this.dirty = true;
      await this.flush();
      return this.held !== null;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopRenewing();
    await this.serial(async () => {
      if (!this.held || this.heldElsewhere()) return;
      // What is left of the record is written only while the lease is still ours (see record).
      if (this.clock.now() < this.held.validUntil && (await this.write())) await this.flush();
      const h = this.held;
      if (!h) return;
      this.held = null;
      try {
        // Expired at once rather than deleted, so that nodes of the version before read it as free.
        await this.kv.update(NOTIFIER_KEY, this.value(h.legacy, 0), h.revision);
      } catch {
        // Taken over already, or NATS is away: the lease expires by itself.
      }
    });
  }

  /**
   * The lease held was claimed in an incarnation of the bucket the fence has since found replaced: it is
   * gone with that bucket, and dropped here (neither renewed nor used) rather than kept to its end.
   * Called within serial, as every change of `held`.
   */
  private heldElsewhere(): boolean {
    if (!this.held || !this.fence || this.held.incarnation === this.fence.current()) return false;
    this.logger?.warn({ node: this.node }, 'the alarm notifier lease went with the leases bucket (created again): this node sends no notices of shared alarm conditions until it claims it again');
    this.held = null;
    return true;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writing.then(fn);
    this.writing = run.catch(() => undefined);
    return run;
  }

  /**
   * The lease's value. A record taken over from a holder of the version before stays in it until it is in
   * the bucket in full: a node taking the lease over meanwhile (this one died, or could not read the
   * bucket until its lease ran out) takes it over with that record, not with the bucket's older one.
   */
  private value(legacy: NotifiedEntry[] | null, expiresAt = this.clock.now() + this.settings.ttlMs): string {
    return JSON.stringify((legacy ? { node: this.node, expiresAt, notified: legacy } : { node: this.node, expiresAt, notified: [], record: RECORD_IN_BUCKET }) satisfies NotifierValue);
  }

  /**
   * What the lease's holders have notified: the record bucket's entries, or the legacy record when the
   * lease's value carried it. Null (the notices wait, the lease is kept, and the next turn reads again,
   * the legacy record still held) while the bucket cannot be read: taking the lease as if nothing had been
   * notified would raise every alarm again.
   */
  private async readRecord(held: NonNullable<typeof this.held>): Promise<Map<string, NotifiedAlarm> | null> {
    const legacy = held.legacy ? new Map(held.legacy.map((n) => [n.key, { condition: n.condition, asOf: n.asOf }])) : null;
    try {
      const stored = new Map<string, NotifiedAlarm>();
      const markers: string[] = [];
      // The bucket keeps one value per key (history 1): its last, a deletion marker for a condition that
      // versions before this one resolved (they deleted the entry rather than erasing it).
      for await (const e of await this.records.history()) {
        if (isDeleted(e.operation)) markers.push(e.key);
        const n = isDeleted(e.operation) ? undefined : decodeEntry(e.value);
        if (n) stored.set(n.key, { condition: n.condition, asOf: n.asOf });
      }
      this.stored = stored;
      // Best effort: those left now are erased at the next takeover.
      for (let i = 0; i < markers.length; i += WRITES_IN_FLIGHT) await Promise.allSettled(markers.slice(i, i + WRITES_IN_FLIGHT).map((key) => this.erase(key)));
      held.notified = legacy ?? new Map(stored);
      this.dirty = legacy !== null;
      if (legacy) await this.flush();
      return held.notified;
    } catch (err) {
      this.logger?.warn({ err }, 'the record of notified alarms could not be read: shared alarm notices wait');
      return null;
    }
  }

  /** Writes the record's changes: an entry per condition newly notified (or changed), an erasure per one no longer. */
  private async flush(): Promise<void> {
    const notified = this.held?.notified;
    if (!notified || !this.dirty) return;
    const writes: Array<() => Promise<void>> = [];
    for (const [key, n] of notified) {
      if (this.stored.get(key) === n) continue;
      writes.push(async () => {
        await this.records.put(recordKey(key), JSON.stringify({ key, ...n } satisfies NotifiedEntry));
        this.stored.set(key, n);
      });
    }
    for (const key of this.stored.keys()) {
      if (notified.has(key)) continue;
      writes.push(async () => {
        await this.erase(recordKey(key));
        this.stored.delete(key);
      });
    }
    let failed = 0;
    const held = this.held!;
    for (let i = 0; i < writes.length; i += WRITES_IN_FLIGHT) {
      // A long flush must not outlast the lease it was started under (the rest waits for the next renewal).
      if (this.clock.now() >= held.validUntil) {
        failed += writes.length - i;
        break;
      }
      const done = await Promise.allSettled(writes.slice(i, i + WRITES_IN_FLIGHT).map((w) => w()));
      failed += done.filter((d) => d.status === 'rejected').length;
    }
    // What failed is left for the next renewal; a successor reading the record meanwhile may notify it again (at least once).
    this.dirty = failed > 0;
    // All of it in the bucket: the lease's value need not carry a legacy record any more (next renewal).
    if (!this.dirty) held.legacy = null;
    if (failed > 0) this.logger?.warn({ failed, of: writes.length }, 'the record of notified alarms could not be written in full: the rest is written at the next renewal');
  }

  /** Renews the lease; false (and no longer held) if another node took it over. */
  private async write(): Promise<boolean> {
    const h = this.held;
    if (!h) return false;
    const startedAt = this.clock.now();
    try {
      h.revision = await this.kv.update(NOTIFIER_KEY, this.value(h.legacy), h.revision);
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
