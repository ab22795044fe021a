/**
 * A node's memory that the shared store (NATS) did not answer: for `forMs` after a failure it is not
 * asked again, so while JetStream has lost its quorum each request takes the fallback at once instead of
 * waiting out the request timeout (a fault campaign saw each submission take 5 s, then 5–10 s when the
 * window was counted from the request's start and so had run out by the time the timeout ended it). One
 * per NATS connection, shared by the replay guard and the rate limits: a request that found NATS silent
 * for one does not wait on it again for the other. The first request after the window asks again.
 */
export class Unreachable {
  private until = 0;

  constructor(
    private readonly now: () => number,
    private readonly forMs = 5_000,
  ) {}

  get skipping(): boolean {
    return this.now() < this.until;
  }

  /** Called when a call has failed: the window starts now, after the wait, not when the call began. */
  failed(): void {
    this.until = this.now() + this.forMs;
  }
}
