/**
 * WAL checkpoints run on a thread of their own (src/adapters/sqlite/checkpointer.ts), not inside COMMIT on
 * the event loop: the WAL must still be copied back and start over under steady writes, and a kill -9 in
 * the middle of a checkpoint must lose nothing acknowledged.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { batch, message, sup } from './contract/fixtures.js';

describe('WAL checkpoints off the event loop', () => {
  it('copies the WAL back and starts it over while batches keep coming', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-ckpt-')), 'dip.db');
    const backend = openSqliteBackend(file, { clock: systemClock });
    try {
      const body = 'x'.repeat(40_000);
      // About 64 MiB through the WAL, four times the length past which the WAL is made to start over.
      for (let n = 0; n < 400; n++) {
        const appends = Array.from({ length: 4 }, () => backend.log.append(batch([message(['SUP0000001'], { outbound: JSON.stringify({ n, body }) })])));
        expect(await Promise.all(appends)).toEqual(Array(4).fill({ ok: true }));
      }
      expect(statSync(`${file}-wal`).size).toBeLessThan(24 * 1024 * 1024);
      // What the writer did not checkpoint itself is in the database file (the WAL holds at most the last part).
      expect(statSync(file).size).toBeGreaterThan(48 * 1024 * 1024);
      expect((await backend.log.queueState(sup)).headSeq).toBe(1600);
    } finally {
      await backend.close();
    }
  }, 60_000);

  it('loses nothing acknowledged when the writer is killed (-9) while a checkpoint runs', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-ckpt-')), 'dip.db');
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/checkpoint-writer.ts', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let acked = 0;
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('ack ')) acked = Number(line.slice(4));
    });
    // Another connection's PASSIVE checkpoint reports busy while the writer's checkpoint thread holds the
    // checkpoint lock: the writer is killed at that moment. (When it does not, it checkpoints a little
    // itself, which is harmless.)
    let during = false;
    try {
      const probe = async (): Promise<void> => {
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline && child.exitCode === null) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          if (acked < 200) continue;
          const db = new Database(file, { fileMustExist: true });
          try {
            const [r] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number }>;
            if (r!.busy === 1) {
              child.kill('SIGKILL');
              during = true;
              return;
            }
          } finally {
            db.close();
          }
        }
      };
      await probe();
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    expect(during, 'the writer was killed while its checkpoint thread held the checkpoint lock').toBe(true);
    const before = acked;

    const db = new Database(file, { fileMustExist: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    } finally {
      db.close();
    }
    const backend = openSqliteBackend(file, { clock: systemClock });
    try {
      // Every acknowledged batch of ten is there, in order (a batch in flight at the kill may be too).
      const head = (await backend.log.queueState(sup)).headSeq;
      expect(head).toBeGreaterThanOrEqual(before * 10);
      // Read in pages: on a fast machine the writer may have written hundreds of megabytes before the kill.
      let last = 0;
      let previous = -1;
      while (last < head) {
        const page = await backend.log.readQueue(sup, last, 1_000, Number.MAX_SAFE_INTEGER);
        expect(page.map((e) => e.seq)).toEqual(Array.from({ length: Math.min(1_000, head - last) }, (_, i) => last + i + 1));
        for (const e of page) {
          const m = JSON.parse(e.outbound) as { n: number; i: number };
          expect(m.n * 10 + m.i).toBeGreaterThan(previous);
          previous = m.n * 10 + m.i;
        }
        last += page.length;
      }
    } finally {
      await backend.close();
    }
  }, 120_000);
});
