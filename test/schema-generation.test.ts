/**
 * The upgrade gate (src/adapters/schema-generation.ts): the stored data's generation is recorded beside it,
 * raised by the migration that leaves data older builds cannot read (the MPAN lookup keyed by hash), and a
 * build refuses to open a store of a generation it does not read, before it touches the schema.
 */

import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { GENERATION, KEYED_MPANS, PORTAL_REALMS } from '../src/adapters/schema-generation.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import type { Backend, BackendHealth } from '../src/ports/backend.js';
import { FileKeyEncryptionKey, Sealer } from '../src/security/at-rest.js';
import { databaseForDescribe, queryOnce } from './helpers/postgres.js';

interface Engine {
  open(): Promise<Backend>;
  /** The generation recorded, read behind the store's back (undefined: no record). */
  stored(): Promise<number | undefined>;
  /** Records `generation` behind the store's back, as another build would (null: no record, as before the gate). */
  record(generation: number | null): Promise<void>;
  /** Whether the schema was left as found: an object the store's DDL makes, removed before the open. */
  removeAnIndex(): Promise<void>;
  hasTheIndex(): Promise<boolean>;
  /** Makes the next open apply the schema again, as an upgrade's does (SQLite migrates on every open). */
  olderSchema(): Promise<void>;
  /** The participant's roles as stored, read behind the store's back. */
  roles(dipId: string): Promise<string | undefined>;
}

const postgres = (): (() => Promise<Engine>) => {
  const db = databaseForDescribe();
  return async () => {
    const url = await db.freshSchema();
    const q = <R extends Record<string, unknown>>(sql: string, values: unknown[] = []) => queryOnce<R>(url, sql, values);
    return {
      open: () => openPostgresBackend({ url, clock: systemClock }),
      stored: async () => (await q<{ generation: number }>('SELECT generation FROM dip_schema_generation WHERE schema_name = current_schema()'))[0]?.generation,
      record: async (g) => {
        await q('DELETE FROM dip_schema_generation');
        if (g !== null) await q('INSERT INTO dip_schema_generation VALUES (current_schema(), $1, 0)', [g]);
      },
      // The digest altered too: else the store would find its schema in place and apply nothing anyway.
      removeAnIndex: async () => void (await q("DROP INDEX messages_batch; UPDATE dip_schema_digests SET digest = 'an older version'")),
      hasTheIndex: async () => (await q<{ i: string | null }>("SELECT to_regclass('messages_batch') AS i"))[0]!.i !== null,
      olderSchema: async () => void (await q("UPDATE dip_schema_digests SET digest = 'an older version'")),
      roles: async (dipId) => (await q<{ roles: unknown }>('SELECT roles FROM participants WHERE dip_id = $1', [dipId]))[0]?.roles as string | undefined,
    };
  };
};

