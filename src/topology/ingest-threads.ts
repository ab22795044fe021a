import { Worker } from 'node:worker_threads';
import type { DipConfig } from '../config.js';
import { MSG } from '../domain/response-codes.js';
import { standardResponse } from '../domain/standard-response.js';
import { STORE_RETRY_AFTER_SECONDS, type Ingest, type IngestRequest, type IngestResult } from '../pipeline/ingest.js';
import type { Logger } from '../ports/logger.js';
import type { AcceptedBatch, AcceptedMessage, AppendOutcome } from '../ports/message-log.js';
import type { FromIngestThread, IngestCall, ToIngestThread, WireMessage } from './ingest-protocol.js';
import { fromWire, toWire } from './protocol.js';
import { pushSharedChanges, type SharedState } from './shared-state.js';
import { threadEntry } from './thread-entry.js';

/** What POST /dip-channel/{id} needs of ingest, whichever thread runs it. */
export type IngestHandler = Pick<Ingest, 'handle' | 'validate' | 'traced'>;

/** The main thread's side of what an ingest thread asks: the one writer. */
export interface WriterSide {
  config: DipConfig;
  logger: Logger;
  now(): number;
  append(batch: AcceptedBatch): Promise<AppendOutcome>;
  /** What the threads read too: a change here is pushed to them. */
  shared: SharedState;
  /** The version of the main thread's registry view: a thread catches up to it before each request. */
  registryVersion(): number;
  /** The at-rest data key in force: a thread seals the copies it appends under it. */
  sealKeyId(): number;
  /**
   * Whether the store keeps appended messages' outbound copies for delivery in this process (no delivery
   * processes). When not, the threads leave the copies out of their appends (they cross sealed).
   */
  keepsCopies: boolean;
}

/** One ingest thread as the operator sees it (GET /admin/health). */
export interface ThreadView {
  index: number;
  state: 'starting' | 'ready' | 'restarting' | 'stopped';
  /** Times it was restarted after it died. */
  restarts: number;
  /** Submissions it holds now. */
  inHand: number;
  /** Submissions it answered since it (re)started. */
  handled: number;
}

/** How long a stopping thread may take to answer what it holds before it is ended. */
const STOP_TIMEOUT_MS = 20_000;
const RESTART_FIRST_MS = 250;
const RESTART_MAX_MS = 10_000;

interface Slot {
  /** What the operator sees, but for `inHand`, which is `pending.size`. */
  view: Omit<ThreadView, 'inHand'>;
  worker: Worker | null;
  /** Submissions handed to this thread, by id, answered when it posts their result; `body` for its append. */
  pending: Map<number, { body: Buffer; resolve: (r: IngestResult) => void; reject: (e: Error) => void }>;
  backoffMs: number;
  timer: NodeJS.Timeout | null;
}

/**
 * The young generation an ingest thread may grow to (V8's default is 48 MB on 64-bit: 16 MB semi-spaces).
 * A thread turns each batch into short-lived garbage several times its size (the parsed items, the stamped
 * copies, their serialised and compressed forms): at batch 100 its profile was about 30 % garbage
 * collection, mostly scavenges of a young generation that filled every few batches. With 192 MB, four
 * alternated pairs of `npm run bench -- --only ingest` (2026-12-03, BENCHMARKS.md) accepted 23 % more at
 * batch 10 and 20 % more at batch 100, with 16 % less CPU a message at batch 100; a quiet thread uses far
 * less until its first burst (V8 grows the semi-spaces as survival asks, and an idle thread keeps them:
 * about 100 MB more resident per thread after a burst).
 */
export const INGEST_YOUNG_GENERATION_MB = 192;

/**
 * The ingest threads (`ingestThreads` > 0): each runs POST /dip-channel/{id}'s pipeline — signature
 * check, parse, validation, routing, stamping, serialising and sealing the copies — for the requests
 * this thread hands it, so the listeners' thread keeps only TLS, HTTP and the one group commit. A
 * submission goes to the ready thread holding the fewest; while none is ready (starting, or restarting
 * after one died) this thread runs it itself, so a request is never left waiting on a thread. What a
 * thread asks of this one: the append, through the same group commit as every other write (so the 201
 * still follows durability, and duplicates are refused in one place).
 */
