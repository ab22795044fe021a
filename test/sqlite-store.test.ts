import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { FileKeyEncryptionKey, Sealer } from '../src/security/at-rest.js';
import { openReceivedRequest, rawRequestRecord, sealBatch, sealRawRequest, type StoredRequest } from '../src/security/seal-batch.js';
import { tracesContract } from './contract/traces.contract.js';
import { archiveContract } from './contract/archive.contract.js';
import { backendContract, type SyncGate } from './contract/backend.contract.js';
import { messageLogContract } from './contract/message-log.contract.js';
import { attemptId, batch, mds, message, sup } from './contract/fixtures.js';
import { publication } from './contract/publications.contract.js';
import { waitFor } from './helpers/dip-harness.js';
import { expectUpgradedInPlace, PRE_REALM_ROWS, preRealmDdl } from './helpers/pre-realm-accounts.js';
import { DurableReads } from '../src/topology/durable-reads.js';
import { describe, expect, it } from 'vitest';

/** A sync the test can hold: groups commit, but nothing is acknowledged or readable until released. */
function gatedSync(): { gate: SyncGate; durability: (done: (e: Error | null) => void) => void } {
  let held = false;
  const waiting: Array<(e: Error | null) => void> = [];
  return {
    gate: {
      hold: () => {
        held = true;
      },
      release: () => {
        held = false;
        for (const done of waiting.splice(0)) done(null);
      },
    },
    durability: (done) => (held ? waiting.push(done) : setImmediate(() => done(null))),
  };
}

/** Deletes a message row over a connection of the test's own (WAL: the store's connection sees it at its next read). */
function loseMessageIn(file: string): (messageId: number) => Promise<void> {
  return async (messageId) => {
    const raw = new Database(file);
    try {
      raw.prepare('DELETE FROM messages WHERE id = ?').run(messageId);
    } finally {
      raw.close();
    }
  };
}

backendContract('SQLite (WAL file)', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-store-')), 'dip.db');
  const { gate, durability } = gatedSync();
  return {
    backend: openSqliteBackend(file, { clock: systemClock, durability }),
    reopen: async () => openSqliteBackend(file, { clock: systemClock }),
    syncGate: gate,
    loseMessage: loseMessageIn(file),
    storedMpans: async () => {
      const raw = new Database(file, { readonly: true });
      try {
        return raw.prepare<[], { mpan: string }>('SELECT mpan FROM mpan_appointments').all().map((r) => r.mpan);
      } finally {
        raw.close();
      }
    },
  };
});

// Sealing concerns what payloads and indexes look like on disk: the log and the archive run sealed too.
const sealed = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-sealed-'));
  const file = join(dir, 'dip.db');
  const kek = new FileKeyEncryptionKey(join(dir, 'kek.key'));
  const open = async () => {
    const backend = openSqliteBackend(file, { clock: systemClock });
    backend.useSealer(await Sealer.open(kek, backend.dataKeys));
    return backend;
  };
  return { backend: await open(), reopen: open, loseMessage: loseMessageIn(file) };
};
messageLogContract('SQLite, sealed at rest', sealed);
archiveContract('SQLite, sealed at rest', sealed);
// Traces read the MPAN index and the outbound copy (routing): sealed, they go through the sealer.
tracesContract('SQLite, sealed at rest', sealed);

/**
 * Delivery processes (workers > 1) read the file over a connection of their own, which also shows what the
 * main process committed but has not yet synced: DurableReads stops them at the position the main process
 * reports durable.
 */
