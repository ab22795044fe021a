import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../src/adapters/sqlite/store.js';
import { storeContract } from './contract/store-contract.js';

storeContract('SQLite (WAL file)', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-store-')), 'dip.db');
  return { store: new SqliteStore(file), reopen: async () => new SqliteStore(file) };
});
