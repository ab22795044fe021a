import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend, type SqliteBackend } from '../src/adapters/sqlite/index.js';
import { ReaderThread } from '../src/adapters/sqlite/reader.js';
import { batch, message } from './contract/fixtures.js';

/**
 * Report and trace queries on the embedded store run on a reader thread with its own read-only
 * connection: on the writer's connection a day's report (25–70 s on 2 million messages) or a large trace
 * (minutes) blocked the event loop, so no submission, group commit, delivery or health answer meanwhile.
 */

/** Counts the event loop's turns from now on, until stopped. */
function loopTurns(): { turns: () => number; stop: () => void } {
  let turns = 0;
  let running = true;
  const turn = () => {
    turns += 1;
    if (running) setImmediate(turn);
  };
  setImmediate(turn);
  return { turns: () => turns, stop: () => (running = false) };
}

/** Long enough to be seen running: a few million rows of a recursive CTE (seconds on the writer's thread). */
const SLOW = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < @n) SELECT count(*) AS n FROM c`;

const opened: Array<{ close: () => Promise<void> }> = [];
afterEach(async () => {
  for (const o of opened.splice(0)) await o.close();
});

async function store(): Promise<{ backend: SqliteBackend; file: string }> {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-reads-')), 'dip.db');
  const backend = openSqliteBackend(file, { clock: systemClock });
  opened.push(backend);
  await backend.log.append(batch([message(['SUP0000001']), message(['SUP0000001', 'MDS0000001'])]));
  return { backend, file };
}

describe('the embedded store answers reports and traces off the event loop', () => {
  // Failed before the reader thread: each query ran synchronously in the call, its promise settled
  // within a few microtasks. A reply from another thread comes only on a later turn of the event loop.
  it('answers a report or a trace from another thread, not within the call', async () => {
    const { backend } = await store();
    const q = { fromMs: 0, toMs: Date.now() + 60_000, granularity: 'day' as const, dipId: 'DIP0000001' };
    for (const query of [() => backend.reportCounts.counts(q), () => backend.reportCounts.latency(q), () => backend.traces.trace({ fromMs: 0, toMs: q.toMs, limit: 100 })]) {
      let settled = false;
      const answer = query().finally(() => (settled = true));
      for (let i = 0; i < 20; i++) await Promise.resolve(); // every microtask the call could have queued
      expect(settled).toBe(false);
      expect((await answer).length).toBeGreaterThan(0);
    }
    const [counts] = await backend.reportCounts.counts(q);
    expect(counts).toMatchObject({ in: 2, pending: 3 });
  });

  it('commits a submission while a long read is still running', async () => {
    const { backend, file } = await store();
    const reads = new ReaderThread(file);
    opened.push(reads);
    let readDone = false;
    const read = reads.read([{ sql: SLOW, params: { n: 5_000_000 } }]).then((r) => {
      readDone = true;
      return r;
    });
    const loop = loopTurns();
    try {
      await backend.log.append(batch([message(['SUP0000001'])]));
      const turnsWhileReading = loop.turns();
      expect(readDone).toBe(false);
      expect(turnsWhileReading).toBeGreaterThan(0);
      expect(await read).toEqual([[{ n: 5_000_000 }]]);
    } finally {
      // Stopped whatever failed: the setImmediate loop would otherwise spin through the rest of the file.
      loop.stop();
    }
  });

  it("rejects a read with SQLite's error, and reads only", async () => {
    const { file } = await store();
    const reads = new ReaderThread(file);
    opened.push(reads);
    await expect(reads.read([{ sql: 'SELECT * FROM no_such_table WHERE x = @x', params: { x: 1 } }])).rejects.toMatchObject({ message: expect.stringMatching(/no such table/), code: 'SQLITE_ERROR' });
    await expect(reads.read([{ sql: 'DELETE FROM messages WHERE id > @x RETURNING id', params: { x: 0 } }])).rejects.toMatchObject({ code: 'SQLITE_READONLY' });
    // The thread lives on after an error.
    expect(await reads.read([{ sql: 'SELECT count(*) AS n FROM messages WHERE id > @x', params: { x: 0 } }])).toEqual([[{ n: 2 }]]);
  });

  it('rejects a read whose parameters cannot be sent to the thread, and is not left waiting for it', async () => {
    const { file } = await store();
    const reads = new ReaderThread(file);
    opened.push(reads);
    // A value structured clone refuses (a function), as a caller's bug would pass: before, the promise never settled.
    const unsendable = { x: (() => 0) as unknown as number };
    await expect(reads.read([{ sql: 'SELECT @x AS x', params: unsendable }])).rejects.toMatchObject({ name: 'DataCloneError' });
    expect(await reads.read([{ sql: 'SELECT count(*) AS n FROM messages WHERE id > @x', params: { x: 0 } }])).toEqual([[{ n: 2 }]]);
  });

  it('reports a dead thread to the reads it had, and the next read starts another', async () => {
    const { file } = await store();
    const reads = new ReaderThread(file);
    opened.push(reads);
    const inFlight = reads.read([{ sql: SLOW, params: { n: 5_000_000 } }]);
    const worker = (reads as unknown as { worker: Worker }).worker;
    await worker.terminate();
    await expect(inFlight).rejects.toThrow(/SQLite reader thread failed/);
    expect(await reads.read([{ sql: 'SELECT count(*) AS n FROM messages WHERE id > @x', params: { x: 0 } }])).toEqual([[{ n: 2 }]]);
  });

  it('closes with a read in flight: the read is rejected, the close does not wait for it', async () => {
    const { file } = await store();
    const reads = new ReaderThread(file);
    const inFlight = reads.read([{ sql: SLOW, params: { n: 5_000_000 } }]);
    await reads.close();
    await expect(inFlight).rejects.toThrow(/the store is closing/);
    await expect(reads.read([{ sql: 'SELECT 1 AS x WHERE 1 = @x', params: { x: 1 } }])).rejects.toThrow(/closed/);
  });

  it('follows a step with the rows of the one before, and skips it when there were none', async () => {
    const { file } = await store();
    const reads = new ReaderThread(file);
    opened.push(reads);
    const steps = (from: number) => [
      { sql: 'SELECT id FROM messages WHERE id > @from ORDER BY id', params: { from } },
      { sql: 'SELECT count(*) AS copies FROM queue_entries WHERE message_id IN (SELECT value FROM json_each(?))', json: ['id'] },
    ];
    expect(await reads.read(steps(0))).toEqual([[{ id: 1 }, { id: 2 }], [{ copies: 3 }]]);
    expect(await reads.read(steps(99))).toEqual([[], []]);
  });
});
