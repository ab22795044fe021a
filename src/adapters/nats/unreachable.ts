import type { ConnectionFollower } from './connection.js';

/**
 * A node's memory that the shared store (NATS) did not answer: for `forMs` after a failure it is not
 * asked again, so while JetStream has lost its quorum each request takes the fallback at once instead of
 * waiting out the request timeout (a fault campaign saw each submission take 5 s, then 5–10 s when the
 * window was counted from the request's start and so had run out by the time the timeout ended it). One
 * per NATS connection, shared by the replay guard and the rate limits: a request that found NATS silent
 * for one does not wait on it again for the other. The first request after the window asks again.
 */
export class Unreachable implements ConnectionFollower {
  private until = 0;
  /** The connection itself is down (its own event): nothing is asked until it is back. */
  private lost = false;

  constructor(
    private readonly now: () => number,
    private readonly forMs = 5_000,
    /** Told of each failure: a bucket whose stream is gone is created again (BucketRestorer). */
    private readonly onFailure: () => void = () => undefined,
  ) {}

  get skipping(): boolean {
    return this.lost || this.now() < this.until;
  }

  /**
   * The connection is lost (followConnection): no request waits out a timeout on it (before, one request
   * in each 5 s window waited 1 s, a kill -9 of the NATS server measured).
   */
  connectionLost(): void {
    this.lost = true;
  }

  /** Back: the shared store is asked again at once rather than at the end of a failure's window. */
  connectionBack(): void {
    this.lost = false;
    this.until = 0;
  }

  /** Called when a call has failed: the window starts now, after the wait, not when the call began. */
  failed(): void {
    this.until = this.now() + this.forMs;
    this.onFailure();
  }
}
