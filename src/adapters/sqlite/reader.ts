import type Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** A statement's parameters: named (`@name`) or one positional value. */
export type ReadParams = Record<string, string | number> | string;

/**
 * One statement of a read. `json` instead of `params`: its one positional parameter is the JSON array of
 * the previous statement's rows, each reduced to those columns (one column: its value; several: an array),
 * and it yields no rows, unrun, when the previous one yielded none. So a read whose next statement depends
 * on the last one's rows (a trace: messages, then their copies, then the copies' attempts) runs whole on
 * the reader's side, inside one read transaction (one snapshot), with no round trip between statements.
 */
export type ReadStep = { sql: string; params: ReadParams } | { sql: string; json: string[] };

/** Runs read-only statements and answers their rows, one array per step. */
export interface SqliteReads {
  read(steps: ReadStep[]): Promise<unknown[][]>;
  close(): Promise<void>;
}

const betterSqlite3 = createRequire(import.meta.url).resolve('better-sqlite3');

/**
 * The reader thread's whole program (CommonJS, evaluated: no loader needed from source or dist). It keeps
 * its prepared statements (the report and trace statements are few; their text varies only with the
 * filters given), and runs each read's steps in one transaction. The steps' rule is ReadStep's, and
 * inProcess below is the same rule for an in-memory store.
 */
const THREAD = `const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file, { readonly: true, fileMustExist: true });
const cache = new Map();
const prepared = (sql) => {
  let s = cache.get(sql);
  if (!s) {
    if (cache.size >= 64) cache.delete(cache.keys().next().value);
    cache.set(sql, (s = db.prepare(sql)));
  }
  return s;
};
const read = db.transaction((steps) => {
  const out = [];
  let last = [];
  for (const step of steps) {
    if (step.json && last.length === 0) { out.push((last = [])); continue; }
    const param = step.json ? JSON.stringify(last.map((r) => (step.json.length === 1 ? r[step.json[0]] : step.json.map((c) => r[c])))) : step.params;
    out.push((last = prepared(step.sql).all(param)));
  }
  return out;
});
// A read's rows go back in pages of workerData.page rows, the next when the reader asks for it: a
// message's rows are copied into the reader's heap in one go, on its event loop (200,000 messages
// and their copies' rows held it for about a second).
const answering = new Map();
const rest = (a) => {
  while (a.step < a.out.length && a.at >= a.out[a.step].length) { a.step += 1; a.at = 0; }
  return a.step < a.out.length;
};
const page = (id) => {
  const a = answering.get(id);
  if (!a) return;
  rest(a);
  const step = Math.max(0, Math.min(a.step, a.out.length - 1));
  const rows = a.step < a.out.length ? a.out[a.step].slice(a.at, a.at + workerData.page) : [];
  a.at += rows.length;
  const done = !rest(a);
  if (done) answering.delete(id);
  parentPort.postMessage({ id, step, rows, done });
};
parentPort.on('message', (m) => {
  if (m === 'close') { db.close(); parentPort.close(); return; }
  if (m.more) { page(m.id); return; }
  try {
    answering.set(m.id, { out: read(m.steps), step: 0, at: 0 });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: { message: String((e && e.message) || e), code: e && e.code } });
    return;
  }
  page(m.id);
});`;

type Reply = { id: number; step: number; rows: unknown[]; done: boolean } | { id: number; error: { message: string; code?: string } };

/** Rows a page of a read's answer carries (ReaderThread): a few milliseconds' copying on the reader's side. */
const PAGE_ROWS = 2_000;

interface Waiting {
  /** Each step's rows, as their pages come. */
  rows: unknown[][];
  resolve: (rows: unknown[][]) => void;
  reject: (e: Error) => void;
}

