import type { KV } from '@nats-io/kv';
import type { Logger } from '../../ports/logger.js';
import type { ReplayCheck, SignatureReplayGuard } from '../../ports/replay-guard.js';
import { ReplayGuard, signatureDigest } from '../../security/replay-guard.js';
import type { Unreachable } from './unreachable.js';

/**
 * The signature replay guard shared by every node: a KV bucket whose entries expire (the bucket's max
 * age) after 2 × the clock-skew limit, the longest a signature can still verify. Accepting a signature
 * is a create-if-absent of its digest, which exactly one node wins, so a request replayed to another node
 * behind the same address is refused as surely as one replayed to the same node.
 *
 * Should NATS be unreachable, each node falls back to its own memory (still refusing replays to itself)
 * rather than refusing every request; the sender unique reference check in PostgreSQL still refuses a
 * replayed submission whichever node gets it.
 */
export class NatsReplayGuard implements SignatureReplayGuard {
  private readonly local: ReplayGuard;

  constructor(
    private readonly kv: KV,
    retainMs: number,
    private readonly down: Unreachable,
    private readonly logger?: Logger,
  ) {
    this.local = new ReplayGuard(retainMs);
  }

  async check(signature: string, nowMs: number): Promise<ReplayCheck> {
    if (this.down.skipping) return this.local.check(signature, nowMs);
    const digest = signatureDigest(signature);
    try {
      await this.kv.create(digest, String(nowMs));
      return { replayed: false };
    } catch (err) {
      if (/wrong last sequence|key exists/.test((err as Error).message)) {
        const first = await this.kv.get(digest).catch(() => null);
        return { replayed: true, firstSeenAt: new Date(first ? Number(first.string()) : nowMs) };
      }
      this.down.failed();
      this.logger?.warn({ err }, 'shared replay guard unreachable: checking against this node only (for the next 5 s without asking it)');
      return this.local.check(signature, nowMs);
    }
  }

  async release(signature: string): Promise<void> {
    this.local.release(signature);
    // A delete marker: the next create of the key succeeds. Should NATS be unreachable the signature stays
    // used until it expires, and the sender signs its retry afresh, as it may always do.
    await this.kv.delete(signatureDigest(signature)).catch((err: unknown) => this.logger?.warn({ err }, 'shared replay guard unreachable: a signature could not be released'));
  }
}
