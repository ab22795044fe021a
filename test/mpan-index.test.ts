import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { FIND_FOR_MPAN as PG_FIND_FOR_MPAN } from '../src/adapters/postgres/archive.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { FIND_FOR_MPAN as SQLITE_FIND_FOR_MPAN } from '../src/adapters/sqlite/archive.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { REPLAYED_CONSUMPTION } from '../src/domain/consumption-replay.js';
import { batch, message } from './contract/fixtures.js';
import { databaseForDescribe } from './helpers/postgres.js';

/**
 * The DIP Replay Service reads an MPAN's archived consumption (Archive.findForMpan) through messages_mpan,
 * a partial index, when storage.mpanIndex makes it: an engine uses one only when the query's conditions imply the index's, so a change to
 * either that breaks the match would silently read every archived IF-021 again. The plans say.
 */
const channels = Object.keys(REPLAYED_CONSUMPTION);

describe('findForMpan is served by the MPAN index (storage.mpanIndex)', () => {
  it('SQLite: the plan searches messages_mpan', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-mpan-index-')), 'dip.db');
    const backend = openSqliteBackend(file, { clock: systemClock, mpanIndex: true });
    await backend.log.append(batch([message(['1000000001'])]));
    await backend.close();
    const db = new Database(file, { readonly: true });
    try {
      const plan = db.prepare<Record<string, unknown>, { detail: string }>(`EXPLAIN QUERY PLAN ${SQLITE_FIND_FOR_MPAN}`).all({ channels: JSON.stringify(channels), mpan: '1200000000001', party: '1000000001', afterId: 0, limit: 200 });
      const messages = plan.map((p) => p.detail).filter((d) => / m(?: |$)/.test(d));
      expect(messages).toEqual([expect.stringMatching(/^SEARCH m USING INDEX messages_mpan \(mpan=\? AND rowid>\?\)/)]);
    } finally {
      db.close();
    }
    // Turned off (the default), the next start drops it.
    await openSqliteBackend(file, { clock: systemClock }).close();
    const after = new Database(file, { readonly: true });
    try {
      expect(after.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'messages_mpan'").all()).toEqual([]);
    } finally {
      after.close();
    }
  });

  describe('PostgreSQL', () => {
    const test = databaseForDescribe();

    it('the plan scans each day partition\'s index of messages_mpan, and no partition in full', async () => {
      const url = await test.freshSchema();
      const backend = await openPostgresBackend({ url, clock: systemClock, mpanIndex: true });
      try {
        await backend.log.append(batch([message(['1000000001'])]));
      } finally {
        await backend.close();
      }
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        // A fresh store is small enough that reading it whole is cheapest: ask whether the index can serve the query at all.
        await c.query('SET enable_seqscan = off');
        const { rows } = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${PG_FIND_FOR_MPAN}`, [channels, '1200000000001', 0, 200, '1000000001']);
        const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
        const onMessages = plan.split('\n').filter((l) => / on messages_d\d+ m(?:_\d+)?(?: |$)/.test(l));
        expect(onMessages.length, plan).toBeGreaterThan(0);
        for (const line of onMessages) expect(line, plan).toMatch(/Index (Only )?Scan using messages_\w*mpan\w* on /);
      } finally {
        await c.end();
      }
    });
  });
});
