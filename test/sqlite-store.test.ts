import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../src/adapters/sqlite/store.js';
import { FileKeyEncryptionKey, Sealer } from '../src/security/at-rest.js';
import { storeContract } from './contract/store-contract.js';

storeContract('SQLite (WAL file)', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-store-')), 'dip.db');
  return { store: new SqliteStore(file), reopen: async () => new SqliteStore(file) };
});

storeContract('SQLite, sealed at rest', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-sealed-'));
  const file = join(dir, 'dip.db');
  const kek = new FileKeyEncryptionKey(join(dir, 'kek.key'));
  const open = async () => {
    const store = new SqliteStore(file);
    store.useSealer(await Sealer.open(kek, store));
    return store;
  };
  return { store: await open(), reopen: open };
});
