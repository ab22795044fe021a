/**
 * Values sealed at rest are bound to the record they belong to (formats 4-6, src/security/at-rest.ts):
 * someone who can write the database, or who edits an export by hand, used to be able to swap two
 * messages' sealed copies (or two batches' raw requests) and have each open cleanly as the other's. Bound,
 * the swapped value does not open, and the reader is told which record.
 */
import Database from 'better-sqlite3';
import Fastify from 'fastify';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import type { MigrationRecord } from '../src/adapters/migration.js';
import { importIntoPostgres } from '../src/adapters/postgres/import.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { exportSqlite } from '../src/adapters/sqlite/export.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import type { Backend } from '../src/ports/backend.js';
import type { AcceptedMessage } from '../src/ports/message-log.js';
import { FileKeyEncryptionKey, Sealer, type SealerOptions } from '../src/security/at-rest.js';
import { PortalAccountService } from '../src/pipeline/portal-accounts.js';
import { ArchiveKeysNotLoaded, ORIGINAL_TRANSACTION_FIELD, Replay } from '../src/pipeline/replay.js';
import { Reports } from '../src/pipeline/reports.js';
import { hashPassword, newPassword, newTotpSecret, totpCode } from '../src/security/portal-credentials.js';
import { evidenceRoutes } from '../src/api/admin-evidence.js';
import { FakeClock } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { batch, message, sup } from './contract/fixtures.js';
import { databaseForDescribe, queryOnce } from './helpers/postgres.js';

const BOUND = { bindToRecord: true } satisfies SealerOptions;

/** Where a test's store keeps its rows, for the swap an attacker with write access makes behind its back. */
interface Behind {
  /** Exchanges two messages' stored outbound copies. */
  swapCopies(a: string, b: string): Promise<void>;
  /** Exchanges the raw requests of the batches of two messages. */
  swapRaw(a: string, b: string): Promise<void>;
  /** The format byte each message's copy is stored in. */
  formats(): Promise<number[]>;
  /** Rewrites one message's stored copy with `change` (a flipped byte, another key's ID). */
  alterCopy(transactionId: string, change: (sealed: Buffer) => Buffer): Promise<void>;
  /** Rewrites the stored raw request of one message's batch with `change`. */
  alterRaw(transactionId: string, change: (sealed: Buffer) => Buffer): Promise<void>;
}

function sqliteBehind(file: string): Behind {
  const run = <T>(f: (db: Database.Database) => T): T => {
    const db = new Database(file);
    try {
      return f(db);
    } finally {
      db.close();
    }
  };
  return {
    swapCopies: async (a, b) =>
      run((db) => {
        const get = db.prepare<[string], { outbound: Buffer }>('SELECT outbound FROM messages WHERE transaction_id = ?');
        const [ca, cb] = [get.get(a)!.outbound, get.get(b)!.outbound];
        const set = db.prepare('UPDATE messages SET outbound = ? WHERE transaction_id = ?');
        set.run(cb, a);
        set.run(ca, b);
      }),
    swapRaw: async (a, b) =>
      run((db) => {
        const get = db.prepare<[string], { id: number; raw: Buffer }>('SELECT b.id, b.raw FROM batches b JOIN messages m ON m.batch_id = b.id WHERE m.transaction_id = ?');
        const [ra, rb] = [get.get(a)!, get.get(b)!];
        const set = db.prepare('UPDATE batches SET raw = ? WHERE id = ?');
        set.run(rb.raw, ra.id);
        set.run(ra.raw, rb.id);
      }),
    formats: async () => run((db) => db.prepare<[], { outbound: Buffer }>('SELECT outbound FROM messages ORDER BY id').all().map((r) => r.outbound[0]!)),
    alterCopy: async (tx, change) =>
      run((db) => {
        const { outbound } = db.prepare<[string], { outbound: Buffer }>('SELECT outbound FROM messages WHERE transaction_id = ?').get(tx)!;
        db.prepare('UPDATE messages SET outbound = ? WHERE transaction_id = ?').run(change(outbound), tx);
      }),
    alterRaw: async (tx, change) =>
      run((db) => {
        const { id, raw } = db.prepare<[string], { id: number; raw: Buffer }>('SELECT b.id, b.raw FROM batches b JOIN messages m ON m.batch_id = b.id WHERE m.transaction_id = ?').get(tx)!;
        db.prepare('UPDATE batches SET raw = ? WHERE id = ?').run(change(raw), id);
      }),
  };
}

