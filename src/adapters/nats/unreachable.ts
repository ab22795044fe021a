/**
 * A node's memory that the shared store (NATS) did not answer: for `forMs` after a failure it is not
 * asked again, so while JetStream has lost its quorum each request takes the fallback at once instead of
 * waiting out the client's request timeout (5 s a submission, seen by a fault campaign); the first request
 * after the window asks again.
 */
export class Unreachable {
  private until = 0;

  constructor(private readonly forMs = 5_000) {}

  skipping(nowMs: number): boolean {
    return nowMs < this.until;
  }

  failed(nowMs: number): void {
    this.until = nowMs + this.forMs;
  }
}
