import { queueKey } from '../ports/queue-ref.js';
import type { DipConfig } from '../config.js';
import type { DeliveryAttempt } from '../ports/archive.js';
import type { BackendHealth } from '../ports/backend.js';
import { StoreError, type StoreFailureKind } from '../ports/errors.js';
import type { QueueRef, Settlement } from '../ports/message-log.js';
import type { DeadLetterEvent } from '../pipeline/delivery.js';
import type { ProcessUsage } from '../pipeline/metrics.js';
import type { WorkerStatus } from '../pipeline/queue-worker.js';
import type { Logger } from '../ports/logger.js';

/**
 * The messages between the main process (the one writer of the SQLite file: ingest, group commit, the
 * MPAN feed) and its delivery processes, over the fork's IPC channel with the `advanced` (structured
 * clone) serialisation, so that Buffers inside a settlement's status notices arrive as Buffers.
 */

/** Main → delivery process. */
export type ToWorker =
  | { t: 'init'; index: number; count: number; config: DipConfig; health: BackendHealth }
  /**
   * Something was appended to each queue; every position up to its `cap` is durable and may be handed
   * out. One message per turn of the main process's event loop, however many commits woke a queue in it.
   */
  | { t: 'wake'; queues: Array<{ queue: QueueRef; cap: number }> }
  /** The registry, catalogue or signing key changed in the main process: re-read them (src/topology/shared-state.ts). */
  | { t: 'refresh' }
  | { t: 'reply'; id: number; ok: true; value: unknown }
  | { t: 'reply'; id: number; ok: false; error: WireError }
  | { t: 'health'; health: BackendHealth }
  | { t: 'sweep' }
  | { t: 'resume'; queue: QueueRef }
  | { t: 'stop' };

/** What a delivery process asks the writer to do (answered by a `reply` with the same id). */
export type Call =
  | { op: 'settle'; queue: QueueRef; settlement: Settlement }
  | { op: 'attempt'; attempt: DeliveryAttempt }
  /** The highest durable position of the queue now (nothing above it may be read). */
  | { op: 'cap'; queue: QueueRef };

/** Delivery process → main. */
export type FromWorker =
  | { t: 'ready' }
  | ({ t: 'call'; id: number } & Call)
  | { t: 'dead-lettered'; events: DeadLetterEvent[]; queues: QueueRef[] }
  | { t: 'halted'; queue: QueueRef; error: string }
  /** Each second: its queue workers, and its CPU and memory for `dip_process_*{process="delivery-<n>"}`. */
  | { t: 'status'; workers: WorkerStatus[]; usage: ProcessUsage };

/** An error as it crosses the channel: a StoreError keeps its kind, so delivery pauses or halts as it would in one process. */
export interface WireError {
  message: string;
  kind: StoreFailureKind | null;
  code: string | null;
}

export function toWire(error: unknown): WireError {
  if (error instanceof StoreError) return { message: error.message, kind: error.kind, code: error.code };
  return { message: error instanceof Error ? error.message : String(error), kind: null, code: null };
}

export function fromWire(e: WireError): Error {
  return e.kind ? new StoreError(e.kind, e.message, e.code) : new Error(e.message);
}

/** How logs and metrics name delivery process `index` (0-based): delivery-1, delivery-2, … (the main process is `main`). */
export const processName = (index: number): string => `delivery-${index + 1}`;


/** Which delivery process (0 … count-1) works a queue: a stable hash of recipient and channel (FNV-1a). */
export function ownerOf(q: QueueRef, count: number): number {
  let h = 0x811c9dc5;
  const k = queueKey(q);
  for (let i = 0; i < k.length; i++) {
    h ^= k.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % count;
}

/** The answer to one call across a process or thread boundary. */
export type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

/**
 * Calls from a delivery process or an ingest thread into the main one, each answered by a reply with the
 * same id (the main side answers once what the call wrote is durable).
 */
export class PendingCalls {
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  /** Sends a call under a fresh id; settles with its reply. */
  call<T>(send: (id: number) => void): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      send(id);
    });
  }

  answered(m: Reply): void {
    const w = this.waiting.get(m.id);
    this.waiting.delete(m.id);
    if (!w) return;
    if (m.ok) w.resolve(m.value);
    else w.reject(fromWire(m.error));
  }
}

/** A logger whose every line names the process or thread it came from. */
export function labelled(base: Logger, label: Record<string, string>): Logger {
  return {
    info: (o, m) => base.info({ ...label, ...o }, m),
    warn: (o, m) => base.warn({ ...label, ...o }, m),
    error: (o, m) => base.error({ ...label, ...o }, m),
  };
}
