/**
 * The nodes found lost, recorded in the store every node shares (LostNodeRecords). A node's view of its
 * peers lives in its memory (the roll calls it heard): a survivor restarted after a loss, or a node added
 * since, never heard the lost node and did not raise node-lost, and GET /admin/health showed nothing of
 * it. Each node that finds a node lost records it here once; the record is resolved when the node comes
 * back (heard again, or restarted under a new id of its name) or an operator says it was removed, and a
 * node reads the records unresolved at its start.
 */
import type { LostNode, LostNodeRecords } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import { RecordConflictError, type RegistryStore, type StoredRecord } from '../ports/registry.js';

const KIND = 'cluster-node-lost';

type LostNodeDoc = { state: 'lost'; lastHeardAt: number } | { state: 'returned' | 'removed' };

const docOf = (r: StoredRecord): LostNodeDoc => r.doc as LostNodeDoc;

export class StoredLostNodes implements LostNodeRecords {
  constructor(
    private readonly store: Pick<RegistryStore, 'records' | 'putRecord'>,
    private readonly clock: Clock,
  ) {}

  async lost(): Promise<LostNode[]> {
    return (await this.store.records(KIND)).flatMap((r) => {
      const doc = docOf(r);
      return doc.state === 'lost' ? [{ node: r.key, lastHeardAt: doc.lastHeardAt }] : [];
    });
  }

  async recordLost(node: LostNode, by: string): Promise<void> {
    await this.write(node.node, by, (latest) => (latest !== undefined && docOf(latest).state === 'lost' ? undefined : { state: 'lost', lastHeardAt: node.lastHeardAt }));
  }

  async resolve(node: string, why: 'returned' | 'removed', by: string): Promise<void> {
    await this.write(node, by, (latest) => (latest !== undefined && docOf(latest).state === 'lost' ? { state: why } : undefined));
  }

  /** Writes what `next` makes of the latest version (nothing when it says undefined); another node's write first: decided again on it. */
  private async write(node: string, by: string, next: (latest: StoredRecord | undefined) => LostNodeDoc | undefined): Promise<void> {
    for (;;) {
      const latest = (await this.store.records(KIND)).find((r) => r.key === node);
      const doc = next(latest);
      if (!doc) return;
      try {
        await this.store.putRecord({ kind: KIND, key: node, doc, at: this.clock.now(), by }, latest?.version ?? 0);
        return;
      } catch (err) {
        if (!(err instanceof RecordConflictError)) throw err;
      }
    }
  }
}
