import { RecordConflictError, type RegistryStore } from '../ports/registry.js';

/** The registry record naming the NATS prefix the nodes of this database coordinate under. */
export const COORDINATION_RECORD = { kind: 'cluster', key: 'coordination' } as const;

interface CoordinationDoc {
  natsPrefix: string;
}

/**
 * A cluster node's NATS prefix must be the one every other node of its database uses. Queue leases are
 * kept in NATS under the prefix: a node started with another one (a configuration changed on one node
 * in a rolling restart) finds every lease free and works every queue it sees an arrival for, beside the
 * node that holds it in the other bucket. A probe saw 76 of 206 messages delivered twice, both nodes
 * saying they worked the queue, and nothing logged. So the first node records its prefix in the shared
 * registry, and a node whose prefix differs refuses to start, saying how to change it for the cluster.
 */
export async function agreeOnCoordinationPrefix(registry: Pick<RegistryStore, 'records' | 'putRecord'>, prefix: string, at: number): Promise<void> {
  for (;;) {
    const found = (await registry.records(COORDINATION_RECORD.kind)).find((r) => r.key === COORDINATION_RECORD.key);
    if (found) {
      const agreed = (found.doc as CoordinationDoc).natsPrefix;
      if (agreed === prefix) return;
      throw new Error(
        `storage.nats.prefix is '${prefix}', but the nodes of this database coordinate under '${agreed}' (queue leases, wake-ups, replay guard): ` +
          `a node with another prefix would work queues another node holds, and deliver messages twice. Give this node storage.nats.prefix '${agreed}'; ` +
          `to move the whole cluster to '${prefix}', stop every node first, then run DELETE FROM registry_records WHERE kind = '${COORDINATION_RECORD.kind}' AND key = '${COORDINATION_RECORD.key}' in its database (README "Scale-out")`,
      );
    }
    try {
      await registry.putRecord({ ...COORDINATION_RECORD, doc: { natsPrefix: prefix } satisfies CoordinationDoc, at, by: 'node' }, 0);
      return;
    } catch (err) {
      // Another node recorded its prefix first: compare with that one.
      if (!(err instanceof RecordConflictError)) throw err;
    }
  }
}
