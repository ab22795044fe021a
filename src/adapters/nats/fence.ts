import type { LeaseIncarnationRecords } from '../../ports/backend.js';
import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';

/** The lease settings the fence is made of (LeaseSettings, leases.ts, which uses this module). */
interface FenceSettings {
  ttlMs: number;
  skewMs: number;
}

/**
 * The leases bucket's JetStream request timeout (the client's default, openBucket): how long after a
 * renewal was sent its answer may still come and be taken, so how long after its holder's last chance
 * to renew a lease that write may land.
 */
export const LEASE_REQUEST_TIMEOUT_MS = 5_000;

/** How long a node claims nothing once it knows the leases bucket was created again (IncarnationFence). */
export const fenceMsOf = (settings: FenceSettings): number => settings.ttlMs + settings.skewMs + LEASE_REQUEST_TIMEOUT_MS;

/**
 * The one fence of every lease kept in the leases bucket (the queue leases and the alarm notifier's): which
 * incarnation of the bucket this node works in, and until when it claims nothing because the bucket was
 * created again. Created again, the bucket is empty, and a node finding a lease's key absent would take
 * it at once while a holder of the bucket before still works it: a holder stops working a lease a lease
 * length less the allowance after its last renewal began, renews only before then, and takes a renewal's
 * answer within the request timeout; that renewal was sent before the old bucket went. So no claim for a
 * lease length, the allowance and the request timeout (fenceMsOf) from when the new bucket was found, or
 * from its creation for a node started after it (track).
 *
 * An incarnation's id is the creation time of the bucket's stream (bucketIncarnation). Not a key in the
 * bucket: the bucket's TTL (ten lease lengths) expired one written once, and every node then took the
 * bucket for created again and dropped every lease, about once a minute. The creation time needs no
 * write, never expires, is the same for every node, and a stream created again has another.
 */
export class IncarnationFence {
  private generation: { id: string; read: () => Promise<string>; restore: () => Promise<boolean> } | null = null;
  /** Until when (steady clock) no lease is claimed. */
  private fencedUntil = Number.NEGATIVE_INFINITY;
  private readonly changeListeners: Array<() => void> = [];
  readonly fenceMs: number;

  constructor(
    private readonly bucket: string,
    settings: FenceSettings,
    /** The wall clock: a bucket's creation time is the NATS server's (track). */
    private readonly clock: Clock,
    /** Elapsed time, never stepped: how long the fence lasts. */
    private readonly steady: Clock,
    private readonly logger?: Logger,
  ) {
    this.fenceMs = fenceMsOf(settings);
  }

  /**
   * Follows the bucket's incarnation from now: `read` answers its id, `restore` creates the buckets again
   * when their streams are gone. Called once, at start. A node started within the fence of a recreation
   * (the old bucket's holders may still work their leases) is fenced for what is left of it, counted from
   * the stream's creation: it never saw the bucket before, so finds no change. Only after a recreation,
   * as `records` (the store every node shares) tell: a fresh cluster's bucket is as young, and fencing
   * every start on its age alone held every new cluster's leases back 12 s. No `records` (tests of the
   * leases alone): no fence at start. The creation time is the NATS server's clock: one behind this
   * node's shortens the fence by as much, which the allowance and the request timeout cover (the holders
   * before stopped a lease length less the allowance after the deletion at the latest, and the fence is
   * that plus twice the allowance and the request timeout).
   */
  async track(read: () => Promise<string>, restore: () => Promise<boolean>, records?: LeaseIncarnationRecords, node = ''): Promise<void> {
    const id = await read();
    this.generation = { id, read, restore };
    if (!records) return;
    let recreated: boolean;
    try {
      recreated = await records.enter(this.bucket, id, node);
    } catch (err) {
      // Not known: taken for a recreation (a fresh cluster's first claims wait, rather than risk two holders).
      this.logger?.warn({ err, bucket: this.bucket }, 'could not read or write which incarnation of the leases bucket the nodes work in: taken as created again');
      recreated = true;
    }
    const ageMs = Math.max(0, this.clock.now() - Date.parse(id));
    const leftMs = this.fenceMs - ageMs;
    if (!recreated || !(leftMs > 0)) return;
    this.fencedUntil = this.steady.now() + leftMs;
    this.logger?.error(
      { bucket: this.bucket, createdAt: id, claimsAgainInMs: leftMs },
      'the leases bucket was created again lately: this node claims no lease until every holder before has stopped',
    );
  }

  /** This node claims no lease now. */
  fenced(): boolean {
    return this.steady.now() < this.fencedUntil;
  }

  /** The incarnation this node works in now (undefined: not followed): what a claim begins in, for check. */
  current(): string | undefined {
    return this.generation?.id;
  }

  /** Runs when the bucket is found created again, once the fence is set: every lease held in it is to be dropped. */
  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  /**
   * Reads the bucket's incarnation (a probe's read, and every claim's after its write): 'changed' when it
   * is not `known` (the id the caller saw before it wrote; this node's current one by default). One that
   * is not this node's current one is taken as its own once the fence is set and the listeners have run.
   */
  async check(known?: string): Promise<'same' | 'changed'> {
    const g = this.generation;
    if (!g) return 'same';
    const expected = known ?? g.id;
    const id = await g.read();
    if (id === g.id) return id === expected ? 'same' : 'changed';
    this.fencedUntil = this.steady.now() + this.fenceMs;
    for (const l of this.changeListeners) l();
    g.id = id;
    return 'changed';
  }

  /**
   * Whether a claim whose write landed stands: not if the bucket is not the one it began in (`known`: the
   * write may have landed in a bucket created again since, where the key was absent), or the fence was set
   * meanwhile (a probe found the change first). One that does not stand is undone by the caller.
   */
  async claimLanded(known: string | undefined): Promise<boolean> {
    return (await this.check(known)) === 'same' && !this.fenced();
  }

  /** Creates the buckets again if their streams are gone (a failed probe). */
  async restore(): Promise<void> {
    await this.generation?.restore().catch(() => undefined);
  }
}