export class IngestThreads implements IngestHandler {
  private readonly slots: Slot[];
  private readonly entry = threadEntry(import.meta.url, 'ingest-thread');
  private stopping = false;
  private nextId = 1;

  constructor(
    count: number,
    private readonly writer: WriterSide,
    /** This thread's own pipeline: used while no thread is ready. */
    private readonly local: IngestHandler,
  ) {
    this.slots = Array.from({ length: count }, (_, index) => ({
      view: { index, state: 'starting', restarts: 0, handled: 0 },
      worker: null,
      pending: new Map(),
      backoffMs: RESTART_FIRST_MS,
      timer: null,
    }));
  }

  get traced(): boolean {
    return this.local.traced;
  }

  /** POST /validate (for debugging, nothing stored): on this thread. */
  validate(req: Parameters<Ingest['validate']>[0]): Promise<IngestResult> {
    return this.local.validate(req);
  }

  start(): void {
    for (const slot of this.slots) this.spawn(slot);
    pushSharedChanges(this.writer.shared, () => {
      for (const slot of this.slots) this.post(slot, { t: 'refresh' });
    });
  }

  threads(): ThreadView[] {
    return this.slots.map((s) => ({ ...s.view, inHand: s.pending.size }));
  }

  handle(req: IngestRequest): Promise<IngestResult> {
    const slot = this.pick();
    if (!slot) return this.local.handle(req);
    const id = this.nextId++;
    const { controls: _controls, ...wire } = req;
    return new Promise<IngestResult>((resolve, reject) => {
      slot.pending.set(id, { body: req.body, resolve, reject });
      this.post(slot, { t: 'ingest', id, req: wire, registryVersion: this.writer.registryVersion(), sealKeyId: this.writer.sealKeyId() });
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.timer) clearTimeout(slot.timer);
        // The listeners closed first: what a thread still holds is answered before it is ended (or, past
        // STOP_TIMEOUT_MS, answered 503 as it ends).
        const answered = Promise.allSettled([...slot.pending.keys()].map((id) => new Promise<void>((done) => this.whenAnswered(slot, id, done))));
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([answered, new Promise<void>((r) => (timer = setTimeout(r, STOP_TIMEOUT_MS)))]);
        clearTimeout(timer);
        slot.view.state = 'stopped';
        await slot.worker?.terminate();
        slot.worker = null;
      }),
    );
  }

  private whenAnswered(slot: Slot, id: number, done: () => void): void {
    const p = slot.pending.get(id);
    if (!p) return done();
    slot.pending.set(id, {
      body: p.body,
      resolve: (r) => (p.resolve(r), done()),
      reject: (e) => (p.reject(e), done()),
    });
  }

  /** The ready thread holding the fewest submissions (ties: the first), or none. */
  private pick(): Slot | undefined {
    let best: Slot | undefined;
    for (const s of this.slots) {
      if (s.view.state !== 'ready' || !s.worker) continue;
      if (!best || s.pending.size < best.pending.size) best = s;
    }
    return best;
  }

  private post(slot: Slot, m: ToIngestThread): void {
    slot.worker?.postMessage(m);
  }

  private spawn(slot: Slot): void {
    if (this.stopping) return;
    slot.timer = null;
    slot.view.state = slot.view.restarts === 0 ? 'starting' : 'restarting';
    slot.view.handled = 0;
    const worker = new Worker(this.entry, { resourceLimits: { maxYoungGenerationSizeMb: INGEST_YOUNG_GENERATION_MB } });
    slot.worker = worker;
    worker.on('message', (m: FromIngestThread) => this.received(slot, m));
    worker.on('error', (err) => this.writer.logger.error({ err, thread: slot.view.index }, 'ingest thread failed'));
    worker.on('exit', (code) => this.exited(slot, worker, code));
    worker.postMessage({ t: 'init', index: slot.view.index, config: this.writer.config, copies: this.writer.keepsCopies } satisfies ToIngestThread);
  }

  private received(slot: Slot, m: FromIngestThread): void {
    switch (m.t) {
      case 'ready':
        // Anything changed while it started is read again before it takes requests.
        this.post(slot, { t: 'refresh' });
        slot.view.state = 'ready';
        slot.backoffMs = RESTART_FIRST_MS;
        this.writer.logger.info({ thread: slot.view.index }, 'ingest thread ready');
        return;
      case 'result':
        this.settle(slot, m.id, m.ok ? { ok: true, result: m.result } : { ok: false, error: fromWire(m.error) });
        return;
      case 'call':
        this.answer(slot, m).then(
          (value) => this.post(slot, { t: 'reply', id: m.id, ok: true, value }),
          (err: unknown) => this.post(slot, { t: 'reply', id: m.id, ok: false, error: toWire(err) }),
        );
        return;
    }
  }

  private async answer(slot: Slot, call: IngestCall): Promise<unknown> {
    const request = slot.pending.get(call.request);
    if (!request) throw new Error(`ingest thread ${slot.view.index} appends for submission ${call.request}, which it does not hold`);
    // Structured clone delivers Buffers as Uint8Arrays: the store binds Buffers.
    const { batch } = call;
    const sealed = { ...batch.sealed, raw: asBuffer(batch.sealed.raw), outbound: batch.sealed.outbound.map(asBuffer) };
    const outcome = await this.writer.append({ ...batch, messages: storable(batch.messages, this.writer.keepsCopies), rawRequest: request.body, sealed });
    // Durable and accepted: answered now, not after the outcome has crossed to the thread and back.
    if (outcome.ok && call.accepted) this.settle(slot, call.request, { ok: true, result: call.accepted });
    return outcome;
  }

  /** A submission's answer, from the thread's result or from its accepted append: the first one counts. */
  private settle(slot: Slot, id: number, answer: { ok: true; result: IngestResult } | { ok: false; error: Error }): void {
    const p = slot.pending.get(id);
    slot.pending.delete(id);
    if (!p) return;
    slot.view.handled += 1;
    if (answer.ok) p.resolve(answer.result);
    else p.reject(answer.error);
  }

  private exited(slot: Slot, worker: Worker, code: number): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    // Its requests get a clear "send it again": the batch may or may not have been appended (a sender
    // who sends it again unchanged is told it is a duplicate if it was), and nothing else was lost.
    const held = [...slot.pending.values()];
    slot.pending.clear();
    for (const p of held) p.resolve(this.unavailable());
    if (this.stopping) return;
    slot.view.restarts += 1;
    slot.view.state = 'restarting';
    this.writer.logger.error({ thread: slot.view.index, code, restartInMs: slot.backoffMs }, 'ingest thread exited; restarting it (its requests were answered 503)');
    slot.timer = setTimeout(() => this.spawn(slot), slot.backoffMs);
    slot.timer.unref();
    slot.backoffMs = Math.min(slot.backoffMs * 2, RESTART_MAX_MS);
  }

  private unavailable(): IngestResult {
    const help = 'the DIP thread handling this batch stopped before answering; send it again unchanged after the Retry-After interval (if it was stored, the answer says it is a duplicate)';
    const response = standardResponse(new Date(this.writer.now()), this.writer.config.dipId, null, [{ message: MSG.processingFailed, help }]);
    return { status: 503, response, retryAfterSeconds: STORE_RETRY_AFTER_SECONDS };
  }
}