describe('a delivery process reads only what the main process made durable', () => {
  it('stops at the durable position while a later group waits for its sync, and reads on once it is synced', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-reader-')), 'dip.db');
    const { gate, durability } = gatedSync();
    const writer = openSqliteBackend(file, { clock: systemClock, durability });
    const reader = openSqliteBackend(file, { clock: systemClock });
    try {
      const first = message(['SUP0000001']);
      await writer.log.append(batch([first]));
      expect(writer.durableHead(sup)).toBe(1);
      const settled: number[] = [];
      let asked = 0;
      const reads = new DurableReads(reader.log, {
        cap: async (q) => {
          asked += 1;
          return writer.durableHead(q);
        },
        settle: async (q, s) => {
          settled.push(s.upTo);
          return writer.log.settle(q, s);
        },
      });

      gate.hold();
      const second = message(['SUP0000001']);
      let acknowledged = false;
      const appended = writer.log.append(batch([second])).then(() => (acknowledged = true));
      // The group commits on the next turn; its sync is held.
      await waitFor(async () => (await reader.log.readQueue(sup, 0, 10, 1 << 20)).length === 2, 5_000, 'the second group committed');
      expect(acknowledged).toBe(false);
      expect(writer.durableHead(sup)).toBe(1);
      // A plain read of the other connection would hand out the unsynced entry; the delivery process's does not.
      expect((await reads.readQueue(sup, 0, 10, 1 << 20)).map((e) => e.transactionId)).toEqual([first.transactionId]);
      expect(asked).toBe(1); // the first read of the queue asks
      expect(await reads.readQueue(sup, 1, 10, 1 << 20)).toEqual([]);
      expect(asked).toBe(1); // drained to what it was told: it waits for a wake-up instead of asking again

      gate.release();
      await appended;
      expect(writer.durableHead(sup)).toBe(2);
      expect(await reads.readQueue(sup, 1, 10, 1 << 20)).toEqual([]);
      // The main process's wake-up after the sync carries the new durable position.
      reads.learn(sup, writer.durableHead(sup));
      expect((await reads.readQueue(sup, 1, 10, 1 << 20)).map((e) => e.transactionId)).toEqual([second.transactionId]);
      expect(asked).toBe(1);
      // A wake-up lost (the process was starting): the sweep finds the queue pending, and its next drained read asks.
      const third = message(['SUP0000001']);
      await writer.log.append(batch([third]));
      expect(await reads.readQueue(sup, 2, 10, 1 << 20)).toEqual([]);
      expect(await reads.pendingQueues()).toEqual([sup]);
      expect((await reads.readQueue(sup, 2, 10, 1 << 20)).map((e) => e.transactionId)).toEqual([third.transactionId]);
      expect(asked).toBe(2);
      // Settlements go to the writer, and the reader sees them.
      await reads.settle(sup, { upTo: 3 });
      expect(settled).toEqual([3]);
      expect((await reads.queueState(sup)).ackedSeq).toBe(3);
      expect(await reads.pendingQueues()).toEqual([]);
    } finally {
      gate.release();
      await reader.close();
      await writer.close();
    }
  });

  it('opens each message once for all its recipients, not once per recipient', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-reader-'));
    const file = join(dir, 'dip.db');
    const kek = new FileKeyEncryptionKey(join(dir, 'kek.key'));
    const writer = openSqliteBackend(file, { clock: systemClock });
    const reader = openSqliteBackend(file, { clock: systemClock });
    try {
      writer.useSealer(await Sealer.open(kek, writer.dataKeys));
      const sealer = await Sealer.open(kek, reader.dataKeys);
      let opened = 0;
      reader.useSealer({ seal: (...a) => sealer.seal(...a), index: (v) => sealer.index(v), open: (...a) => (opened++, sealer.open(...a)) });
      const sent = [message(['SUP0000001', 'MDS0000001']), message(['SUP0000001', 'MDS0000001'])];
      await writer.log.append(batch(sent));
      const ids = sent.map((m) => m.transactionId);
      expect((await reader.log.readQueue(sup, 0, 10, 1 << 20)).map((e) => e.transactionId)).toEqual(ids);
      expect(opened).toBe(2);
      const second = await reader.log.readQueue(mds, 0, 10, 1 << 20);
      expect(second.map((e) => e.transactionId)).toEqual(ids);
      expect(second.map((e) => e.outbound)).toEqual(sent.map((m) => m.outbound));
      expect(opened).toBe(2);
    } finally {
      await reader.close();
      await writer.close();
    }
  });

  it('a kept message whose id a new message took after a purge is not handed out for the new one', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-reader-')), 'dip.db');
    const writer = openSqliteBackend(file, { clock: systemClock });
    const reader = openSqliteBackend(file, { clock: systemClock });
    const raw = new Database(file);
    try {
      const old = message(['SUP0000001'], { outbound: '{"old":true}' });
      await writer.log.append(batch([old]));
      expect((await reader.log.readQueue(sup, 0, 10, 1 << 20)).map((e) => e.outbound)).toEqual([old.outbound]);
      // Purged (as retention does, with its queue entries): the largest rowid is free again.
      await writer.log.settle(sup, { upTo: 1 });
      raw.exec('DELETE FROM queue_entries; DELETE FROM messages;');
      const next = message(['SUP0000001'], { outbound: '{"new":true}' });
      await writer.log.append(batch([next]));
      const read = await reader.log.readQueue(sup, 1, 10, 1 << 20);
      expect(read.map((e) => [e.transactionId, e.outbound])).toEqual([[next.transactionId, next.outbound]]);
      expect(read[0]!.messageId).toBe(1); // the id was reused: the test exercises what it means to
    } finally {
      raw.close();
      await reader.close();
      await writer.close();
    }
  });

  it('reports 0 for a queue that does not exist yet', async () => {
    const writer = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-reader-')), 'dip.db'), { clock: systemClock });
    try {
      expect(writer.durableHead(sup)).toBe(0);
    } finally {
      await writer.close();
    }
  });
});