/**
 * Report and trace queries over the store's file, on a thread of their own with a read-only connection
 * (WAL mode: it reads beside the writer, each read one consistent snapshot of what was committed). On
 * the writer's connection they ran on the event loop: a day's report or a large trace took tens of
 * seconds to minutes, during which no submission was answered, no group committed and no health probe
 * answered, and any participant may ask for its own report.
 *
 * The thread starts with the first read and is unref'd while idle (it never holds a process open); a
 * read in flight holds the process like any other pending I/O. A SQLite error rejects that read with
 * the error's message and code. Should the thread die, its reads in flight are rejected with why and
 * the next read starts a new thread. Reads queue on the one thread: a second report waits for the first,
 * but never the writer.
 */
export class ReaderThread implements SqliteReads {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly file: string) {}

  read(steps: ReadStep[]): Promise<unknown[][]> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    const worker = this.started();
    const id = this.nextId++;
    return new Promise<unknown[][]>((resolve, reject) => {
      if (this.waiting.size === 0) worker.ref();
      this.waiting.set(id, { rows: steps.map(() => []), resolve, reject });
      try {
        worker.postMessage({ id, steps });
      } catch (err) {
        // A parameter the thread cannot be sent: nothing went, so nothing will answer; not left waiting (nor the thread ref'd).
        this.settled(worker, id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(THREAD, { eval: true, workerData: { module: betterSqlite3, file: this.file, page: PAGE_ROWS } });
    worker.unref();
    worker.on('message', (m: Reply) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      if ('error' in m) {
        this.settled(worker, m.id);
        w.reject(Object.assign(new Error(m.error.message), { name: 'SqliteError', code: m.error.code }));
        return;
      }
      const into = w.rows[m.step];
      if (into) for (const row of m.rows) into.push(row);
      if (!m.done) {
        // The next page on a later turn of the loop (its message is a new task): the loop runs between pages.
        worker.postMessage({ id: m.id, more: true });
        return;
      }
      this.settled(worker, m.id);
      w.resolve(w.rows);
    });
    worker.on('error', (e) => this.failed(worker, e));
    worker.on('exit', (code) => this.failed(worker, new Error(`the SQLite reader thread exited (code ${code})`)));
    this.worker = worker;
    return worker;
  }

  private settled(worker: Worker, id: number): void {
    this.waiting.delete(id);
    if (this.waiting.size === 0) worker.unref();
  }

  /** The thread died (an uncaught error, or its exit): its reads fail with why, and the next read starts another. */
  private failed(worker: Worker, error: Error): void {
    if (this.worker !== worker) return;
    this.worker = null;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(new Error(`SQLite reader thread failed: ${error.message}`, { cause: error }));
  }

  /** Ends the thread: reads in flight are rejected (they only read; nothing is lost). */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (!worker) return;
    if (this.waiting.size > 0) {
      // A read in progress keeps the thread in SQLite until the statement ends (better-sqlite3 has no
      // interrupt); terminate takes effect then. Not awaited: the rest of a shutdown would wait out a
      // minute's report. Node still joins the thread when the process exits, so the exit itself waits
      // (as it waited before, with the report on the main thread).
      this.failed(worker, new Error('the store is closing'));
      worker.unref();
      void worker.terminate();
      return;
    }
    worker.ref();
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    this.worker = null;
    worker.postMessage('close');
    await exited;
  }
}

/**
 * An in-memory store (`:memory:`, tests only) has no file another connection could open: its reads run
 * here, on its one connection, synchronously, as they did before the reader thread (same rule as THREAD).
 */
export function inProcess(db: Database.Database): SqliteReads {
  return {
    read(steps) {
      try {
        const run = db.transaction(() => {
          const out: unknown[][] = [];
          let last: unknown[] = [];
          for (const step of steps) {
            if ('json' in step && last.length === 0) {
              out.push((last = []));
              continue;
            }
            const param = 'json' in step ? jsonOf(last, step.json) : step.params;
            out.push((last = db.prepare(step.sql).all(param)));
          }
          return out;
        });
        return Promise.resolve(run());
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    },
    close: () => Promise.resolve(),
  };
}

function jsonOf(rows: unknown[], columns: string[]): string {
  const pick = (r: unknown) => {
    const row = r as Record<string, unknown>;
    return columns.length === 1 ? row[columns[0]!] : columns.map((c) => row[c]);
  };
  return JSON.stringify(rows.map(pick));
}
