/**
 * WAL checkpoints run on a thread of their own (src/adapters/sqlite/checkpointer.ts), not inside COMMIT on
 * the event loop: the WAL must still be copied back and start over under steady writes, and a kill -9 in
 * the middle of a checkpoint must lose nothing acknowledged.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
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

  it('closes in a process that has nothing else to keep it running', async () => {
    // The checkpoint thread is unref'd: close() once waited for its exit with nothing holding the event
    // loop open, and a script awaiting dip.close() ended with code 13 (npm run api:generate).
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-ckpt-')), 'dip.db');
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/checkpoint-writer.ts', file, '3'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect({ code, out }).toEqual({ code: 0, out: 'ack 1\nack 2\nack 3\nclosed\n' });
  }, 60_000);

  it('loses nothing acknowledged when the writer is killed (-9) while a checkpoint runs', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-ckpt-')), 'dip.db');
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/checkpoint-writer.ts', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    // 'close', not 'exit': every line the writer printed has been read by then, so `acked` is its last.
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    let acked = 0;
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('ack ')) acked = Number(line.slice(4));
    });
    // The writer is killed while its checkpoint thread holds SQLite's checkpoint lock: a POSIX lock on byte
    // 121 of the -shm file (the unix VFS puts its WAL-index locks at byte 120 + lock number, and the
    // checkpoint lock is number 1). Linux lists every POSIX lock in /proc/locks, so the test watches for it
    // there without opening a connection: a probe that checkpointed itself (as an earlier version did)
    // copied the WAL back in the writer's stead and left it too little to be caught doing on a slow machine.
    let during = false;
    try {
      const deadline = Date.now() + 60_000;
      let shm: string | null = null;
      while (Date.now() < deadline && child.exitCode === null) {
        // Every millisecond: a checkpoint of a thousand frames and its two fsyncs takes several.
        await new Promise<void>((resolve) => setTimeout(resolve, 1));
        if (acked < 200) continue;
        shm ??= lockId(`${file}-shm`);
        if (checkpointLockHeld(shm, child.pid!)) {
          child.kill('SIGKILL');
          during = true;
          break;
        }
      }
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

/** How /proc/locks names a file: major:minor:inode of its device, in hexadecimal (major and minor) and decimal. */
function lockId(path: string): string {
  const { dev, ino } = statSync(path, { bigint: true });
  // Linux's dev_t: the major number is bits 8-19 (and 32-43), the minor bits 0-7 (and 20-31).
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${ino}`;
}

/** Whether process `pid` holds a write lock on byte 121 (SQLite's WAL checkpoint lock) of the file `id` names. */
function checkpointLockHeld(id: string, pid: number): boolean {
  return readFileSync('/proc/locks', 'latin1')
    .split('\n')
    .some((line) => {
      // e.g. "3: POSIX  ADVISORY  WRITE 4242 fe:00:1474578 121 121"
      const f = line.trim().split(/\s+/);
      return f[1] === 'POSIX' && f[3] === 'WRITE' && Number(f[4]) === pid && f[5] === id && Number(f[6]) <= 121 && (f[7] === 'EOF' || Number(f[7]) >= 121);
    });
}
