import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { FileKeyEncryptionKey, Sealer } from '../src/security/at-rest.js';
import { archiveContract } from './contract/archive.contract.js';
import { backendContract, type SyncGate } from './contract/backend.contract.js';
import { messageLogContract } from './contract/message-log.contract.js';

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

backendContract('SQLite (WAL file)', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-store-')), 'dip.db');
  const { gate, durability } = gatedSync();
  return { backend: openSqliteBackend(file, { clock: systemClock, durability }), reopen: async () => openSqliteBackend(file, { clock: systemClock }), syncGate: gate };
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
  return { backend: await open(), reopen: open };
};
messageLogContract('SQLite, sealed at rest', sealed);
archiveContract('SQLite, sealed at rest', sealed);