function postgresBehind(url: string): Behind {
  return {
    swapCopies: async (a, b) => {
      await queryOnce(
        url,
        `UPDATE messages m SET outbound = o.outbound FROM messages o
          WHERE (m.transaction_id, o.transaction_id) IN (($1, $2), ($2, $1))`,
        [a, b],
      );
    },
    swapRaw: async (a, b) => {
      await queryOnce(
        url,
        `WITH pair AS (SELECT ba.id AS x, bb.id AS y FROM messages ma JOIN batches ba ON ba.id = ma.batch_id, messages mb JOIN batches bb ON bb.id = mb.batch_id
                        WHERE ma.transaction_id = $1 AND mb.transaction_id = $2)
         UPDATE batches t SET raw = s.raw FROM pair, batches s WHERE (t.id, s.id) IN ((pair.x, pair.y), (pair.y, pair.x))`,
        [a, b],
      );
    },
    formats: async () => (await queryOnce<{ outbound: Buffer }>(url, 'SELECT outbound FROM messages ORDER BY id')).map((r) => r.outbound[0]!),
    alterCopy: async (tx, change) => {
      const [{ outbound }] = (await queryOnce<{ outbound: Buffer }>(url, 'SELECT outbound FROM messages WHERE transaction_id = $1', [tx])) as [{ outbound: Buffer }];
      await queryOnce(url, 'UPDATE messages SET outbound = $1 WHERE transaction_id = $2', [change(outbound), tx]);
    },
    alterRaw: async (tx, change) => {
      const [{ id, raw }] = (await queryOnce<{ id: number; raw: Buffer }>(url, 'SELECT b.id, b.raw FROM batches b JOIN messages m ON m.batch_id = b.id WHERE m.transaction_id = $1', [tx])) as [{ id: number; raw: Buffer }];
      await queryOnce(url, 'UPDATE batches SET raw = $1 WHERE id = $2', [change(raw), id]);
    },
  };
}

const kekIn = (dir: string) => new FileKeyEncryptionKey(join(dir, 'kek.key'));

/** Two batches of one message each (two raw requests), stored by a sealer with `options`. */
async function twoBatches(backend: Backend, sealer: Sealer): Promise<[AcceptedMessage, AcceptedMessage]> {
  backend.useSealer(sealer);
  const a = message([sup.recipientDipId], { outbound: '{"body":"of A"}' });
  const b = message([sup.recipientDipId], { outbound: '{"body":"of B"}' });
  expect(await backend.log.append({ ...batch([a]), rawRequest: Buffer.from('[{"raw":"A"}]'), receivedAt: 1_000 })).toEqual({ ok: true });
  expect(await backend.log.append({ ...batch([b]), rawRequest: Buffer.from('[{"raw":"B"}]'), receivedAt: 2_000 })).toEqual({ ok: true });
  return [a, b];
}