describe('a batch sealed beforehand (on an ingest worker thread)', () => {
  it('opens raw requests sealed any way: format 1 deflated by the writer (until 2026-12-01), format 2 compressed by the sealer, format 3 with its dictionary (storage.atRest.lz4Dictionary: test/at-rest.test.ts), formats 5 and 6 bound to their batch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-raw-formats-'));
    const backend = openSqliteBackend(join(dir, 'dip.db'), { clock: systemClock });
    try {
      const kek = new FileKeyEncryptionKey(join(dir, 'kek.key'));
      const sealer = await Sealer.open(kek, backend.dataKeys);
      const body = Buffer.from(JSON.stringify([{ payload: 'x'.repeat(2000) }]));
      const row = { channel: 'IF-021', senderDipId: 'SDS0000001', receivedAt: 1, signature: '{}' };
      const record = rawRequestRecord(row);
      const format1 = sealer.seal(deflateRawSync(body, { level: 1 }), 'rawRequest', record);
      const format2 = sealer.seal(body, 'rawRequest', record, { compress: true });
      const format3 = (await Sealer.open(kek, backend.dataKeys, { lz4Dictionary: true })).seal(body, 'rawRequest', record, { compress: true });
      const format5 = sealRawRequest({ ...row, rawRequest: body }, await Sealer.open(kek, backend.dataKeys, { bindToRecord: true })) as Buffer;
      const format6 = sealRawRequest({ ...row, rawRequest: body }, await Sealer.open(kek, backend.dataKeys, { bindToRecord: true, lz4Dictionary: true })) as Buffer;
      expect([format1[0], format2[0], format3[0], format5[0], format6[0]]).toEqual([1, 2, 3, 5, 6]);
      for (const raw of [format1, format2, format3, format5, format6]) expect(openReceivedRequest({ ...row, raw }, sealer).body.equals(body)).toBe(true);
      // A bound one read as another batch's (another time, here) is refused, naming the batch it was read as.
      for (const raw of [format5, format6]) expect(() => openReceivedRequest({ ...row, receivedAt: 2, raw }, sealer)).toThrow(/raw request of batch \["SDS0000001","IF-021",2\] does not open as that record's/);
    } finally {
      await backend.close();
    }
  });

  it('is stored exactly as the store would have sealed it, after crossing a structured clone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-presealed-'));
    const file = join(dir, 'dip.db');
    const kek = new FileKeyEncryptionKey(join(dir, 'kek.key'));
    const open = async () => {
      const backend = openSqliteBackend(file, { clock: systemClock });
      const sealer = await Sealer.open(kek, backend.dataKeys);
      backend.useSealer(sealer);
      return { backend, sealer };
    };
    let { backend, sealer } = await open();
    const raw = (tag: string) => Buffer.from(JSON.stringify([{ tag, body: 'x'.repeat(500) }]));
    const presealed = { ...batch([message(['SUP0000001'], { mpan: '1111111111111' }), message(['SUP0000001'], { mpan: null })]), rawRequest: raw('pre') };
    const plain = { ...batch([message(['SUP0000001'], { mpan: '1111111111111' })]), rawRequest: raw('plain') };
    // What postMessage does to it: Buffers arrive as plain Uint8Arrays.
    const crossed = structuredClone(sealBatch(presealed, sealer));
    expect(crossed.sealed!.raw).not.toBeInstanceOf(Buffer);
    expect(await backend.log.append(crossed)).toEqual({ ok: true });
    expect(await backend.log.append(plain)).toEqual({ ok: true });
    await backend.close();

    // Reopened, nothing comes from the recent-message cache: every value goes through the sealer.
    ({ backend, sealer } = await open());
    try {
      const all = [...presealed.messages, ...plain.messages];
      expect((await backend.log.readQueue(sup, 0, 10, 1 << 20)).map((e) => e.outbound)).toEqual(all.map((m) => m.outbound));
      const q = { recipientDipId: 'SUP0000001', channel: 'IF-021', limit: 10 };
      expect((await backend.archive.findArchived({ ...q, mpan: '1111111111111' })).map((m) => m.transactionId)).toEqual([presealed.messages[0]!.transactionId, plain.messages[0]!.transactionId]);
      const db = new Database(file, { readonly: true });
      try {
        const stored = db.prepare<[], StoredRequest>('SELECT channel, sender_dip_id AS senderDipId, received_at AS receivedAt, raw, signature FROM batches ORDER BY id').all();
        expect(stored.map((r) => openReceivedRequest(r, sealer).body.toString())).toEqual([presealed.rawRequest.toString(), plain.rawRequest.toString()]);
        // Sealed at rest either way: no plaintext outbound copy or MPAN on disk.
        const rows = db.prepare<[], { outbound: unknown; mpan: string | null }>('SELECT outbound, mpan FROM messages ORDER BY id').all();
        expect(rows.every((r) => Buffer.isBuffer(r.outbound))).toBe(true);
        expect(rows.map((r) => r.mpan)).toEqual([sealer.index('1111111111111'), null, sealer.index('1111111111111')]);
      } finally {
        db.close();
      }
    } finally {
      await backend.close();
    }
  });

  it('with delivery in other processes, is read back from the file: the copies it crossed without are not kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-elsewhere-'));
    const backend = openSqliteBackend(join(dir, 'dip.db'), { clock: systemClock });
    try {
      backend.useSealer(await Sealer.open(new FileKeyEncryptionKey(join(dir, 'kek.key')), backend.dataKeys));
      backend.deliveredElsewhere();
      const b = { ...batch([message(['SUP0000001']), message(['SUP0000001'])]), rawRequest: Buffer.from('[]') };
      const presealed = sealBatch(b, await Sealer.open(new FileKeyEncryptionKey(join(dir, 'kek.key')), backend.dataKeys));
      // As src/topology/ingest-threads.ts hands it to a store that keeps no copies: only the sealed forms hold them.
      expect(await backend.log.append({ ...presealed, messages: presealed.messages.map((m) => ({ ...m, outbound: '' })) })).toEqual({ ok: true });
      expect((await backend.log.readQueue(sup, 0, 10, 1 << 20)).map((e) => e.outbound)).toEqual(b.messages.map((m) => m.outbound));
    } finally {
      await backend.close();
    }
  });

  it('is refused whole when it carries fewer sealed copies than messages', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-presealed-'));
    const backend = openSqliteBackend(join(dir, 'dip.db'), { clock: systemClock });
    try {
      const b = batch([message(['SUP0000001']), message(['SUP0000001'])]);
      const short = { ...b, sealed: { ...sealBatch(b, { seal: (v) => v, open: (v) => v, index: (v) => v }).sealed!, outbound: [b.messages[0]!.outbound] } };
      await expect(backend.log.append(short)).rejects.toThrow(/2 messages carries 1 sealed copies/);
      expect((await backend.log.queueState(sup)).headSeq).toBe(0);
    } finally {
      await backend.close();
    }
  });
});

