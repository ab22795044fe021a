import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import type { Backend } from '../src/ports/backend.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

/**
 * The operator journal is an audit log (spec 5.8.1: it "cannot be accidentally or maliciously purged"):
 * a change or a purge through the DIP's own database connection is refused by the engine itself.
 */
const act = (i: number) => ({ at: 1_000 + i, actor: 'op:alice', action: 'participant.suspend', target: `100000000${i}`, before: { state: 'active' }, after: { state: 'suspended' }, status: 200 });

async function fill(backend: Backend): Promise<void> {
  for (let i = 1; i <= 3; i++) await backend.journal.append(act(i));
}

const entries = async (backend: Backend) => (await backend.journal.entries({ limit: 10 })).map((e) => e.target);
const EXPECTED = ['1000000003', '1000000002', '1000000001'];

/** A period of the journal: from (inclusive) to (exclusive), as GET /admin/journal's from and to. */
async function expectPeriods(backend: Backend): Promise<void> {
  const period = async (fromMs?: number, toMs?: number) => (await backend.journal.entries({ fromMs, toMs, limit: 10 })).map((e) => e.target);
  expect(await period(1_002)).toEqual(['1000000003', '1000000002']);
  expect(await period(undefined, 1_003)).toEqual(['1000000002', '1000000001']);
  expect(await period(1_002, 1_003)).toEqual(['1000000002']);
}

describe('operator journal is append-only: SQLite', () => {
  it('refuses UPDATE and DELETE through a connection of its own, and a database opened again still has the guards', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-journal-')), 'dip.db');
    let backend = openSqliteBackend(file, { clock: systemClock });
    await fill(backend);
    const raw = new Database(file);
    try {
      expect(() => raw.prepare("UPDATE operator_journal SET actor = 'op:mallory' WHERE id = 2").run()).toThrow(/operator journal is append-only: its records cannot be changed/);
      expect(() => raw.prepare('DELETE FROM operator_journal WHERE id = 2').run()).toThrow(/operator journal is append-only: its records cannot be deleted/);
      // Without a trigger SQLite empties a table whole here, without visiting its rows (its truncate optimisation).
      expect(() => raw.exec('DELETE FROM operator_journal')).toThrow(/operator journal is append-only/);
      expect(await entries(backend)).toEqual(EXPECTED);
      await expectPeriods(backend);
      // A database made before the guards (here: guards dropped) gets them back at the next open.
      raw.exec('DROP TRIGGER operator_journal_no_update; DROP TRIGGER operator_journal_no_delete');
      await backend.close();
      backend = openSqliteBackend(file, { clock: systemClock });
      expect(() => raw.prepare('DELETE FROM operator_journal WHERE id = 1').run()).toThrow(/operator journal is append-only/);
      expect(() => raw.prepare("UPDATE operator_journal SET status = 500 WHERE id = 1").run()).toThrow(/operator journal is append-only/);
      // Appending is what it is for.
      await backend.journal.append(act(4));
      expect(await entries(backend)).toEqual(['1000000004', ...EXPECTED]);
    } finally {
      raw.close();
      await backend.close();
    }
  });
});

describe('operator journal is append-only: PostgreSQL', () => {
  let database: TestDatabase | undefined;
  afterAll(async () => {
    await database?.drop();
  });

  it('refuses UPDATE, DELETE and TRUNCATE through a connection of the DIP\'s own role, and keeps every act', async () => {
    database = await createTestDatabase('opendip_journal');
    const url = await database.freshSchema();
    const backend = await openPostgresBackend({ url, clock: systemClock });
    await fill(backend);
    const raw = new pg.Client({ connectionString: url });
    await raw.connect();
    try {
      await expect(raw.query("UPDATE operator_journal SET actor = 'op:mallory' WHERE id = 2")).rejects.toThrow(/operator journal is append-only: its records cannot be changed/);
      await expect(raw.query('DELETE FROM operator_journal WHERE id = 2')).rejects.toThrow(/operator journal is append-only: its records cannot be deleted/);
      await expect(raw.query('DELETE FROM operator_journal')).rejects.toThrow(/operator journal is append-only/);
      // Statement-level: a TRUNCATE fires no row trigger.
      await expect(raw.query('TRUNCATE operator_journal')).rejects.toThrow(/operator journal is append-only: its records cannot be deleted \(TRUNCATE refused/);
      await expectPeriods(backend);
      await backend.journal.append(act(4));
      expect(await entries(backend)).toEqual(['1000000004', ...EXPECTED]);
    } finally {
      await raw.end();
      await backend.close();
    }
  });
});