const hasCopy = (m: WireMessage): m is AcceptedMessage => m.outbound !== undefined;

/**
 * An append's messages as the store takes them. Without copies when the store keeps none: it writes the
 * sealed forms, and the empty text stands for a copy nothing reads (the store's remember() is off).
 */
function storable(messages: WireMessage[], keepsCopies: boolean): AcceptedMessage[] {
  if (!keepsCopies) return messages.map((m) => ({ ...m, outbound: '' }));
  if (!messages.every(hasCopy)) throw new Error('an ingest thread appended without the outbound copies this writer keeps');
  return messages;
}

function asBuffer<T>(bytes: Uint8Array | T): Buffer | T {
  if (!(bytes instanceof Uint8Array)) return bytes;
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The ingest threads the configuration asks for, or null to run ingest on the listeners' thread. */
export function ingestThreads(config: DipConfig, writer: WriterSide, local: IngestHandler, injectedClock: boolean): IngestThreads | null {
  const count = config.ingestThreads ?? 0;
  if (count <= 0) return null;
  if (injectedClock) throw new Error(`ingestThreads: ${count} runs ingest in threads, which cannot share an injected clock: use ingestThreads: 0`);
  return new IngestThreads(count, writer, local);
}

/** `dip serve`'s choice when the configuration leaves it open: a thread for each core beyond the first. */
export function defaultIngestThreads(cores: number): number {
  return Math.max(0, cores - 1);
}