async function swappedRefused(backend: Backend, behind: Behind, dir: string): Promise<void> {
  const [a, b] = await twoBatches(backend, await Sealer.open(kekIn(dir), backend.dataKeys, BOUND));
  expect(await behind.formats()).toEqual([5, 5]);
  await behind.swapCopies(a.transactionId, b.transactionId);
  await behind.swapRaw(a.transactionId, b.transactionId);
  // Each swapped copy is refused where it is read, naming the message it was read as: never served as the other's.
  const read = await backend.log.readQueue(sup, 0, 10, 1 << 20);
  expect(read.map((e) => [e.transactionId, e.outbound, e.unreadable])).toEqual([a, b].map((m) => [m.transactionId, '', expect.stringContaining(`sealed outbound copy of message ${m.transactionId} does not open as that record's`)]));
  // The archive's readers (replay, reports) skip such a row and say why, reading the others: unreadableSkipped.
  expect((await backend.archive.findArchived({ ...sup, limit: 10 })).map((m) => [m.outbound, m.unreadable])).toEqual([a, b].map((m) => ['', expect.stringContaining(`outbound copy of message ${m.transactionId} does not open`)]));
  await expect(backend.archive.receivedRequest(a.transactionId)).rejects.toThrow(/raw request of batch \["SDS0000001","IF-021",1000\] does not open as that record's/);
  // Swapped back, both open as before: the rows were never damaged, only moved.
  await behind.swapCopies(a.transactionId, b.transactionId);
  await behind.swapRaw(a.transactionId, b.transactionId);
  expect((await backend.archive.findArchived({ ...sup, limit: 10 })).map((m) => m.outbound)).toEqual([a.outbound, b.outbound]);
  expect((await backend.archive.receivedRequest(b.transactionId))?.body.toString()).toBe('[{"raw":"B"}]');
}

/**
 * One archived copy that does not open (altered: GCM's tag or the record binding fails; or naming a data
 * key this DIP does not hold) is skipped by a replay page, a requeue and a report's journey, which serve
 * the rest and say what they skipped: it used to fail the whole answer (a 500).
 */
async function unreadableSkipped(backend: Backend, behind: Behind, dir: string): Promise<void> {
  backend.useSealer(await Sealer.open(kekIn(dir), backend.dataKeys, BOUND));
  const wrapped = (tag: string) => {
    const m = message([sup.recipientDipId]);
    return { ...m, outbound: JSON.stringify({ payload: { CommonBlock: { D0: { transactionID: m.transactionId }, A0: { primaryRecipients: [sup.recipientDipId] } }, CustomBlock: { tag } } }) };
  };
  const [a, altered, unkeyed, d] = [wrapped('a'), wrapped('altered'), wrapped('unkeyed'), wrapped('d')];
  expect(await backend.log.append(batch([a, altered, unkeyed, d]))).toEqual({ ok: true });
  await behind.alterCopy(altered.transactionId, (sealed) => Buffer.concat([sealed.subarray(0, -1), Buffer.from([sealed.at(-1)! ^ 1])]));
  const underKey4242 = (sealed: Buffer) => {
    const other = Buffer.from(sealed);
    other.writeUInt32BE(4242, 1);
    return other;
  };
  await behind.alterCopy(unkeyed.transactionId, underKey4242);
  const skipped: Array<{ reader: string; rows: string[] }> = [];
  const replay = new Replay(backend.log, backend.archive, { copyFor: async (_queue, { outbound }) => outbound }, systemClock, undefined, () => {}, undefined, undefined, (reader, rows) =>
    skipped.push({ reader, rows: rows.map((r) => r.transactionId) }),
  );
  const filter = { fromMs: 0, toMs: Date.now() + 60_000, eventCode: null, mpan: null, transactionIds: null };
  // Key 4242 might be one rotated elsewhere since: the first page asks to be sent again (503 + Retry-After)
  // while the key ring is read again. That read does not find it, so it never was a key: the header is
  // damaged, and the page sent again skips the row and names it (it answered 503 for ever).
  await expect(replay.replay(sup, filter)).rejects.toBeInstanceOf(ArchiveKeysNotLoaded);
  await waitFor(async () => (await backend.archive.findArchived({ ...sup, limit: 10 })).some((m) => m.unreadable !== undefined && m.keyNotLoaded === undefined && m.transactionId === unkeyed.transactionId), 10_000, 'the key ring read again');
  const page = await replay.replay(sup, filter);
  expect(page.copies.map((c) => (JSON.parse(c) as Record<string, unknown>)[ORIGINAL_TRANSACTION_FIELD])).toEqual([a.transactionId, d.transactionId]);
  expect(page.next).toBeNull();
  expect(page.unreadable).toEqual([
    { transactionId: altered.transactionId, why: expect.stringContaining(`outbound copy of message ${altered.transactionId} does not open`) },
    { transactionId: unkeyed.transactionId, why: expect.stringContaining('data key 4242') },
  ]);
  const requeued = await replay.requeue(sup, filter);
  expect(requeued).toEqual({ requeued: 2, unreadable: page.unreadable });
  expect(skipped).toEqual([
    { reader: 'replay', rows: [altered.transactionId, unkeyed.transactionId] },
    { reader: 'requeue', rows: [altered.transactionId, unkeyed.transactionId] },
  ]);
  // A report's journey: the rest of the trace, the routing unknown and the reason named.
  const traced = await backend.traces.trace({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, channels: ['IF-021'], sender: a.senderDipId, limit: 100, withRouting: true });
  const byTx = new Map(traced.map((t) => [t.transactionId, t]));
  expect(byTx.get(a.transactionId)).toMatchObject({ routing: { primary: [sup.recipientDipId] } });
  expect(byTx.get(a.transactionId)!.unreadable).toBeUndefined();
  expect(byTx.get(altered.transactionId)).toMatchObject({ routing: null, unreadable: expect.stringContaining('does not open') });
  expect(byTx.get(unkeyed.transactionId)).toMatchObject({ routing: null, unreadable: expect.stringContaining('data key 4242') });
  // The evidence of a request whose stored raw request names key 4242: 422 naming it, counted (it was 503 for ever).
  await behind.alterRaw(a.transactionId, underKey4242);
  let counted = 0;
  const app = Fastify({ logger: false });
  await app.register(evidenceRoutes, { archive: backend.archive, signatureSkewMs: 300_000, logger: { warn: () => undefined }, unreadableSeen: () => void (counted += 1) });
  try {
    const res = await app.inject({ method: 'GET', url: `/admin/evidence/${a.transactionId}` });
    expect([res.statusCode, res.headers['x-opendip-unreadable'], counted]).toEqual([422, '1', 1]);
    expect(res.json<{ error: string }>().error).toContain('data key 4242, which this DIP never held');
  } finally {
    await app.close();
  }
  const journeys = new Reports(backend.traces, { history: async () => [] }, () => Date.now(), 'DIP0000001');
  const journey = await journeys.journey({ kind: 'operator' }, altered.transactionId);
  expect(journey.ok && journey.value.events.find((e) => e.event === 'unreadable')?.detail).toContain('could not be opened');
}

/** Values stored unbound (formats 1-3: before this version, or with storage.atRest.bindToRecord off) open as they always did. */
async function unboundStillOpen(backend: Backend, behind: Behind, dir: string): Promise<void> {
  const [a, b] = await twoBatches(backend, await Sealer.open(kekIn(dir), backend.dataKeys, { bindToRecord: false }));
  expect(await behind.formats()).toEqual([2, 2]);
  backend.useSealer(await Sealer.open(kekIn(dir), backend.dataKeys, BOUND));
  expect((await backend.log.readQueue(sup, 0, 10, 1 << 20)).map((e) => e.outbound)).toEqual([a.outbound, b.outbound]);
  expect((await backend.archive.receivedRequest(a.transactionId))?.body.toString()).toBe('[{"raw":"A"}]');
}

describe('a sealed value swapped into another record does not open there', () => {
  /** `check` on a new SQLite store, with the rows behind it and its directory (for its key-encryption key). */
  const onNewFile = (check: typeof swappedRefused) => async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-sealbind-'));
    const backend = openSqliteBackend(join(dir, 'dip.db'), { clock: systemClock });
    backend.deliveredElsewhere(); // no appended copy kept in memory: every read opens the row, as after a restart
    try {
      await check(backend, sqliteBehind(join(dir, 'dip.db')), dir);
    } finally {
      await backend.close();
    }
  };

  it('SQLite: swapped copies and raw requests are refused, naming the record', onNewFile(swappedRefused));

  it('SQLite: unbound values (formats 1-3) still open', onNewFile(unboundStillOpen));

  it('SQLite: one copy that does not open is skipped by replay, requeue and a journey; the rest are served', onNewFile(unreadableSkipped));

  describe('PostgreSQL', () => {
    const test = databaseForDescribe();

    /** `check` on a backend over a fresh schema, with the rows behind it and a directory for its key-encryption key. */
    const onFreshSchema = (check: typeof swappedRefused) => async () => {
      const url = await test.freshSchema();
      const backend = await openPostgresBackend({ url, clock: systemClock });
      try {
        await check(backend, postgresBehind(url), mkdtempSync(join(tmpdir(), 'opendip-sealbind-')));
      } finally {
        await backend.close();
      }
    };

    it('PostgreSQL: swapped copies and raw requests are refused, naming the record', onFreshSchema(swappedRefused));

    it('PostgreSQL: unbound values (formats 1-3) still open', onFreshSchema(unboundStillOpen));

    it('PostgreSQL: one copy that does not open is skipped by replay, requeue and a journey; the rest are served', onFreshSchema(unreadableSkipped));

    it('export to import carries bound copies unchanged; copies swapped in the export are refused after the move', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'opendip-sealbind-'));
      const file = join(dir, 'dip.db');
      const embedded = openSqliteBackend(file, { clock: systemClock });
      let a: AcceptedMessage, b: AcceptedMessage;
      try {
        [a, b] = await twoBatches(embedded, await Sealer.open(kekIn(dir), embedded.dataKeys, BOUND));
      } finally {
        await embedded.close();
      }
      const exported = [...exportSqlite(file, 0)];
      const messages = exported.filter((r): r is Extract<MigrationRecord, { type: 'message' }> => r.type === 'message');
      expect(messages.map((m) => Buffer.from(m.outbound, 'base64')[0])).toEqual([5, 5]);
      const records = async function* (list: MigrationRecord[]) {
        yield* list;
      };

      // As exported: the cluster opens each copy as its message's (the key is the transaction ID, no row id).
      const url = await test.freshSchema();
      await importIntoPostgres({ url, clock: systemClock }, records(exported));
      const cluster = await openPostgresBackend({ url, clock: systemClock });
      try {
        cluster.useSealer(await Sealer.open(kekIn(dir), cluster.dataKeys, BOUND));
        expect((await postgresBehind(url).formats())).toEqual([5, 5]);
        expect((await cluster.log.readQueue(sup, 0, 10, 1 << 20)).map((e) => [e.transactionId, e.outbound])).toEqual([a, b].map((m) => [m.transactionId, m.outbound]));
      } finally {
        await cluster.close();
      }

      // The export edited by hand, the two copies exchanged: neither opens as the other's after the move.
      const [ma, mb] = messages;
      const edited = exported.map((r) => (r === ma ? { ...ma, outbound: mb!.outbound } : r === mb ? { ...mb, outbound: ma!.outbound } : r));
      const url2 = await test.freshSchema();
      await importIntoPostgres({ url: url2, clock: systemClock }, records(edited));
      const swapped = await openPostgresBackend({ url: url2, clock: systemClock });
      try {
        swapped.useSealer(await Sealer.open(kekIn(dir), swapped.dataKeys, BOUND));
        expect((await swapped.log.readQueue(sup, 0, 10, 1 << 20)).map((e) => e.unreadable)).toEqual([a, b].map((m) => expect.stringContaining(`outbound copy of message ${m.transactionId} does not open`)));
      } finally {
        await swapped.close();
      }
    });
  });
});

