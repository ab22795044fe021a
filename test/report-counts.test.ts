import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { reportCountsContract } from './contract/report-counts.contract.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

const lost = () => Promise.reject(new Error('not used by this contract'));

reportCountsContract('SQLite', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-counts-')), 'dip.db');
  return { backend: openSqliteBackend(file, { clock: systemClock }), reopen: async () => openSqliteBackend(file, { clock: systemClock }), loseMessage: lost };
});

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

reportCountsContract('PostgreSQL', async () => {
  const url = await db.freshSchema();
  const open = () => openPostgresBackend({ url, clock: systemClock });
  return { backend: await open(), reopen: open, serverCommit: true, loseMessage: lost };
});