describe('a database made before attempt IDs (2026-12-03)', () => {
  it('gets the column and its unique index on open (migrate): old records read back without an ID, new ones are stored once', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-attempt-ids-')), 'dip.db');
    const first = openSqliteBackend(file, { clock: systemClock });
    await first.log.append(batch([message(['SUP0000001'])]));
    await first.close();
    // What an older version left: the journal without the column or its index, and a record in it.
    const raw = new Database(file);
    raw.exec('DROP INDEX delivery_attempts_attempt_id; ALTER TABLE delivery_attempts DROP COLUMN attempt_id');
    expect(raw.prepare<[], { name: string }>('PRAGMA table_info(delivery_attempts)').all().map((c) => c.name)).not.toContain('attempt_id');
    raw.prepare(`INSERT INTO delivery_attempts (queue_id, first_seq, last_seq, url, started_at, latency_ms, status, verdict, error)
      VALUES ((SELECT id FROM queues), 1, 1, 'https://x', 1, 3, 503, 'retry', NULL)`).run();
    raw.close();

    const backend = openSqliteBackend(file, { clock: systemClock });
    try {
      const record = { attemptId: attemptId(), queue: sup, firstSeq: 1, lastSeq: 1, url: 'https://x', startedAt: 2, latencyMs: 3, status: 200, verdict: 'delivered' as const, error: null };
      await backend.archive.recordAttempt(record);
      await backend.archive.recordAttempt(record);
      expect((await backend.archive.attempts(sup, 10)).map((a) => [a.attemptId, a.verdict])).toEqual([
        [record.attemptId, 'delivered'],
        [null, 'retry'],
      ]);
    } finally {
      await backend.close();
    }
    // Opening again finds it all in place (migrate is idempotent).
    await openSqliteBackend(file, { clock: systemClock }).close();
  });
});

