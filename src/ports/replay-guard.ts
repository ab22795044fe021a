/** The answer of a replay check: a signature is good for one request only. */
export type ReplayCheck = { replayed: false } | { replayed: true; firstSeenAt: Date };

/**
 * Remembers every accepted X-DIP-Signature for as long as it could still verify (2 × the clock-skew
 * limit), across every node: a request replayed to another node behind the same address is refused too.
 * In memory for one process (src/security/replay-guard.ts); shared through NATS JetStream in a cluster.
 */
export interface SignatureReplayGuard {
  /** Records the signature as used at `nowMs`, unless it was used before: then reports when, and records nothing. */
  check(signature: string, nowMs: number): ReplayCheck | Promise<ReplayCheck>;
  /**
   * Forgets the signature again: its request stored nothing and the sender was told to send it again
   * unchanged (a paused channel, a store that cannot take writes), so the same signed request may come
   * again within its window. Should a released request have been stored after all, its re-send is
   * refused as a duplicate sender reference: that check, not this guard, is what keeps a batch single.
   */
  release(signature: string): void | Promise<void>;
}
