import type Database from 'better-sqlite3';
import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { Worker } from 'node:worker_threads';
import { realFile } from './private-file.js';

/** What one `PRAGMA wal_checkpoint(PASSIVE)` reports: frames in the WAL, and how many of them are now in the database. */
export interface CheckpointResult {
  log: number;
  checkpointed: number;
}

/** Frames in the WAL not yet in the database that call for a checkpoint: SQLite's automatic default. */
const EVERY_FRAMES = 1000;
/**
 * Past this many WAL frames (16 MiB of 4 KiB pages), the next checkpoint holds the group commit until it
 * reports (see Checkpointer). Also the size the WAL file is cut back to when it starts over.
 */
const RESTART_FRAMES = 4096;

const betterSqlite3 = createRequire(import.meta.url).resolve('better-sqlite3');

/**
 * Runs SQLite's WAL checkpoints on a thread of their own, so that copying pages into the database file and
 * its two fsyncs never run on the event loop. The writer's connection turns automatic checkpoints off
 * (they ran inside COMMIT, every 1,000 pages); a second connection, in a worker thread, runs a PASSIVE
 * checkpoint when a commit leaves EVERY_FRAMES frames not yet copied back. The writer learns that from the
 * WAL index (the -shm file, whose header layout is SQLite's documented file format): one 100-byte read
 * per group. PASSIVE takes no lock that writers or readers wait
 * on, and a checkpoint copies only frames already committed, syncing the WAL before it copies them and
 * the database after: durability is SQLite's own, unchanged (and a kill -9 mid-checkpoint leaves the WAL
 * in place, which the next open replays).
 *
 * A WAL starts over (from its first frame) only when a write transaction begins with every frame copied
 * back. Under steady load the checkpoint thread never catches the writer, so once the WAL passes
 * RESTART_FRAMES one checkpoint holds the group commit (writes queue meanwhile, the event loop stays free)
 * until it reports: it copies less than EVERY_FRAMES frames, and the next group starts the WAL over. A reader in another process that keeps an old snapshot can prevent that, as it always could.
 *
 * Should the checkpoint thread fail, the writer goes back to SQLite's automatic checkpoints.
 */
export class Checkpointer {
  private readonly worker: Worker;
  private running = false;
  private lastHeld = false;
  private readonly shmFd: number;
  private readonly header = Buffer.alloc(100);
  private failed = false;
  private pending: { resolve: (r: CheckpointResult) => void; reject: (e: Error) => void } | null = null;
  private inFlight: Promise<CheckpointResult> | null = null;

  constructor(
    file: string,
    private readonly db: Database.Database,
    /** Holds the writer's group commit until the promise settles. */
    private readonly hold: (until: Promise<unknown>) => void,
  ) {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the WAL index beside the store's file
    this.shmFd = openSync(`${realFile(file)}-shm`, 'r');
    db.pragma('wal_autocheckpoint = 0');
    db.pragma(`journal_size_limit = ${RESTART_FRAMES * 4096}`);
    const code = `const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file, { fileMustExist: true });
parentPort.on('message', (m) => {
  if (m === 'close') { db.close(); parentPort.close(); return; }
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ log: r.log, checkpointed: r.checkpointed });
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  }
});`;
    this.worker = new Worker(code, { eval: true, workerData: { module: betterSqlite3, file } });
    this.worker.unref();
    this.worker.on('message', (m: CheckpointResult | { error: string }) => {
      const p = this.pending;
      this.pending = null;
      if ('error' in m) p?.reject(new Error(m.error));
      else p?.resolve(m);
    });
    this.worker.on('error', (e) => {
      this.fallBack();
      this.pending?.reject(e);
      this.pending = null;
    });
  }

  /** Told after each group commit: starts a checkpoint when one is due. */
  committed(): void {
    if (this.failed || this.running) return;
    const { frames, backfilled } = this.walIndex();
    const behind = frames - backfilled;
    if (behind >= EVERY_FRAMES) this.start(false);
    // The WAL is long and the rest is short: copy it holding writes, so that the next group starts the WAL
    // over (not twice in a row: if a reader kept it from starting over, writes are not held each time).
    else if (frames >= RESTART_FRAMES && behind > 0 && !this.lastHeld) this.start(true);
  }

  /** mxFrame (frames in the WAL) and nBackfill (how many are in the database), from the WAL index header. */
  private walIndex(): { frames: number; backfilled: number } {
    readSync(this.shmFd, this.header, 0, this.header.length, 0);
    const u32 = (offset: number) => (endianness() === 'LE' ? this.header.readUInt32LE(offset) : this.header.readUInt32BE(offset));
    return { frames: u32(16), backfilled: u32(96) };
  }

  /** One checkpoint, now (tests). */
  checkpoint(): Promise<CheckpointResult> {
    if (this.inFlight) return this.inFlight.catch(() => undefined).then(() => this.checkpoint());
    const done = new Promise<CheckpointResult>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage('checkpoint');
    });
    this.inFlight = done;
    const clear = () => {
      if (this.inFlight === done) this.inFlight = null;
    };
    done.then(clear, clear);
    return done;
  }

  private start(held: boolean): void {
    this.running = true;
    this.lastHeld = held;
    const done = this.checkpoint();
    if (held) this.hold(done);
    done.then(
      () => {
        this.running = false;
      },
      () => this.fallBack(),
    );
  }

  private fallBack(): void {
    this.running = false;
    if (this.failed) return;
    this.failed = true;
    if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
  }

  /** Waits for a checkpoint in progress and closes the thread's connection. */
  async close(): Promise<void> {
    // The thread is unref'd so it never holds a running process open; but close waits on its messages and
    // its exit, which alone would let the event loop empty first (a script's await then never settles).
    this.worker.ref();
    await this.inFlight?.catch(() => undefined);
    closeSync(this.shmFd);
    if (this.failed) {
      await this.worker.terminate();
      return;
    }
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('close');
    await exited;
  }
}