describe("a portal account's TOTP secret is bound to the account", () => {
  it("one copied from another account (whose codes its copier can make) does not sign in, and says whose it was read as", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-sealbind-'));
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const backend = openSqliteBackend(join(dir, 'dip.db'), { clock });
    try {
      const sealer = await Sealer.open(kekIn(dir), backend.dataKeys, BOUND);
      const accounts = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', () => true);
      const secret = newTotpSecret();
      const make = async (username: string, sealedFor: string) => {
        const password = newPassword();
        const account = {
          username, displayName: username, participantDipId: '1000000001', admin: false, createdBy: 'test', passwordHash: await hashPassword(password),
          totpSecretSealed: sealer.seal(secret, 'totpSecret', `user:${sealedFor}`).toString('base64'),
          lastTotpStep: 0, sessionEpoch: 0, disabled: false, mustChangePassword: false, createdAt: clock.now(),
        };
        expect(await backend.portalAccounts.createAccount(account)).toBe(true);
        return password;
      };
      const own = await make('mallory', 'mallory');
      const copied = await make('nina', 'mallory');
      expect(await accounts.signIn('mallory', own, totpCode(secret, clock.now()), { realm: 'user' })).toMatchObject({ ok: true });
      await expect(accounts.signIn('nina', copied, totpCode(secret, clock.now()), { realm: 'user' })).rejects.toThrow("the sealed TOTP secret of portal account user:nina does not open as that record's");
    } finally {
      await backend.close();
    }
  });
});
