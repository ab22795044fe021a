/**
 * An export is authenticated (security review: a hand-edited export was imported without any check). `dip
 * migrate export` ends the file with an HMAC-SHA-256 over every line, under a key derived from the deployment's
 * first data key (reached only through its key-encryption key); `dip migrate import` checks it before it writes
 * anything. Before: an operator or portal account added to the file, the journal rewritten, or a message made
 * clear with made-up content, were all imported as given.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { checkExport, writeExport } from '../src/adapters/migration-file.js';
import type { MigrationRecord } from '../src/adapters/migration.js';
import { importIntoPostgres } from '../src/adapters/postgres/import.js';
import { FileKeyEncryptionKey } from '../src/security/at-rest.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

const dir = mkdtempSync(join(tmpdir(), 'opendip-migrate-mac-'));
const kek = new FileKeyEncryptionKey(join(dir, 'kek.key'));
const otherKek = new FileKeyEncryptionKey(join(dir, 'other-kek.key'));
/** Where checkExport keeps its private copy: empty after every check and import, whatever the outcome. */
const copies = mkdtempSync(join(tmpdir(), 'opendip-migrate-copies-'));

async function exportRecords(): Promise<MigrationRecord[]> {
  return [
    { type: 'dataKey', id: 1, wrapped: (await kek.wrap(randomBytes(32))).toString('base64'), createdAt: 1 },
    { type: 'dataKey', id: 2, wrapped: (await kek.wrap(randomBytes(32))).toString('base64'), createdAt: 2 },
    { type: 'registryRecord', kind: 'operator', key: 'alice', version: 1, doc: { name: 'alice', role: 'admin' }, at: 1, by: 'bootstrap' },
    { type: 'journal', id: 1, at: 3, actor: 'operator:alice', action: 'PATCH /admin/channels/:id', target: 'IF-021', before: { paused: true }, after: { paused: false }, status: 200 },
    { type: 'portalAccount', username: 'sup-admin', participantDipId: '1000000001', record: { username: 'sup-admin', admin: true }, createdAt: 4 },
  ];
}

async function writeFile(name: string, records: MigrationRecord[], key = kek): Promise<string> {
  const file = join(dir, name);
  await writeExport(file, records, key, { source: 'dip-a:/var/lib/opendip/opendip.db', now: () => Date.parse('2026-12-05T10:00:00Z') });
  return file;
}

/** Checks, then imports as `dip migrate import` does. */
async function importFile(url: string, file: string, acceptUnauthenticated = false) {
  const checked = await checkExport(file, { kek, acceptUnauthenticated, tmpDir: copies });
  try {
    return await importIntoPostgres({ url, clock: systemClock }, checked.records(), { actor: 'cli:test', action: checked.authenticated ? 'migrate.import' : 'migrate.import.unauthenticated', target: file, after: { authenticated: checked.authenticated } });
  } finally {
    await checked.close();
  }
}

const editLines = (file: string, edit: (lines: string[]) => string[]) => writeFileSync(file, `${edit(readFileSync(file, 'utf8').trimEnd().split('\n')).join('\n')}\n`);