const sqlite = (): (() => Promise<Engine>) => async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-generation-')), 'dip.db');
  const q = <R,>(fn: (db: Database.Database) => R): R => {
    const db = new Database(file);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  return {
    open: async () => openSqliteBackend(file, { clock: systemClock }),
    stored: async () => q((db) => db.prepare<[], { generation: number }>('SELECT generation FROM schema_generation').get()?.generation),
    record: async (g) =>
      q((db) => {
        db.exec('DELETE FROM schema_generation');
        if (g !== null) db.prepare('INSERT INTO schema_generation (id, generation, raised_at) VALUES (1, ?, 0)').run(g);
      }),
    removeAnIndex: async () => void q((db) => db.exec('DROP INDEX messages_batch')),
    hasTheIndex: async () => q((db) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'messages_batch'").get() !== undefined),
    olderSchema: async () => {},
    roles: async (dipId) => q((db) => db.prepare<[string], { roles: string }>('SELECT roles FROM participants WHERE dip_id = ?').get(dipId)?.roles),
  };
};

/** A sealer that keys the MPAN lookup by hash, as every deployment's does. */
const hashing = async (backend: Backend): Promise<Sealer> => Sealer.open(new FileKeyEncryptionKey(join(mkdtempSync(join(tmpdir(), 'opendip-generation-kek-')), 'kek.key')), backend.dataKeys);

for (const [name, engine] of [
  ['PostgreSQL', postgres],
  ['SQLite', sqlite],
] as const) {
  describe(`${name}: the stored data's generation`, () => {
    const make = engine();

    it('refuses a store a newer build raised past what this one reads, saying which generation and what to do, and touches not its schema', async () => {
      const e = await make();
      await (await e.open()).close();
      await e.record(GENERATION.writes + 1);
      await e.removeAnIndex();
      await expect(e.open()).rejects.toThrow(
        new RegExp(`holds data of schema generation ${GENERATION.writes + 1}, written by a newer OpenDIP; this build reads generations ${GENERATION.readsFrom} to ${GENERATION.writes}.*Start the newer build`),
      );
      expect(await e.hasTheIndex()).toBe(false);
      expect(await e.stored()).toBe(GENERATION.writes + 1);
    });

    it('opens a store of the generation it writes, and one with no record (made before the gate)', async () => {
      const e = await make();
      await (await e.open()).close();
      await e.record(null);
      await (await e.open()).close();
      await e.record(GENERATION.writes);
      await (await e.open()).close();
    });

    it('raises the generation when it keys the MPAN lookup by hash: on the rewrite of clear rows, and on a store a build before the gate rewrote', async () => {
      const e = await make();
      const b = await e.open();
      try {
        // A store as a build before the gate left it (this one records portal realms' generation on open).
        await e.record(null);
        // Written in clear (nothing seals yet): what a build before the keyed lookup left.
        await b.mpan.applyAppointments([{ kind: 'appoint', mpan: '1200000000009', slot: 'SUP', dipId: 'S1', fromMs: 0, toMs: null }]);
        expect(await e.stored()).toBeUndefined();
        b.useSealer(await hashing(b));
        expect(await b.mpan.indexStoredMpans()).toBe(1);
        expect(await e.stored()).toBe(KEYED_MPANS);
        // Rewritten (and recorded done) by a build that kept no generation: the next start records it.
        await e.record(null);
        expect(await b.mpan.indexStoredMpans()).toBe(0);
        expect(await e.stored()).toBe(KEYED_MPANS);
        // Never lowered.
        await e.record(KEYED_MPANS + 1);
        await b.mpan.indexStoredMpans();
        expect(await e.stored()).toBe(KEYED_MPANS + 1);
      } finally {
        await b.close();
      }
    });

    it('records generation 3 (portal accounts by realm) on a new store and with the move of an older one', async () => {
      const e = await make();
      await (await e.open()).close();
      expect(await e.stored()).toBe(PORTAL_REALMS);
      // A store of the build before: the realms' move is applied again (a no-op on the rows), and recorded.
      await e.record(KEYED_MPANS);
      await e.olderSchema();
      await (await e.open()).close();
      expect(await e.stored()).toBe(PORTAL_REALMS);
    });

    it('stops a node that is running when a newer build migrates the store: its next write refused, fatal, told', async () => {
      const e = await make();
      const b = await e.open();
      try {
        const told: BackendHealth[] = [];
        b.onHealthChange((h) => told.push(h));
        const p = { dipId: 'SUP0000001', roles: ['SUP'], organisation: 'Acme', certificatePem: 'PEM', certificateFingerprint: 'AB', createdAt: 1, connectionProvider: null };
        await b.registry.upsertParticipant(p, 'hash');
        await e.record(GENERATION.writes + 1);
        const refused = { kind: 'fatal', code: 'SCHEMA_GENERATION', message: expect.stringMatching(new RegExp(`a newer OpenDIP migrated the store while this node ran: .* generation ${GENERATION.writes + 1}, written by a newer OpenDIP`)) };
        await expect(b.registry.upsertParticipant({ ...p, roles: ['SUP', 'LDSO'] }, null)).rejects.toMatchObject(refused);
        expect(b.health()).toEqual({ state: 'fatal', reason: refused.message });
        expect(told).toEqual([b.health()]);
        // For good: a write after it is refused too, and nothing was written.
        await expect(b.registry.putWebhook({ recipientDipId: p.dipId, channel: 'IF-021', url: 'https://a', maxMessageCount: 1, maxPayloadKb: 1, registeredBy: null })).rejects.toMatchObject(refused);
        expect(await e.stored()).toBe(GENERATION.writes + 1);
        expect(await e.roles(p.dipId)).toBe('SUP');
      } finally {
        await b.close();
      }
    });
  });
}