describe('a database made before pulled positions (2026-12-03)', () => {
  it('gets the column on open (migrate): an existing queue reads 0 handed out by pulls, and records pulls from then on', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-pulled-seq-')), 'dip.db');
    const first = openSqliteBackend(file, { clock: systemClock });
    await first.log.append(batch([message(['SUP0000001']), message(['SUP0000001'])]));
    await first.log.settle(sup, { upTo: 1 });
    await first.close();
    // What an older version left: the queues without the column.
    const raw = new Database(file);
    raw.exec('ALTER TABLE queues DROP COLUMN pulled_seq');
    raw.close();

    const backend = openSqliteBackend(file, { clock: systemClock });
    try {
      expect(await backend.log.queueState(sup)).toEqual({ ackedSeq: 1, headSeq: 2, pulledSeq: 0 });
      await backend.log.markPulled(sup, 2);
      expect((await backend.log.queueState(sup)).pulledSeq).toBe(2);
    } finally {
      await backend.close();
    }
    // Opening again finds it in place (migrate is idempotent), the position kept.
    const again = openSqliteBackend(file, { clock: systemClock });
    try {
      expect((await again.log.queueState(sup)).pulledSeq).toBe(2);
    } finally {
      await again.close();
    }
  });
});

describe('a database made before the acknowledged position was kept in the queue (2026-12-06)', () => {
  it("gets the columns on open (migrate), filled from the delivery journal as acknowledgements read it before: what was named is not named again, what was not still is", async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-told-seq-')), 'dip.db');
    const first = openSqliteBackend(file, { clock: systemClock });
    await first.log.append(batch([1, 2, 3, 4].map(() => message(['SUP0000001', 'MDS0000001']))));
    // The supplier acknowledged 1-2 (journalled as delivered); 3-4 then went stale, as did all of the other queue.
    await first.archive.recordAttempt({ attemptId: attemptId(), queue: sup, firstSeq: 1, lastSeq: 2, url: 'pull', startedAt: 1_000, latencyMs: 0, status: null, verdict: 'delivered', error: null });
    await first.log.settle(sup, { upTo: 2 });
    for (const q of [sup, mds]) {
      const entries = await first.log.readQueue(q, (await first.log.queueState(q)).ackedSeq, 10, 1 << 20);
      await first.log.settle(q, { upTo: 4, deadLetters: entries.map((e) => ({ seq: e.seq, messageId: e.messageId, reason: 'stale' as const, status: null, detail: 'stale' })) });
    }
    await first.close();
    // What an older version left: the queues without the columns.
    const raw = new Database(file);
    raw.exec('ALTER TABLE queues DROP COLUMN told_seq; ALTER TABLE queues DROP COLUMN told_from');
    raw.close();

    const backend = openSqliteBackend(file, { clock: systemClock });
    try {
      // The supplier's next acknowledgement accounts for 3-4 (its journal's last delivery reached 2); the
      // other queue's, with no delivery journalled, for all of it (up to 10,000 back, as before).
      expect(await backend.log.acknowledge(sup, 4)).toBe(2);
      expect(await backend.log.acknowledge(mds, 4)).toBe(0);
    } finally {
      await backend.close();
    }
    // Opening again finds them in place (migrate is idempotent), the positions kept.
    const again = openSqliteBackend(file, { clock: systemClock });
    try {
      expect(await again.log.acknowledge(sup, 4)).toBe(2);
      expect(await again.log.acknowledge(sup, 3)).toBeNull();
    } finally {
      await again.close();
    }
  });
});

