import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { DEFAULTS, type DipConfig } from '../../src/config.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './nats.js';
import { createTestDatabase } from './postgres.js';

export interface PublicationBackend {
  name: string;
  storage: () => Promise<{ storage?: DipConfig['storage']; cleanup: () => Promise<void> }>;
}

/**
 * The embedded store, and the cluster's (PostgreSQL, publication bytes in a JetStream Object Store):
 * storage settings and their clean-up, for a test of Pattern B on both. `database` names the fresh database.
 */
export function publicationBackends(database: string): PublicationBackend[] {
  return [
    { name: 'SQLite', storage: async () => ({ cleanup: async () => {} }) },
    {
      name: 'PostgreSQL + NATS',
      storage: async () => {
        const db = await createTestDatabase(database);
        const prefix = testPrefix();
        const storage = { ...DEFAULTS.storage, kind: 'cluster' as const, postgres: { url: await db.freshSchema(), poolSize: 4 }, nats: { ...DEFAULTS.storage.nats, servers: NATS_SERVERS, prefix } };
        return {
          storage,
          cleanup: async () => {
            await db.drop();
            await deleteBuckets(prefix);
            const nc = await connect({ servers: NATS_SERVERS });
            await (await jetstreamManager(nc)).streams.delete(`OBJ_${prefix}_publications`).catch(() => false);
            await nc.close();
          },
        };
      },
    },
  ];
}
