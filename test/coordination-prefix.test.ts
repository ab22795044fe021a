/**
 * Every node of a cluster's database coordinates under one NATS prefix (src/pipeline/coordination-prefix.ts).
 * A probe restarted one of two nodes with another storage.nats.prefix: each node then held the queue's
 * lease in its own bucket, both worked it, and 76 of 206 messages were delivered twice, with nothing
 * logged. Now the first node records its prefix in the database and a node with another refuses to start.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { DEFAULTS, type DipConfig } from '../src/config.js';
import { agreeOnCoordinationPrefix } from '../src/pipeline/coordination-prefix.js';
import { startTestDip } from './helpers/dip-harness.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

describe('one NATS prefix per cluster database', () => {
  let db: TestDatabase;
  const prefix = testPrefix();
  const other = testPrefix();
  beforeAll(async () => {
    db = await createTestDatabase('opendip_prefix');
  });
  afterAll(async () => {
    await db?.drop();
    await deleteBuckets(prefix);
    await deleteBuckets(other);
  });

  it('records the first node’s prefix, takes it again, and refuses another naming both and how to change', async () => {
    const backend = await openPostgresBackend({ url: await db.freshSchema(), clock: systemClock });
    try {
      // Two nodes starting at once: both agree on whichever recorded first.
      await Promise.all([agreeOnCoordinationPrefix(backend.registry, 'dip', 1), agreeOnCoordinationPrefix(backend.registry, 'dip', 2)]);
      await agreeOnCoordinationPrefix(backend.registry, 'dip', 3);
      const refused = await agreeOnCoordinationPrefix(backend.registry, 'dipb', 4).then(() => null, (e: Error) => e.message);
      expect(refused).toContain("storage.nats.prefix is 'dipb', but the nodes of this database coordinate under 'dip'");
      expect(refused).toContain("DELETE FROM registry_records WHERE kind = 'cluster' AND key = 'coordination'");
    } finally {
      await backend.close();
    }
  });

  it('a node started with another prefix than its database’s does not start', async () => {
    const url = await db.freshSchema();
    const storage = (p: string): DipConfig['storage'] => ({ ...DEFAULTS.storage, kind: 'cluster', postgres: { ...DEFAULTS.storage.postgres, url, poolSize: 2 }, nats: { ...DEFAULTS.storage.nats, servers: NATS_SERVERS, prefix: p } });
    const dataDir = mkdtempSync(join(tmpdir(), 'opendip-prefix-'));
    const first = await startTestDip({ storage: storage(prefix) }, dataDir);
    try {
      const second = await startTestDip({ storage: storage(other) }, dataDir).then(
        async (t) => {
          await t.close();
          return null;
        },
        (e: Error) => e.message,
      );
      expect(second).toContain(`coordinate under '${prefix}'`);
    } finally {
      await first.close();
    }
  }, 60_000);
});
