import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { databaseFile, openBackend } from '../src/adapters/backend.js';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { loadConfig } from '../src/config.js';

describe('the MPAN lookup of a DIP started on a database written before MPANs were hashed at rest', () => {
  it('is rewritten into the index hash at start, and still answers by MPAN', async () => {
    const config = loadConfig({}, { dataDir: mkdtempSync(join(tmpdir(), 'opendip-mpan-at-rest-')) });
    const file = databaseFile(config);
    // As an earlier build left it: the store opened without the at-rest sealer keeps MPANs as given.
    const earlier = openSqliteBackend(file, { clock: systemClock });
    await earlier.mpan.applyAppointments([
      { kind: 'appoint', mpan: '1200000000009', slot: 'SUP', dipId: 'SUP0000001', fromMs: 0, toMs: null },
      { kind: 'appoint', mpan: '1200000000010', slot: 'LDSO', dipId: 'LDS0000001', fromMs: 0, toMs: null },
    ]);
    await earlier.close();

    const { backend, sealer } = await openBackend(config);
    try {
      expect((await backend.mpan.mpanHistory('1200000000009')).map((a) => a.dipId)).toEqual(['SUP0000001']);
      expect((await backend.mpan.mpanHistory('1200000000010')).map((a) => a.dipId)).toEqual(['LDS0000001']);
      const raw = new Database(file, { readonly: true });
      const stored = raw.prepare<[], { mpan: string }>('SELECT mpan FROM mpan_appointments ORDER BY mpan').all().map((r) => r.mpan);
      raw.close();
      expect(stored.filter((m) => /\d{13}/.test(m))).toEqual([]);
      expect(stored.sort()).toEqual([sealer.index('1200000000009'), sealer.index('1200000000010')].sort());
    } finally {
      await backend.close();
    }
  });
});
