/**
 * Moving an embedded deployment to the cluster: export from SQLite with messages still in flight,
 * import into a new PostgreSQL database, start a cluster node on the same data directory (PKI and
 * key-encryption key): participants keep their API keys, queues their positions, messages their
 * transaction IDs, and sender references stay refused as duplicates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseFile } from '../src/adapters/backend.js';
import { systemClock } from '../src/adapters/clock.js';
import { importIntoPostgres } from '../src/adapters/postgres/import.js';
import { exportSqlite } from '../src/adapters/sqlite/export.js';
import { DipClient } from '../src/client/dip-client.js';
import { DEFAULTS } from '../src/config.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor } from './helpers/dip-harness.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

type Json = Record<string, any>;

describe('dip migrate: SQLite to the cluster', () => {
  let db: TestDatabase;
  const prefix = testPrefix();
  beforeAll(async () => {
    db = await createTestDatabase('opendip_migrate');
  });
  afterAll(async () => {
    await db?.drop();
    await deleteBuckets(prefix);
  });

  it('carries participants, webhooks, the MPAN lookup, sender references and queues in flight', async () => {
    // The embedded DIP: the recipient is down (503), so three messages wait in its queue.
    let up = false;
    const embedded = await startTestDip();
    const sds = await embedded.participant('2000000001', ['SDS']);
    const sup = await embedded.participant('1000000001', ['SUP']);
    const r = await embedded.receiver(() => (up ? 200 : 503));
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${r.url}dip` })).status).toBe(201);
    const items = [1, 2, 3].map((i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `migrate${i}` }));
    const sent: string[] = [];
    for (const item of items) {
      const answer = await sds.client.submit('IF-021', [item]);
      expect(answer.status).toBe(201);
      sent.push(answer.body.messageArray[0]!.transactionID!);
    }
    await embedded.dip.backend.mpan.applyAppointments([{ kind: 'appoint', mpan: '1200000000009', slot: 'SUP', dipId: sup.dipId, fromMs: 0, toMs: null }]);
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    await waitFor(async () => (await embedded.dip.backend.archive.attempts(queue, 1)).length > 0, 10_000, 'a refused delivery attempt');
    expect(r.calls).toEqual([]);
    const dataDir = embedded.config.dataDir;
    const file = databaseFile(embedded.config);
    await embedded.dip.close();

    const counts: Record<string, number> = {};
    const records = [...exportSqlite(file, 0, counts)];
    expect(counts).toMatchObject({ participant: 2, webhook: 1, mpan: 1, senderRef: 3, message: 3, entry: 3 });
    expect(counts.dataKey).toBeGreaterThan(0);
    // Sealed at rest: no payload travels in the clear.
    const exportText = JSON.stringify(records);
    for (const item of items) expect(exportText).not.toContain(item.payload.CommonBlock.M0.MPANCore);
    expect(records.filter((x) => x.type === 'message').every((x) => x.sealed)).toBe(true);

    const url = await db.freshSchema();
    async function* stream() {
      yield* records;
    }
    const imported = await importIntoPostgres({ url, clock: systemClock }, stream());
    expect(imported).toMatchObject({ participant: 2, message: 3, entry: 3 });

    // A cluster node on the same data directory: the same PKI and key-encryption key.
    up = true;
    const cluster = await startTestDip({ storage: { ...DEFAULTS.storage, kind: 'cluster', postgres: { url, poolSize: 4 }, nats: { ...DEFAULTS.storage.nats, servers: NATS_SERVERS, prefix } } }, dataDir);
    try {
      const delivered = () => r.calls.flatMap((c) => c.messages.map((m) => (m as Json).payload.CommonBlock.D0.transactionID as string));
      await waitFor(() => new Set(delivered()).size === 3 && r.calls.at(-1)!.lastSeq === 3, 20_000, 'the queue in flight delivered by the cluster');
      expect([...new Set(delivered())]).toEqual(sent);
      // The sender's API key and certificate still work; its references are still known.
      const client = new DipClient({ baseUrl: cluster.dip.url, apiKey: sds.apiKey, keyPem: sds.credentials.keyPem, certPem: sds.credentials.certPem, caPem: cluster.dip.pki.ca.certPem });
      const again = await client.submit('IF-021', [items[0]!]);
      await client.close();
      expect(again.status).toBe(400);
      expect(JSON.stringify(again.body)).toContain('MSG1006');
      expect((await cluster.dip.backend.mpan.mpanHistory('1200000000009')).map((a) => a.dipId)).toEqual([sup.dipId]);
    } finally {
      await cluster.close();
    }
  });
});
