/**
 * The report thread's program (src/topology/report-threads.ts): listing reports read from the SQLite
 * store's file over a read-only connection of its own, folded by the pipeline's Reports (the same fold as on
 * the main thread: listingPieces) and written in pieces, each sent when the main thread asks for it.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { inProcess } from '../adapters/sqlite/reader.js';
import { SqliteTraces } from '../adapters/sqlite/traces.js';
import { RefusedError } from '../pipeline/refused.js';
import { listingPieces, Reports, type ListingWork } from '../pipeline/reports.js';
import type { ReportCounts } from '../ports/report-counts.js';
import type { FromReportThread, ToReportThread } from './report-threads.js';

const port = parentPort;
if (!port) throw new Error('report-thread.ts runs as a worker thread (src/topology/report-threads.ts)');
const { file } = workerData as { file: string };
const db = new Database(file, { readonly: true, fileMustExist: true });

// The listings asked here name no MPAN and ask no routing (an MPAN trace and a journey stay on the main
// thread, whose sealer holds the keys): a trace store without the sealer.
const notHere = (what: string) => () => {
  throw new Error(`the report thread has no ${what}`);
};
const traces = new SqliteTraces({ reads: inProcess(db), reveal: notHere('sealer to open a routing'), sealer: { index: notHere('sealer to index an MPAN') } });

// Throughput and latency are not asked here; a Reports counting in the store only words its refusal so.
const counted: ReportCounts = { counts: notHere('report counts'), latency: notHere('report counts') };
const reportsFor = (w: ListingWork) => new Reports(traces, { history: notHere('MPAN directory') }, () => w.now, w.dipId, null, { messageLimit: w.messageLimit, ...(w.counted ? { counts: counted } : {}) });

/** Answers folded and not yet all sent, by id. */
const answers = new Map<number, AsyncGenerator<string>>();
const post = (m: FromReportThread) => port.postMessage(m);
const failure = (id: number, e: unknown): FromReportThread =>
  e instanceof RefusedError ? { t: 'refused', id, status: e.status, message: e.message } : { t: 'failed', id, message: e instanceof Error ? e.message : String(e) };

async function handle(m: ToReportThread): Promise<void> {
  if (m.t === 'open') {
    try {
      answers.set(m.id, await listingPieces(reportsFor(m.work), m.work));
      post({ t: 'ready', id: m.id });
    } catch (e) {
      post(failure(m.id, e));
    }
    return;
  }
  const answer = answers.get(m.id);
  if (m.t === 'cancel') {
    answers.delete(m.id);
    await answer?.return(undefined);
    return;
  }
  if (!answer) return post({ t: 'failed', id: m.id, message: 'the report thread holds no such answer' });
  try {
    const next = await answer.next();
    if (next.done) {
      answers.delete(m.id);
      post({ t: 'end', id: m.id });
    } else post({ t: 'piece', id: m.id, piece: next.value });
  } catch (e) {
    answers.delete(m.id);
    post(failure(m.id, e));
  }
}

port.on('message', (m: ToReportThread) => void handle(m));