describe('dip migrate: an authenticated export', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('opendip_migrate_mac');
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function rows(url: string, sql: string): Promise<Array<Record<string, unknown>>> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query(sql)).rows as Array<Record<string, unknown>>;
    } finally {
      await c.end();
    }
  }

  /** Nothing written: the import never even opened the target (its tables are made on open). */
  const tables = async (url: string) => (await rows(url, 'SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = current_schema()'))[0]!.n;

  it('ends the export with a MAC trailer and imports it as written, journalling the import', async () => {
    const file = await writeFile('ok.jsonl', await exportRecords());
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ type: 'exportMac', alg: 'HMAC-SHA-256', keyId: 1, records: 5, mac: expect.any(String) });
    const url = await db.freshSchema();
    expect(await importFile(url, file)).toMatchObject({ dataKey: 2, registryRecord: 1, journal: 1, portalAccount: 1 });
    expect((await rows(url, 'SELECT actor, action, after FROM operator_journal ORDER BY id')).map((r) => [r.actor, r.action, (r.after as { authenticated?: boolean }).authenticated])).toEqual([
      ['operator:alice', 'PATCH /admin/channels/:id', undefined],
      ['cli:test', 'migrate.import', true],
    ]);
  });

  it('refuses a hand-edited export before writing anything, naming what failed', async () => {
    const edits: Array<[string, (lines: string[]) => string[]]> = [
      ['an added portal account', (l) => [...l.slice(0, -1), JSON.stringify({ type: 'portalAccount', username: 'mallory', participantDipId: null, record: { admin: true }, createdAt: 5 }), l.at(-1)!]],
      ['an operator record changed', (l) => l.map((x) => x.replace('"role":"admin"', '"role":"admin","name2":"mallory"'))],
      ['the journal rewritten', (l) => l.map((x) => x.replace('operator:alice', 'operator:bob'))],
      ['a line removed', (l) => [l[0]!, l[1]!, ...l.slice(3)]],
      ['lines reordered', (l) => [l[0]!, l[1]!, l[3]!, l[2]!, ...l.slice(4)]],
    ];
    for (const [what, edit] of edits) {
      const file = await writeFile(`edited-${what.replaceAll(' ', '-')}.jsonl`, await exportRecords());
      editLines(file, edit);
      const url = await db.freshSchema();
      await expect(checkExport(file, { kek, tmpDir: copies }), what).rejects.toThrow(/is refused, nothing imported: its MAC .* does not match: the file was changed after it was written, or was written by a DIP with other keys/);
      expect(await tables(url), what).toBe(0);
    }
    // A MAC recomputed by someone without the keys, or the trailer of another export, does not pass either.
    const file = await writeFile('swapped.jsonl', await exportRecords());
    const other = await writeFile('other.jsonl', (await exportRecords()).slice(0, 3));
    editLines(file, (l) => [...l.slice(0, -1), readFileSync(other, 'utf8').trimEnd().split('\n').at(-1)!]);
    await expect(checkExport(file, { kek })).rejects.toThrow(/does not match/);
    // Lines after the trailer.
    const appended = await writeFile('appended.jsonl', await exportRecords());
    editLines(appended, (l) => [...l, JSON.stringify({ type: 'portalAccount', username: 'mallory', participantDipId: null, record: {}, createdAt: 5 })]);
    await expect(checkExport(appended, { kek })).rejects.toThrow('1 line(s) follow its MAC trailer (line 6)');
  });

  it('imports what it checked: a file changed in place between the check and the import brings in nothing forged', async () => {
    const file = await writeFile('raced.jsonl', await exportRecords());
    const checked = await checkExport(file, { kek, tmpDir: copies });
    // The check pass kept a private copy (0600) of the bytes it MACed: the import reads that, not the file.
    const [copyDir] = readdirSync(copies);
    expect(statSync(join(copies, copyDir!, readdirSync(join(copies, copyDir!))[0]!)).mode & 0o777).toBe(0o600);
    editLines(file, (l) => l.map((x) => x.replace('operator:alice', 'operator:bob')));
    const url = await db.freshSchema();
    await importIntoPostgres({ url, clock: systemClock }, checked.records()).finally(() => checked.close());
    expect((await rows(url, 'SELECT actor FROM operator_journal ORDER BY id')).map((r) => r.actor)).toEqual(['operator:alice']);
    expect(readdirSync(copies)).toEqual([]);
  });

  it('signs when and where the export was made, and reports it on import', async () => {
    const file = await writeFile('dated.jsonl', await exportRecords());
    const trailer = JSON.parse(readFileSync(file, 'utf8').trimEnd().split('\n').at(-1)!) as Record<string, unknown>;
    expect(trailer).toMatchObject({ exportedAt: '2026-12-05T10:00:00.000Z', source: 'dip-a:/var/lib/opendip/opendip.db' });
    const checked = await checkExport(file, { kek, tmpDir: copies });
    expect(checked).toMatchObject({ authenticated: true, exportedAt: '2026-12-05T10:00:00.000Z', source: 'dip-a:/var/lib/opendip/opendip.db' });
    await checked.close();
    // Under the MAC: a newer date or another source written into an older export's trailer is refused.
    for (const [field, value] of [['exportedAt', '2026-12-06T10:00:00.000Z'], ['source', 'dip-b:/var/lib/opendip/opendip.db']] as const) {
      const copy = await writeFile(`redated-${field}.jsonl`, await exportRecords());
      editLines(copy, (l) => [...l.slice(0, -1), JSON.stringify({ ...(JSON.parse(l.at(-1)!) as object), [field]: value })]);
      await expect(checkExport(copy, { kek, tmpDir: copies }), field).rejects.toThrow(/does not match/);
    }
    expect(readdirSync(copies)).toEqual([]);
  });

  it('refuses an export made under other keys: the importing DIP needs the exporting DIP\'s key-encryption key', async () => {
    const records = await exportRecords();
    const file = await writeFile('other-keys.jsonl', [{ ...records[0]!, wrapped: (await otherKek.wrap(randomBytes(32))).toString('base64') } as MigrationRecord, ...records.slice(1)], otherKek);
    await expect(checkExport(file, { kek })).rejects.toThrow(/its MAC key cannot be derived: .*The importing DIP needs the exporting DIP's key-encryption key/);
  });

  it('refuses an export without a MAC (an older build\'s) unless --accept-unauthenticated, and journals that choice', async () => {
    const file = await writeFile('old.jsonl', await exportRecords());
    editLines(file, (l) => l.slice(0, -1));
    const url = await db.freshSchema();
    const refusal = importFile(url, file);
    await expect(refusal).rejects.toThrow(/is refused, nothing imported: it carries no MAC .*Export it again with this build\. --accept-unauthenticated bypasses the integrity check: it is only for exports written by builds before exports were authenticated/);
    await expect(refusal).rejects.not.toThrow(/pass --accept-unauthenticated/);
    expect(await tables(url)).toBe(0);
    expect(await importFile(url, file, true)).toMatchObject({ portalAccount: 1, journal: 1 });
    const [act] = await rows(url, "SELECT actor, action, target, after FROM operator_journal WHERE actor = 'cli:test'");
    expect(act).toMatchObject({ actor: 'cli:test', action: 'migrate.import.unauthenticated', target: file, after: { authenticated: false, counts: { portalAccount: 1 } } });
    expect(readdirSync(copies)).toEqual([]);
  });
});
