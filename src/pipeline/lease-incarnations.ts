/**
 * The incarnations of the cluster's leases bucket the nodes have worked in, recorded in the store every
 * node shares (LeaseIncarnationRecords): the bucket goes with a NATS store wiped, its record does not. A
 * node started within a lease length of the bucket's recreation must not claim what a holder of the
 * bucket before may still work, but a fresh cluster's bucket is as young: only the record tells them apart.
 */
import type { LeaseIncarnationRecords } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import { RecordConflictError, type RegistryStore } from '../ports/registry.js';

const KIND = 'cluster-leases-incarnation';

/** `recreated`: it succeeded another recorded incarnation (false: the first recorded, a fresh cluster's). */
interface IncarnationDoc {
  id: string;
  recreated: boolean;
}

export class StoredLeaseIncarnations implements LeaseIncarnationRecords {
  constructor(
    private readonly store: Pick<RegistryStore, 'records' | 'putRecord'>,
    private readonly clock: Clock,
  ) {}

  async enter(bucket: string, id: string, by: string): Promise<boolean> {
    for (;;) {
      const latest = (await this.store.records(KIND)).find((r) => r.key === bucket);
      const doc = latest?.doc as IncarnationDoc | undefined;
      if (doc?.id === id) return doc.recreated;
      // A node that read the bucket before its recreation may record the old id after the new one: it
      // is then taken as created again too, which only fences a start that did not need it.
      const next: IncarnationDoc = { id, recreated: latest !== undefined };
      try {
        await this.store.putRecord({ kind: KIND, key: bucket, doc: next, at: this.clock.now(), by }, latest?.version ?? 0);
        return next.recreated;
      } catch (err) {
        // Another node's write came first: decided again on it.
        if (!(err instanceof RecordConflictError)) throw err;
      }
    }
  }
}
