import { Worker } from 'node:worker_threads';
import { RefusedError } from '../pipeline/refused.js';
import type { ListingAnswer, ListingThread, ListingWork } from '../pipeline/reports.js';
import { threadEntry } from './thread-entry.js';

/** What the report thread is asked: a listing folded, its next piece, or its answer dropped. */
export type ToReportThread = { t: 'open'; id: number; work: ListingWork } | { t: 'more'; id: number } | { t: 'cancel'; id: number };

/** What it answers: a listing folded (or refused, or failed), then each piece when asked, and the end. */
export type FromReportThread =
  | { t: 'ready'; id: number }
  | { t: 'piece'; id: number; piece: string }
  | { t: 'end'; id: number }
  | { t: 'refused'; id: number; status: RefusedError['status']; message: string }
  | { t: 'failed'; id: number; message: string };

/**
 * The SQLite engine's listing reports (sender audit, traces, processes) folded and written on a thread of
 * their own, over a read-only connection to the store's file (src/topology/report-thread.ts): the rows are
 * read, folded and serialised there by the same code as on the main thread (listingPieces), and only the
 * answer's pieces (about 64 KiB each) cross, one when the answer's stream asks for it (a slow client holds
 * no more than a piece here). On the main thread, the message road's one writer, a 200,000-message sender
 * audit cost seconds of CPU, in 10 ms slices between the group commits and deliveries (BENCHMARKS.md,
 * "Reports off the main thread").
 *
 * The thread starts with the first listing and is unref'd while nothing is asked of it. Should it die, what
 * was asked of it fails with why (an answer begun is cut short, as any failure after its first piece) and
 * the next listing starts another.
 */
export class ReportThread implements ListingThread {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, { resolve: (m: FromReportThread) => void; reject: (e: Error) => void }>();
  private readonly entry = threadEntry(import.meta.url, 'report-thread');
  private nextId = 1;
  private closed = false;

  constructor(private readonly file: string) {}

  async open(work: ListingWork): Promise<ListingAnswer> {
    if (this.closed) throw new Error('the store is closed');
    const worker = this.started();
    const id = this.nextId++;
    const m = await this.ask(worker, { t: 'open', id, work });
    if (m.t === 'refused') throw new RefusedError(m.status, m.message);
    if (m.t !== 'ready') throw new Error(m.t === 'failed' ? m.message : `the report thread answered ${m.t} to a listing`);
    let done = false;
    const cancel = () => {
      if (done) return;
      done = true;
      if (this.worker === worker) worker.postMessage({ t: 'cancel', id } satisfies ToReportThread);
    };
    const iterator: AsyncIterator<string, undefined> = {
      next: async () => {
        if (done) return { done: true, value: undefined };
        const p = await this.ask(worker, { t: 'more', id });
        if (p.t === 'piece') return { done: false, value: p.piece };
        done = true;
        if (p.t === 'end') return { done: true, value: undefined };
        throw new Error(p.t === 'failed' ? p.message : `the report thread answered ${p.t} for a piece`);
      },
      return: () => {
        cancel();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
    return { pieces: { [Symbol.asyncIterator]: () => iterator }, cancel };
  }

  private ask(worker: Worker, m: ToReportThread): Promise<FromReportThread> {
    return new Promise<FromReportThread>((resolve, reject) => {
      // The thread died since this answer began: the one now running does not know it.
      if (this.worker !== worker) return reject(new Error('the report thread stopped: this report is cut short'));
      if (this.waiting.size === 0) worker.ref();
      this.waiting.set(m.id, { resolve, reject });
      worker.postMessage(m);
    });
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(this.entry, { workerData: { file: this.file } });
    worker.unref();
    worker.on('message', (m: FromReportThread) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) worker.unref();
      w.resolve(m);
    });
    worker.on('error', (e) => this.failed(worker, e));
    worker.on('exit', (code) => this.failed(worker, new Error(`the report thread exited (code ${code})`)));
    this.worker = worker;
    return worker;
  }

  /** The thread died (an uncaught error, or its exit): what waits on it fails with why, and the next listing starts another. */
  private failed(worker: Worker, error: Error): void {
    if (this.worker !== worker) return;
    this.worker = null;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(new Error(`report thread failed: ${error.message}`, { cause: error }));
  }

  /**
   * Ends the thread: listings in flight fail (they only read). One inside a SQLite statement ends when
   * the statement does (better-sqlite3 has no interrupt): not waited for, as the reader thread's.
   */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (!worker) return;
    const busy = this.waiting.size > 0;
    this.failed(worker, new Error('the store is closing'));
    if (busy) {
      worker.unref();
      void worker.terminate();
      return;
    }
    await worker.terminate();
  }
}
