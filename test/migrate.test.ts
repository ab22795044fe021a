/**
 * Moving an embedded deployment to the cluster: export from SQLite with messages still in flight,
 * import into a new PostgreSQL database, start a cluster node on the same data directory (PKI and
 * key-encryption key): participants keep their API keys, queues their positions, messages their
 * transaction IDs, and sender references stay refused as duplicates.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseFile, keyEncryptionKey } from '../src/adapters/backend.js';
import { checkExport, writeExport } from '../src/adapters/migration-file.js';
import { systemClock } from '../src/adapters/clock.js';
import type { MigrationRecord } from '../src/adapters/migration.js';
import type { SavedReport } from '../src/domain/saved-report.js';
import type { MaintenanceSend } from '../src/ports/maintenance.js';
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

  it('carries participants, webhooks, the MPAN lookup, sender references, queues in flight (with a requeued copy and its original), registry record versions, the operator journal and portal accounts', async () => {
    // The embedded DIP: a first message is delivered, then the recipient is down (503), so three
    // messages wait in its queue, and behind them the copy of the first that the recipient requeued.
    let up = true;
    const embedded = await startTestDip();
    const sds = await embedded.participant('2000000001', ['SDS']);
    const sup = await embedded.participant('1000000001', ['SUP']);
    const r = await embedded.receiver(() => (up ? 200 : 503));
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${r.url}dip` })).status).toBe(201);
    const first = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'migrate0' });
    const firstAnswer = await sds.client.submit('IF-021', [first]);
    expect(firstAnswer.status).toBe(201);
    const original = firstAnswer.body.messageArray[0]!.transactionID!;
    await waitFor(() => r.calls.length === 1, 10_000, 'the first message delivered');
    up = false;
    const items = [1, 2, 3].map((i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `migrate${i}` }));
    const sent: string[] = [];
    for (const item of items) {
      const answer = await sds.client.submit('IF-021', [item]);
      expect(answer.status).toBe(201);
      sent.push(answer.body.messageArray[0]!.transactionID!);
    }
    const window = { datetimeFrom: new Date(Date.now() - 3600_000).toISOString().slice(0, 19) + '+00:00', datetimeTo: new Date(Date.now() + 3600_000).toISOString().slice(0, 19) + '+00:00' };
    expect((await sup.client.requeue('IF-021', sup.dipId, { ...window, transactionIDs: [original] })).status).toBe(200);
    await waitFor(async () => (await embedded.dip.backend.log.queueState({ recipientDipId: sup.dipId, channel: 'IF-021' })).headSeq === 5, 10_000, 'the requeued copy queued');
    await embedded.dip.backend.mpan.applyAppointments([{ kind: 'appoint', mpan: '1200000000009', slot: 'SUP', dipId: sup.dipId, fromMs: 0, toMs: null }]);
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    await waitFor(async () => (await embedded.dip.backend.archive.attempts(queue, 10)).some((a) => a.verdict === 'retry'), 10_000, 'a refused delivery attempt');
    expect(r.calls).toHaveLength(1);
    // Administrative state: a versioned record with its history, an operator act, a portal account.
    const backend = embedded.dip.backend;
    await backend.registry.putRecord({ kind: 'migration-test', key: 'IF-021', doc: { paused: true }, at: 1, by: 'alice' }, 0);
    await backend.registry.putRecord({ kind: 'migration-test', key: 'IF-021', doc: { paused: false }, at: 2, by: 'bob' }, 1);
    const actId = await backend.journal.append({ at: 3, actor: 'operator:alice', action: 'PATCH /admin/channels/:id', target: 'IF-021', before: { paused: true }, after: { paused: false }, status: 200 });
    const account = { username: 'sup-admin', participantDipId: sup.dipId, admin: true, displayName: 'Supplier admin', passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA', totpSecretSealed: 'c2VhbGVk', lastTotpStep: 0, sessionEpoch: 0, disabled: false, createdAt: 4, createdBy: 'operator:alice' };
    expect(await backend.portalAccounts.createAccount(account)).toBe(true);
    // Its saved report, e-mailed: its next time travels with it (no e-mail skipped or sent again by the move).
    const saved: SavedReport = { id: 'r-1', owner: 'sup-admin', participantDipId: sup.dipId, name: 'IF-021 daily', definition: { report: 'throughput', period: 'day', channels: ['IF-021'], sender: null, recipient: null }, mailing: { to: 'ops@sup.example', every: 'daily', format: 'csv' }, createdAt: 4, nextDueAt: 86_400_000 };
    expect(await backend.savedReports.create(saved, 20)).toBeNull();
    // A maintenance e-mail not sent yet, an address that confirmed and one still asked: before, none travelled,
    // so the notice was never sent and every confirmed recipient had to confirm again after the move.
    const send: MaintenanceSend = { id: 'n-1@1#0', noticeId: 'n-1', dueAt: Date.now() + 3_600_000, who: { participant: sup.dipId }, kind: 'email', to: 'admin@sup.example', subject: 'Planned maintenance', text: 'The DIP is down on Sunday.' };
    await backend.maintenanceSends.add([send]);
    const asked = { scope: 'owner:sup-admin', address: 'asked@sup.example', tokenHash: 'a'.repeat(64), requestedAt: Date.now(), expiresAt: Date.now() + 86_400_000, confirmedAt: null };
    expect(await backend.mailRecipients.ask({ ...asked, address: 'ops@sup.example', tokenHash: 'b'.repeat(64) }, Date.now(), { since: 0, max: 1_000 })).toBe('requested');
    expect(await backend.mailRecipients.confirm('b'.repeat(64), Date.now())).toEqual({ scope: 'owner:sup-admin', address: 'ops@sup.example' });
    expect(await backend.mailRecipients.ask(asked, Date.now(), { since: 0, max: 1_000 })).toBe('requested');
    // What pulls handed out travels too (as pulls before the webhook was set would have left it).
    await backend.log.markPulled(queue, 2);
    const dataDir = embedded.config.dataDir;
    const file = databaseFile(embedded.config);
    await embedded.dip.close();

    const counts: Record<string, number> = {};
    const records = [...exportSqlite(file, 0, counts)];
    // The recipient's acknowledged position travels too: a pull acknowledgement after the move names only
    // what the one before it did not.
    expect(records.find((x) => x.type === 'queue' && x.recipientDipId === sup.dipId && x.channel === 'IF-021')).toMatchObject({ toldSeq: expect.any(Number), toldFrom: expect.any(Number) });
    // The copy's original is settled, and travels all the same (no queue position): the copy's link.
    expect(counts).toMatchObject({ participant: 2, webhook: 1, mpan: 1, senderRef: 4, message: 5, entry: 4, portalAccount: 1, savedReport: 1, maintenanceSend: 1, mailRecipient: 2 });
    // A file no DIP of this release opened has no saved_reports table (schema.ts adds it at a start): exported all the
    // same, with no saved report (it had been "no such table").
    const older = join(mkdtempSync(join(tmpdir(), 'opendip-older-')), 'dip.db');
    const current = new Database(file, { readonly: true });
    writeFileSync(older, current.serialize());
    current.close();
    const olderDb = new Database(older);
    olderDb.exec('DROP TABLE saved_reports');
    olderDb.close();
    const olderCounts: Record<string, number> = {};
    expect([...exportSqlite(older, 0, olderCounts)].filter((x) => x.type === 'savedReport')).toEqual([]);
    expect(olderCounts).toMatchObject({ participant: 2, message: 5, portalAccount: 1 });
    // Each position with the capacity it was routed in, the requeued copy's its original's.
    expect(records.flatMap((x) => (x.type === 'entry' ? [x.capacity] : []))).toEqual(['SUP', 'SUP', 'SUP', 'SUP']);
    const exported = records.filter((x) => x.type === 'message');
    const copy = exported.find((x) => x.transactionId.startsWith('R-'))!.transactionId;
    expect(exported.map((x) => [x.transactionId, x.replayOf ?? null, x.replayFor ?? null])).toEqual([...sent.map((t) => [t, null, null]), [original, null, null], [copy, original, sup.dipId]]);
    // Each with the security pattern it was accepted under (a copy its original's): no copy is made clearer than that after the move.
    expect(exported.map((x) => x.securityPattern)).toEqual([1, 1, 1, 1, 1]);
    expect(counts.registryRecord).toBeGreaterThanOrEqual(2);
    expect(counts.journal).toBeGreaterThanOrEqual(1);
    expect(counts.dataKey).toBeGreaterThan(0);
    // Sealed at rest: no payload travels in the clear.
    const exportText = JSON.stringify(records);
    for (const item of [first, ...items]) expect(exportText).not.toContain(item.payload.CommonBlock.M0.MPANCore);
    // The MPAN lookup travels keyed by the index hash, as stored (the data keys travel, so the cluster finds it).
    expect(exportText).not.toContain('1200000000009');
    expect(records.filter((x) => x.type === 'message').every((x) => x.sealed)).toBe(true);
    // A copy whose original retention has purged (a replay of an old message waits with today's date, and
    // the purge takes a settled original whatever points at it): exported unlinked, as older files have it.
    // Before: the export stopped, "the replay copy … refers to missing message".
    const purged = join(mkdtempSync(join(tmpdir(), 'opendip-migrate-purged-')), 'dip.db');
    const source = new Database(file, { readonly: true });
    writeFileSync(purged, source.serialize());
    source.close();
    const edited = new Database(purged);
    edited.prepare('DELETE FROM messages WHERE transaction_id = ?').run(original);
    edited.close();
    const unlinked = [...exportSqlite(purged, 0, {})].filter((x) => x.type === 'message');
    expect(unlinked.map((x) => [x.transactionId, x.replayOf ?? null, x.replayFor ?? null])).toEqual([...sent.map((t) => [t, null, null]), [copy, null, sup.dipId]]);

    // Through the file, as `dip migrate export` and `import` do: its MAC is made and checked with this data directory's key-encryption key.
    const kek = await keyEncryptionKey(embedded.config);
    const exportFile = join(mkdtempSync(join(tmpdir(), 'opendip-migrate-file-')), 'export.jsonl');
    await writeExport(exportFile, records, kek, { source: 'test', now: () => Date.now() });
    const checked = await checkExport(exportFile, { kek });
    expect(checked.authenticated).toBe(true);
    const url = await db.freshSchema();
    const imported = await importIntoPostgres({ url, clock: systemClock }, checked.records()).finally(() => checked.close());
    expect(imported).toMatchObject({ participant: 2, message: 5, entry: 4, portalAccount: 1, registryRecord: counts.registryRecord, savedReport: 1, journal: counts.journal, maintenanceSend: 1, mailRecipient: 2 });

    // A cluster node on the same data directory: the same PKI and key-encryption key.
    up = true;
    const cluster = await startTestDip({ storage: { ...DEFAULTS.storage, kind: 'cluster', postgres: { ...DEFAULTS.storage.postgres, url, poolSize: 4 }, nats: { ...DEFAULTS.storage.nats, servers: NATS_SERVERS, prefix } } }, dataDir);
    try {
      const before = r.calls.length;
      const delivered = () => r.calls.slice(before).flatMap((c) => c.messages.map((m) => (m as Json).payload.CommonBlock.D0.transactionID as string));
      await waitFor(() => new Set(delivered()).size === 4 && r.calls.at(-1)!.lastSeq === 5, 20_000, 'the queue in flight delivered by the cluster');
      expect([...new Set(delivered())]).toEqual([...sent, copy]);
      expect((await cluster.dip.backend.log.readQueue(queue, 1, 10, 1 << 20)).map((e) => [e.capacity, e.securityPattern])).toEqual([['SUP', 1], ['SUP', 1], ['SUP', 1], ['SUP', 1]]);
      // The copy is still a copy of its original, for its one recipient: a status message about it names the
      // original to the sender (before: replayOf null, and every recipient of the queue might name it).
      const ofOriginal = await cluster.dip.backend.archive.transactionParties(original);
      expect(ofOriginal?.senderUniqueReference).toEqual(expect.any(String));
      expect(await cluster.dip.backend.archive.transactionParties(copy)).toMatchObject({ replayOf: original, recipients: [sup.dipId], senderUniqueReference: ofOriginal!.senderUniqueReference });
      expect((await cluster.dip.backend.log.queueState(queue)).pulledSeq).toBe(2);
      // The sender's API key and certificate still work; its references are still known.
      const client = new DipClient({ baseUrl: cluster.dip.url, apiKey: sds.apiKey, keyPem: sds.credentials.keyPem, certPem: sds.credentials.certPem, caPem: cluster.dip.pki.ca.certPem });
      const again = await client.submit('IF-021', [items[0]!]);
      await client.close();
      expect(again.status).toBe(400);
      expect(JSON.stringify(again.body)).toContain('MSG1006');
      expect((await cluster.dip.backend.mpan.mpanHistory('1200000000009')).map((a) => a.dipId)).toEqual([sup.dipId]);
      // Who registered the webhook travels (a connection provider's go when its nomination does).
      expect((await cluster.dip.backend.registry.webhooks()).map((w) => [w.recipientDipId, w.channel, w.registeredBy])).toEqual([[sup.dipId, 'IF-021', sup.dipId]]);
      // Every version of a record, the journal with its IDs (and new acts after them), the portal account.
      const history = await cluster.dip.backend.registry.recordHistory('migration-test', 'IF-021');
      expect(history.map((h) => [h.version, h.doc, h.by])).toEqual([[1, { paused: true }, 'alice'], [2, { paused: false }, 'bob']]);
      const [act] = await cluster.dip.backend.journal.entries({ actor: 'operator:alice', limit: 1 });
      expect(act).toMatchObject({ id: actId, action: 'PATCH /admin/channels/:id', before: { paused: true }, after: { paused: false }, status: 200 });
      expect(await cluster.dip.backend.journal.append({ at: 5, actor: 'operator:bob', action: 'x', target: 'y', before: null, after: null, status: 200 })).toBeGreaterThan(actId);
      expect(await cluster.dip.backend.portalAccounts.account('user', 'sup-admin')).toEqual(account);
      expect(await cluster.dip.backend.savedReports.list('sup-admin')).toEqual([saved]);
      // The maintenance e-mail is still to be sent, once; the confirmed address stays confirmed, the open link still confirms.
      expect(await cluster.dip.backend.maintenanceSends.due(send.dueAt, 10)).toEqual([send]);
      expect(await cluster.dip.backend.mailRecipients.confirmed('owner:sup-admin', 'ops@sup.example')).toBe(true);
      expect(await cluster.dip.backend.mailRecipients.confirm('a'.repeat(64), Date.now())).toEqual({ scope: 'owner:sup-admin', address: 'asked@sup.example' });
    } finally {
      await cluster.close();
    }
  });
  it('refuses a message record whose security pattern is not 1, 2 or 3 (a hand-edited export would give a clear copy), naming the record', async () => {
    const url = await db.freshSchema();
    const message = (transactionId: string, securityPattern: unknown) => ({
      type: 'message', id: 1, transactionId, channel: 'IF-021', eventCode: 'E', senderDipId: '2000000001', senderRole: 'SDS', senderRef: null, correlationId: null, mpan: null, receivedAt: Date.now(), outbound: '', sealed: false, securityPattern,
    });
    for (const bad of ['2', 0, 4]) {
      async function* stream() {
        yield message('T-OK', 2) as unknown as MigrationRecord;
        yield message('T-BAD', bad) as unknown as MigrationRecord;
      }
      await expect(importIntoPostgres({ url, clock: systemClock }, stream())).rejects.toThrow(`record 2 (message T-BAD): securityPattern ${JSON.stringify(bad)} is not 1, 2 or 3 (null or absent: read from what was stored)`);
    }
  });
});
