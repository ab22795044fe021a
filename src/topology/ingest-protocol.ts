import type { DipConfig } from '../config.js';
import type { IngestRequest, IngestResult } from '../pipeline/ingest.js';
import type { AcceptedBatch, AcceptedMessage, AppendOutcome } from '../ports/message-log.js';
import type { WireError } from './protocol.js';

/**
 * The messages between the main thread (the listeners and the one writer) and its ingest threads, over
 * worker_threads' structured clone: Buffers arrive as Uint8Arrays (the thread wraps them again), strings
 * and plain objects as they are. A request crosses once each way; what a thread needs of the writer
 * (the append) is a call answered by a reply with the same id.
 */

/** What of a submission crosses to a thread: the caller's evidence without the main thread's controls. */
export type WireIngestRequest = Omit<IngestRequest, 'controls'>;

/** Main → thread. */
export type ToIngestThread =
  /**
   * `copies`: whether the writer keeps each appended message's outbound copy for delivery in its own
   * process (WriterSide.keepsCopies). When it does not, an append leaves the copies out: the store writes
   * only their sealed forms, which the append carries anyway.
   */
  | { t: 'init'; index: number; config: DipConfig; copies: boolean }
  /**
   * A submission. `registryVersion` is the main thread's registry view, which the thread catches up to
   * first; `sealKeyId` the at-rest data key in force, which the thread loads first if an operator
   * rotated it since (so nothing is sealed under a retired key).
   */
  | { t: 'ingest'; id: number; req: WireIngestRequest; registryVersion: number; sealKeyId: number }
  | { t: 'reply'; id: number; ok: true; value: unknown }
  | { t: 'reply'; id: number; ok: false; error: WireError }
  /** The registry, the catalogue or the signing key changed in the main thread: re-read them (src/topology/shared-state.ts). */
  | { t: 'refresh' };

/**
 * What a thread asks of the writer (answered by a `reply` with the same id). An append names the
 * submission it is for and carries the batch without its raw request: the main thread still holds those
 * bytes (it handed them over), and the store writes only their sealed form, so they need not cross back.
 */
export type IngestCall = {
  op: 'append';
  request: number;
  batch: Omit<AcceptedBatch, 'rawRequest' | 'messages'> & Required<Pick<AcceptedBatch, 'sealed'>> & { messages: WireMessage[] };
  /**
   * The submission's answer should the append accept the batch (IngestLog.append): the main thread then
   * answers the request itself, and the thread sends no result for it.
   */
  accepted?: IngestResult;
};

/**
 * An accepted message as an append carries it: without its outbound copy when the writer keeps none
 * (`copies: false` at init). A copy is 4.5 kB of JSON for an IF-021; each crossed by structured clone
 * and was then garbage on the main thread.
 */
export type WireMessage = Omit<AcceptedMessage, 'outbound'> & { outbound?: string };

/** The answer each call gets. */
export interface IngestCallResult {
  append: AppendOutcome;
}

/** Thread → main. */
export type FromIngestThread =
  | { t: 'ready' }
  | { t: 'result'; id: number; ok: true; result: IngestResult }
  | { t: 'result'; id: number; ok: false; error: WireError }
  | ({ t: 'call'; id: number } & IngestCall);