describe('a database made before routed capacities were kept (2026-12-05)', () => {
  it('gets the column on open (migrate): entries queued before read no capacity (all receiving roles, as then), new ones keep theirs', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-capacity-')), 'dip.db');
    const first = openSqliteBackend(file, { clock: systemClock });
    await first.log.append(batch([message(['SUP0000001'])]));
    await first.close();
    // What an older version left: the entries without the column.
    const raw = new Database(file);
    raw.exec('ALTER TABLE queue_entries DROP COLUMN capacity');
    raw.close();

    const backend = openSqliteBackend(file, { clock: systemClock });
    try {
      await backend.log.append(batch([message(['SUP0000001'], { capacities: { SUP0000001: 'LDSO' } })]));
      expect((await backend.log.readQueue(sup, 0, 10, 1 << 20)).map((e) => e.capacity)).toEqual([null, 'LDSO']);
    } finally {
      await backend.close();
    }
  });
});

describe('a database made before webhooks recorded who registered them (2026-12-05)', () => {
  it('gets the column on open (migrate): webhooks registered before read null (not known), new ones keep who', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-registered-by-')), 'dip.db');
    const first = openSqliteBackend(file, { clock: systemClock });
    await first.registry.putWebhook({ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://a', maxMessageCount: 1, maxPayloadKb: 1, registeredBy: 'SUP0000001' });
    await first.close();
    const raw = new Database(file);
    raw.exec('ALTER TABLE webhooks DROP COLUMN registered_by');
    raw.close();

    const backend = openSqliteBackend(file, { clock: systemClock });
    try {
      await backend.registry.putWebhook({ recipientDipId: 'SUP0000001', channel: 'STATUS', url: 'https://b', maxMessageCount: 1, maxPayloadKb: 1, registeredBy: 'DCP0000001' });
      expect((await backend.registry.webhooks()).map((w) => [w.channel, w.registeredBy]).sort()).toEqual([['IF-021', null], ['STATUS', 'DCP0000001']]);
    } finally {
      await backend.close();
    }
  });
});

describe('a database made before notices were recorded queued (2026-12-03)', () => {
  it('gets the column and its index on open (migrate): existing publications read as notified, new ones await their notice', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-notice-queued-')), 'dip.db');
    const first = openSqliteBackend(file, { clock: systemClock });
    const before = publication({ publishedAt: 10 });
    await first.publications.insert(before);
    await first.close();
    // What an older version left: the publications without the column or its index.
    const raw = new Database(file);
    raw.exec('DROP INDEX publications_awaiting_notice; ALTER TABLE publications DROP COLUMN notice_queued');
    raw.close();

    const backend = openSqliteBackend(file, { clock: systemClock });
    try {
      // Its notice was queued (or it was taken back): it is never notified again.
      expect(await backend.publications.awaitingNotice(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
      const after = publication({ publishedAt: 20 });
      await backend.publications.insert(after);
      expect((await backend.publications.awaitingNotice(Number.MAX_SAFE_INTEGER, 10)).map((p) => p.id)).toEqual([after.id]);
    } finally {
      await backend.close();
    }
    // Opening again finds it in place (migrate is idempotent).
    await openSqliteBackend(file, { clock: systemClock }).close();
  });
});

describe('publication types stored in two spellings before types were read in any case', () => {
  it('gives each publisher its own spelling: the exact one first, not whichever the store reads first', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-spellings-')), 'dip.db');
    const backend = openSqliteBackend(file, { clock: systemClock });
    try {
      expect(await backend.publications.insert(publication({ publicationType: 'Duos', version: '1', publisherDipId: 'ISD0000001' }))).toEqual({ ok: true });
      // As an earlier version stored a second spelling: its own type, its own owner.
      const raw = new Database(file);
      raw.prepare("INSERT INTO publication_types (channel, publication_type, publisher_dip_id) VALUES ('REP-002', 'DUOS', 'ISD0000002')").run();
      raw.close();
      // Before: 'DUOS' was read as 'Duos' (the first row), owned by another: refused.
      expect(await backend.publications.insert(publication({ publicationType: 'DUOS', version: '1', publisherDipId: 'ISD0000002' }))).toEqual({ ok: true });
      expect(await backend.publications.insert(publication({ publicationType: 'duos', version: '2', publisherDipId: 'ISD0000001' }))).toEqual({ ok: true, publicationType: 'Duos' });
    } finally {
      await backend.close();
    }
  });
});

describe('SQLite: portal accounts of a file made before the realms', () => {
  it('are upgraded in place at the open: each account in its realm, its pending enrolment kept, the realms then apart', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-pre-realm-')), 'dip.db');
    const old = new Database(file);
    old.exec(preRealmDdl('sqlite'));
    for (const row of PRE_REALM_ROWS) old.prepare(row.sql.replace(/\$\d+/g, '?')).run(...row.values);
    old.close();
    const backend = openSqliteBackend(file, { clock: systemClock });
    try {
      await expectUpgradedInPlace(backend);
    } finally {
      await backend.close();
    }
    // Opened again: nothing to move, and what was written stays.
    const again = openSqliteBackend(file, { clock: systemClock });
    try {
      expect((await again.portalAccounts.account('operator', 'sam.admin'))?.participantDipId).toBeNull();
    } finally {
      await again.close();
    }
  });
});
