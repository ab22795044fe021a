import { BUSINESS_FLOWS } from '../catalogue/business-flows.js';
import type { MpanDirectory } from './mpan-directory.js';
import { RefusedError } from './refused.js';
import { readRefusal } from '../domain/activity.js';
import { Slices } from '../domain/slices.js';
import { detailForSender } from '../domain/held-back.js';
import type { ActivityLogStore } from '../ports/activity-log.js';
import type { MessageTraces, TracedMessage, TraceQuery } from '../ports/traces.js';
import { GRANULARITIES, type CountQuery, type Granularity, type LatencyAggregate, type ReportCounts } from '../ports/report-counts.js';

export { GRANULARITIES, type Granularity };

/** Who asks: the operator sees everything; a participant its own messages and the MPANs it was responsible for. */
export type Viewer = { kind: 'operator' } | { kind: 'participant'; dipId: string };

/** A report's period and filters: what the store counts (CountQuery), without who asks. */
export type ReportFilter = Omit<CountQuery, 'viewer' | 'dipId'>;

/**
 * At most this many messages are read into one report that lists them (sender audit, traces, processes;
 * a longer period: ask for it in parts); as many refused submissions. Throughput and latency are counted
 * in the store (ReportCounts) and have no such limit.
 */
export const REPORT_MESSAGE_LIMIT = 200_000;

/** Reports computed at once (Reports.gated): fewer than the PostgreSQL pool's connections, which ingest needs too. */
export const REPORTS_AT_ONCE = 4;
/** Reports waiting for one of those (Reports.gated): beyond, 429. */
export const REPORTS_WAITING = 8;
/** The longest a listing keeps its slot while its answer is read (a slow client keeps reading, without it). */
export const ANSWER_HOLD_MS = 30_000;
/** Retry-After of a report refused 429 (no slot free nor to wait for): the API's, and the portal pages' over it. */
export const REPORT_RETRY_AFTER_SECONDS = 5;

/** Refused submissions read from the activity log at a time. */
const REFUSALS_PAGE = 5_000;

/** A submission's path as the activity log keeps it (`/dip-channel/IF-021`, any case, maybe a query), not a channel's sub-route. */
const SUBMISSION_PATH = /^\/dip-channel\/([^/?]+)\/?(?:\?|$)/i;

const periodOf = (fromMs: number, toMs: number) => `${new Date(fromMs).toISOString()} to ${new Date(toMs).toISOString()}`;

/** A throughput row's counts (refused submissions only when counted: see Reports.refusals). */
export type ThroughputCounts = {
  in: number;
  out: number;
  errors: number;
  pending: number;
  /** Submissions refused (requests answered 400 or above), each a batch. */
  refused?: number;
  /** Messages those refusals carried: their answers' entries. */
  refusedMessages?: number;
  /** Refused submissions by MSG code (`HTTP 413` for an answer without one). */
  refusedCodes?: Record<string, number>;
};

/** A listing report (its answer streamed) as a listing thread is asked for it: the report, its viewer and filters. */
export type ListingCall =
  | { report: 'sender-audit'; viewer: Viewer; filter: ReportFilter }
  | { report: 'processes'; viewer: Viewer; filter: ReportFilter; stuckAfterMs: number; chain?: Chain }
  | { report: 'trace'; viewer: Viewer; by: { transactionId?: string; correlationId?: string }; fromMs: number; toMs: number };

/** What a listing thread folds and writes: the call, the answer's shape, and what the Reports asking knows that the thread does not. */
export interface ListingWork {
  call: ListingCall;
  csv: boolean;
  /** The JSON answer's members before `rows` (jsonPieces). */
  head: Record<string, unknown>;
  dipId: string;
  /** The DIP's clock when asked (a process is stuck after so long without a message). */
  now: number;
  messageLimit: number;
  /** Whether throughput and latency are counted in the store: a refusal for too many messages says so. */
  counted: boolean;
}

/**
 * Folds and writes listing reports on another thread (the SQLite engine's: src/topology/report-threads.ts),
 * with the same code as here (listingPieces), so that only the answer's pieces cross to this thread, the
 * message road's writer. `open` settles once the listing is folded: with its pieces, or rejected as the
 * report would be here (a RefusedError for too many messages).
 */
export interface ListingThread {
  open(work: ListingWork): Promise<ListingAnswer>;
}

/** A listing folded on a listing thread: its answer's pieces, read one at a time (the thread writes each when asked). */
export interface ListingAnswer {
  pieces: AsyncIterable<string>;
  /** Drops what the thread holds of it (the client gone, or the answer never sent); nothing once it is all read. */
  cancel: () => void;
}

/**
 * A listing's answer pieces, as the routes write it (jsonPieces or csvPieces of its rows): what a listing
 * thread runs, over a Reports of its own, so its bytes are those answered when folded on the main thread.
 */
export async function listingPieces(reports: Reports, work: Pick<ListingWork, 'call' | 'csv' | 'head'>): Promise<AsyncGenerator<string>> {
  const c = work.call;
  const rows = (c.report === 'sender-audit' ? await reports.senderAudit(c.viewer, c.filter) : c.report === 'processes' ? await reports.processes(c.viewer, c.filter, c.stuckAfterMs, undefined, c.chain) : await reports.trace(c.viewer, c.by, c.fromMs, c.toMs)) as unknown as Array<Record<string, unknown>>;
  return work.csv ? csvPieces(rows) : jsonPieces(work.head, rows);
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; status: 400 | 403 | 404; help: string };

function tooMany(query: Pick<TraceQuery, 'fromMs' | 'toMs'>, limit: number, counted: boolean): RefusedError {
  // With the store counting, only the reports that list messages one by one are limited: say so.
  const which = counted ? ' (throughput and latency are counted over any period; a sender audit, trace or process report reads its messages one by one)' : '';
  return new RefusedError(400, `${periodOf(query.fromMs, query.toMs)} holds more than ${limit.toLocaleString('en-GB')} messages, the most one report counts: ask for it in parts (a shorter from/to, or one channel, sender or recipient)${which}`);
}

/** The start of the bucket `ms` falls in (UTC). */
export function bucketStart(ms: number, g: Granularity): number {
  const d = new Date(ms);
  if (g === 'minute') return ms - (ms % 60_000);
  if (g === 'hour') return ms - (ms % 3_600_000);
  if (g === 'day') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

export interface LatencyStats {
  count: number;
  minMs: number | null;
  avgMs: number | null;
  maxMs: number | null;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
}

/** Statistics the store counted (ReportCounts), given as latencyStats gives them from the values. */
export function countedLatency(a: LatencyAggregate): LatencyStats {
  if (a.count === 0 || a.sum === null) return latencyStats([]);
  return { count: a.count, minMs: a.min, avgMs: Math.round((a.sum / a.count) * 10) / 10, maxMs: a.max, p50Ms: a.p50, p90Ms: a.p90, p99Ms: a.p99 };
}

export function latencyStats(values: number[]): LatencyStats {
  if (values.length === 0) return { count: 0, minMs: null, avgMs: null, maxMs: null, p50Ms: null, p90Ms: null, p99Ms: null };
  const v = [...values].sort((a, b) => a - b);
  const at = (q: number) => v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)]!;
  return { count: v.length, minMs: v[0]!, avgMs: Math.round((v.reduce((s, x) => s + x, 0) / v.length) * 10) / 10, maxMs: v.at(-1)!, p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99) };
}

/** What links a participant's own chain of channels (spec 5.11.3: a correlation ID, a transaction ID or an MPAN). */
export const LINKS = ['correlationID', 'transactionID', 'mpan'] as const;
export type LinkBy = (typeof LINKS)[number];

/** A participant's own linked report: its channels in order (the first starts an instance, the last completes it) and their link. */
export interface Chain {
  channels: string[];
  linkBy: LinkBy;
}

/** A business process the DIP follows: a tracked flow of the catalogue's table, or (id null) a participant's chain. */
export interface ProcessDefinition {
  id: string | null;
  name: string;
  /** How its messages are linked: the catalogue's flows by correlation ID or MPAN; a chain by what it names. */
  linkage: 'correlation' | 'mpan' | LinkBy;
  stages: string[];
  /** Complete once a message of one of these channel[:event] has been seen. */
  ends: string[];
}

/** The tracked flows of src/catalogue/business-flows.ts: the one table of processes and their stages. */
export const PROCESSES: ReadonlyArray<ProcessDefinition & { id: string; linkage: 'correlation' | 'mpan' }> = BUSINESS_FLOWS.flatMap((f) =>
  f.tracked ? [{ id: f.id, name: f.name, linkage: f.tracked.linkage, stages: f.steps.map((s) => s.interfaceId), ends: f.tracked.ends }] : [],
);
/** Those linked by correlation ID: a correlation ID's messages are one process of the first that fits. */
const BY_CORRELATION = PROCESSES.filter((p) => p.linkage === 'correlation');
/** Those linked by MPAN: each followed apart, over its own channels. */
const BY_MPAN = PROCESSES.filter((p) => p.linkage === 'mpan');

/** The member a process row names its link by, after the linkage (correlation ID rows as they always were). */
const KEY_OF = { correlation: 'correlationId', correlationID: 'correlationId', transactionID: 'transactionId', mpan: 'mpan' } as const;
type KeyName = (typeof KEY_OF)[keyof typeof KEY_OF];
const keyOf: Record<KeyName, (m: TracedMessage) => string | null | undefined> = { correlationId: (m) => m.correlationId, transactionId: (m) => m.transactionId, mpan: (m) => m.mpan };

/** Where a process stands, whatever links it. */
export interface ProcessState {
  /** The flow's ID in the catalogue's table (`change-of-supplier`), null when no tracked flow has these channels. */
  flow: string | null;
  process: string;
  startedAt: number;
  lastAt: number;
  /** Channels seen, in the process's order, each with its messages. */
  stages: Array<{ channel: string; eventCode: string; transactionId: string; sender: string; receivedAt: number; deliveries: Array<{ recipient: string; state: string }> }>;
  /** The last stage reached. */
  current: string;
  state: 'complete' | 'in-progress' | 'stuck';
  /** Why it is stuck (a dead letter, or nothing for longer than the threshold). */
  reason: string | null;
}

/** A process linked by correlation ID (the appointment workflow, a change of supplier). */
export type ProcessStatus = { correlationId: string } & ProcessState;

/** A row of the processes report: its link first (a correlation ID, a transaction ID, or an MPAN as the archive keeps it), then where it stands. */
export type LinkedProcess = ProcessStatus | ({ transactionId: string } & ProcessState) | ({ mpan: string } & ProcessState);

/**
 * Reports, traces and journeys (spec 5.11.1–5.11.3, figure 15), computed from the archive and the delivery
 * journal as they stand (src/ports/traces.ts): nothing extra is written on the road. Every answer is cut to
 * what the viewer may see.
 */
export class Reports {
  private readonly unreadableSeen: (transactionId: string, why: string) => void;

  constructor(
    private readonly traces: MessageTraces,
    private readonly mpan: Pick<MpanDirectory, 'history'>,
    private readonly now: () => number,
    /** The DIP's own ID: what it sends itself (status messages reporting errors, test messages) was not received. */
    private readonly dipId: string,
    /** The API activity log, where refused submissions are recorded (null when it is not kept: no refusal columns). */
    private readonly activity: Pick<ActivityLogStore, 'refusedSubmissions'> | null = null,
    options: {
      /** Throughput and latency counted in the store, for periods of any size; without it they are counted here, as the listing reports are read. */
      counts?: ReportCounts;
      /** The most messages a report reads one by one (tests make it small). */
      messageLimit?: number;
      /** The most reports computed at once, DIP-wide (tests make it small); more wait, up to maxWaiting. */
      maxRunning?: number;
      /** The most reports waiting for one of those; beyond, 429. */
      maxWaiting?: number;
      /** How long a listing's slot waits for its answer to be read (ANSWER_HOLD_MS), and the timer that counts it (the DIP's clock). */
      answerHoldMs?: number;
      after?: (ms: number, fn: () => void) => () => void;
      /** Where listings are folded and written off this thread (listing); without one, here, in slices. */
      thread?: ListingThread;
      /** Told of a message whose stored copy a report could not open (the log and dip_archive_unreadable_total). */
      unreadableSeen?: (transactionId: string, why: string) => void;
    } = {},
  ) {
    this.answerHoldMs = options.answerHoldMs ?? ANSWER_HOLD_MS;
    this.after =
      options.after ??
      ((ms, fn) => {
        const t = setTimeout(fn, ms);
        return () => clearTimeout(t);
      });
    this.maxRunning = options.maxRunning ?? REPORTS_AT_ONCE;
    this.maxWaiting = options.maxWaiting ?? REPORTS_WAITING;
    this.counts = options.counts ?? null;
    this.limit = options.messageLimit ?? REPORT_MESSAGE_LIMIT;
    this.unreadableSeen = options.unreadableSeen ?? (() => {});
    this.thread = options.thread ?? null;
  }

  private readonly thread: ListingThread | null;

  private readonly counts: ReportCounts | null;
  private readonly answerHoldMs: number;
  private readonly after: (ms: number, fn: () => void) => () => void;
  private readonly limit: number;
  private readonly maxRunning: number;
  private readonly maxWaiting: number;
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  // Each report reads a period from the store: a day's count at national volume takes minutes, and holds a
  // PostgreSQL connection (or the embedded store's reader) meanwhile. Any participant may ask for its own,
  // so at most maxRunning are computed at once, and at most maxWaiting wait for a slot (in order); one more
  // is refused with 429 at once.
  throughput(viewer: Viewer, f: ReportFilter) {
    return this.gated(() => this.throughputNow(viewer, f));
  }
  latency(viewer: Viewer, f: ReportFilter) {
    return this.gated(() => this.latencyNow(viewer, f));
  }
  // A listing (up to 200,000 rows) is written in slices after it is computed: `answered`, when given,
  // settles once its answer is written (or given up), and the report keeps its slot until then, so the
  // answers being written are capped as the folds are (each holds the event loop a slice a turn).
  senderAudit(viewer: Viewer, f: ReportFilter, answered?: Promise<unknown>) {
    return this.gated(() => this.senderAuditNow(viewer, f), answered);
  }
  processes(viewer: Viewer, f: ReportFilter, stuckAfterMs: number, answered?: Promise<unknown>, chain?: Chain) {
    return this.gated(() => this.processesNow(viewer, f, stuckAfterMs, chain), answered);
  }
  trace(viewer: Viewer, by: { transactionId?: string; correlationId?: string }, fromMs: number, toMs: number, answered?: Promise<unknown>) {
    return this.gated(() => this.traceNow(viewer, by, fromMs, toMs), answered);
  }
  mpanTrace(viewer: Viewer, mpan: string, fromMs: number, toMs: number, answered?: Promise<unknown>) {
    return this.gated(() => this.mpanTraceNow(viewer, mpan, fromMs, toMs), answered);
  }

  /**
   * A listing's answer pieces folded and written on the listing thread, under the same gate (its slot held
   * until `answered`); null without a thread (the caller asks senderAudit, processes or trace, folded here).
   */
  listing(call: ListingCall, shape: { csv: boolean; head: Record<string, unknown> }, answered?: Promise<unknown>): Promise<ListingAnswer> | null {
    const thread = this.thread;
    if (thread === null) return null;
    return this.gated(() => thread.open({ call, ...shape, dipId: this.dipId, now: this.now(), messageLimit: this.limit, counted: this.counts !== null }), answered);
  }

  private async gated<T>(make: () => Promise<T>, answered?: Promise<unknown>): Promise<T> {
    if (this.running < this.maxRunning) this.running += 1;
    else if (this.waiting.length < this.maxWaiting) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else throw new RefusedError(429, `${this.maxRunning} reports are being computed and ${this.maxWaiting} more are waiting, the most the DIP takes at once: ask again in a few seconds`);
    // The slot passes to the first waiting (a portal page asks for two reports at once: the second waits
    // for the first's slot rather than being refused while the first computes for nobody).
    const release = () => {
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    };
    let value: T;
    try {
      value = await make();
    } catch (e) {
      release();
      throw e;
    }
    if (answered) {
      // Held while the answer is written (its slices are capped as the folds are), but not for as long as a
      // client likes: one reading a few bytes an interval passes the answer deadline, and four such held
      // every slot of every participant's and operator's reports. A fast client is done well within this.
      let done = false;
      const once = () => {
        if (done) return;
        done = true;
        cancel();
        release();
      };
      const cancel = this.after(this.answerHoldMs, once);
      void answered.then(once, once);
    } else release();
    return value;
  }


  /** What the store counts for this viewer and filter: the same messages and copies as filtered() reads. */
  private countQuery(viewer: Viewer, f: ReportFilter): CountQuery {
    return {
      fromMs: f.fromMs,
      toMs: f.toMs,
      granularity: f.granularity,
      dipId: this.dipId,
      ...(f.channels !== undefined ? { channels: f.channels } : {}),
      ...(f.sender !== undefined ? { sender: f.sender } : {}),
      ...(f.recipient !== undefined ? { recipient: f.recipient } : {}),
      ...(viewer.kind === 'participant' ? { viewer: viewer.dipId } : {}),
    };
  }

  /**
   * Refused submissions in the filter that the viewer may see, from the API activity log (nothing is
   * written for them on the road): each request's time, channel (as called), MSG code and entries.
   * Null when they are not counted: no activity log, or a recipient named (a refused submission was
   * delivered to no one). A participant sees those it made and those made for it. Read in pages, so a
   * period's answers are never held at once; more than the report's limit is refused, as messages are.
   */
  private async refusals(viewer: Viewer, f: ReportFilter): Promise<Array<{ at: number; code: string; entries: number }> | null> {
    if (this.activity === null || f.recipient !== undefined) return null;
    const caller = viewer.kind === 'participant' ? viewer.dipId : f.sender;
    const channels = f.channels?.length ? new Set(f.channels.map((c) => c.toUpperCase())) : null;
    const out: Array<{ at: number; code: string; entries: number }> = [];
    let read = 0;
    let after: { at: number; chain: string; seq: number } | undefined;
    for (;;) {
      const page = await this.activity.refusedSubmissions({ fromMs: f.fromMs, toMs: f.toMs, limit: REFUSALS_PAGE, ...(after ? { after } : {}), ...(caller !== undefined ? { caller } : {}) });
      read += page.length;
      if (read > this.limit) throw new RefusedError(400, `${periodOf(f.fromMs, f.toMs)} holds more than ${this.limit.toLocaleString('en-GB')} refused submissions, the most one report counts: ask for it in parts (a shorter from/to, or one sender)`);
      for (const r of page) {
        const called = SUBMISSION_PATH.exec(r.url)?.[1]?.toUpperCase();
        if (called === undefined || r.status === null || (channels !== null && !channels.has(called))) continue;
        if (f.sender !== undefined && r.caller !== f.sender && r.actingFor !== f.sender) continue;
        const summary = readRefusal(r.responseBody);
        // An answer that names no entry (not a StandardResponse) still refused one submission of at least one message.
        out.push({ at: r.at, code: summary?.code ?? `HTTP ${r.status}`, entries: summary?.entries ?? 1 });
      }
      const last = page.at(-1);
      if (page.length < REFUSALS_PAGE || !last) return out;
      after = { at: last.at, chain: last.chain, seq: last.seq };
    }
  }

  /**
   * Messages in the filter that the viewer may see; a participant's view of others' copies is cut to its
   * own. A replayed or requeued copy was asked for by its recipient, not sent by the original's sender:
   * the sender does not see it (it would tell the sender what the recipient replayed).
   */
  private async visible(viewer: Viewer, query: Omit<TraceQuery, 'limit'>): Promise<TracedMessage[]> {
    if (viewer.kind === 'operator') return this.read(query);
    // A participant's messages are read as such (those it sent, those with a copy for it), so that the limit
    // counts its own and not the whole DIP's traffic: read unfiltered and cut afterwards, a busy DIP refused
    // every participant its reports, and the refusal told it how busy the DIP was.
    const me = viewer.dipId;
    const [sent, received] = await Promise.all([
      query.sender === undefined || query.sender === me ? this.read({ ...query, sender: me }) : [],
      query.recipient === undefined || query.recipient === me ? this.read({ ...query, recipient: me }) : [],
    ]);
    // Up to twice 200,000 messages: folded in slices, the event loop taking turns between (src/domain/slices.ts).
    const slices = new Slices();
    const byId = new Map<string, TracedMessage>();
    for (const part of [sent, received]) {
      for (const m of part) {
        byId.set(m.transactionId, m);
        if (slices.due()) await slices.pause();
      }
    }
    if (byId.size > this.limit) throw tooMany(query, this.limit, this.counts !== null);
    const mine = (m: TracedMessage) => m.sender === me && m.replayOf === null;
    const seen = await slices.filter(await slices.sort([...byId.values()], (a, b) => a.receivedAt - b.receivedAt), (m) => mine(m) || m.deliveries.some((d) => d.recipient === me));
    return slices.map(seen, (m) => (mine(m) ? asSent(m, me) : { ...m, deliveries: m.deliveries.filter((d) => d.recipient === me), routing: undefined }));
  }

  /**
   * One more than the limit: the store reads the period from its start, so a period holding more would be
   * cut at its end, and its totals silently short. Refused instead, saying how to ask.
   */
  private async read(query: Omit<TraceQuery, 'limit'>): Promise<TracedMessage[]> {
    const found = await this.traces.trace({ ...query, limit: this.limit + 1 });
    if (found.length > this.limit) throw tooMany(query, this.limit, this.counts !== null);
    return found;
  }

  /**
   * The messages a report counts: originals only (a replay or requeue is not a message sent again), and with
   * a recipient named, only that recipient's copies ("outgoing volumes by individual recipient", spec 5.11.1).
   */
  private async filtered(viewer: Viewer, f: ReportFilter, withMpan?: true): Promise<TracedMessage[]> {
    const visible = await this.visible(viewer, { fromMs: f.fromMs, toMs: f.toMs, channels: f.channels, sender: f.sender, recipient: f.recipient, withMpan });
    const slices = new Slices();
    const originals = await slices.filter(visible, (m) => m.replayOf === null);
    return f.recipient === undefined ? originals : slices.map(originals, (m) => ({ ...m, deliveries: m.deliveries.filter((d) => d.recipient === f.recipient) }));
  }

  /**
   * Messages in (sent by participants: the DIP's own status messages and test messages were not received,
   * and counting them would make every dead letter add one message "in"), copies delivered out, errors
   * (copies dead-lettered) and copies pending, per bucket; the DIP's own messages' copies count as copies.
   * With the activity log kept and no recipient named, also the submissions refused, the messages they
   * carried, and the refusals by MSG code, in the bucket of their arrival (spec 5.11.1, "error messages").
   */
  private async throughputNow(viewer: Viewer, f: ReportFilter): Promise<Array<{ bucket: string } & ThroughputCounts>> {
    const refusals = await this.refusals(viewer, f);
    const buckets = new Map<number, ThroughputCounts>();
    const b = (ms: number) => {
      const k = bucketStart(ms, f.granularity);
      let x = buckets.get(k);
      if (!x) buckets.set(k, (x = { in: 0, out: 0, errors: 0, pending: 0, ...(refusals ? { refused: 0, refusedMessages: 0 } : {}) }));
      return x;
    };
    if (this.counts) {
      for (const r of await this.counts.counts(this.countQuery(viewer, f))) {
        const x = b(r.bucketMs);
        x.in += r.in;
        x.out += r.out;
        x.errors += r.errors;
        x.pending += r.pending;
      }
    } else {
      for (const m of await this.filtered(viewer, f)) {
        if (m.sender !== this.dipId) b(m.receivedAt).in += 1;
        for (const d of m.deliveries) {
          if (d.state === 'delivered') b(d.deliveredAt ?? m.receivedAt).out += 1;
          else if (d.state === 'pending') b(m.receivedAt).pending += 1;
          else b(d.deadLetter?.at ?? m.receivedAt).errors += 1;
        }
      }
    }
    // Codes are counted in a Map (a code is read from a stored answer), given as an object (Object.fromEntries: own properties) at the end.
    const codes = new Map<ThroughputCounts, Map<string, number>>();
    for (const r of refusals ?? []) {
      const x = b(r.at);
      x.refused! += 1;
      x.refusedMessages! += r.entries;
      let byCode = codes.get(x);
      if (!byCode) codes.set(x, (byCode = new Map<string, number>()));
      byCode.set(r.code, (byCode.get(r.code) ?? 0) + 1);
    }
    return [...buckets].sort(([a], [c]) => a - c).map(([start, x]) => ({ bucket: new Date(start).toISOString(), ...x, ...(refusals ? { refusedCodes: Object.fromEntries(codes.get(x) ?? []) } : {}) }));
  }

  /** End-to-end latency (receipt to delivered) and the DIP's own processing time (receipt to first call), per bucket. */
  private async latencyNow(viewer: Viewer, f: ReportFilter): Promise<Array<{ bucket: string; endToEnd: LatencyStats; dipProcessing: LatencyStats }>> {
    if (this.counts) {
      return (await this.counts.latency(this.countQuery(viewer, f))).map((r) => ({ bucket: new Date(r.bucketMs).toISOString(), endToEnd: countedLatency(r.endToEnd), dipProcessing: countedLatency(r.dipProcessing) }));
    }
    const buckets = new Map<number, { e2e: number[]; internal: number[] }>();
    for (const m of await this.filtered(viewer, f)) {
      const k = bucketStart(m.receivedAt, f.granularity);
      let x = buckets.get(k);
      if (!x) buckets.set(k, (x = { e2e: [], internal: [] }));
      for (const d of m.deliveries) {
        if (d.deliveredAt !== null) x.e2e.push(d.deliveredAt - m.receivedAt);
        // A copy first called only after it was dead-lettered (an operator's requeue, days later perhaps) is
        // left out: that wait was the operator's, not the DIP's processing (report-counts-sql.ts alike).
        if (d.firstAttemptAt !== null && (d.deadLetter === null || d.firstAttemptAt < d.deadLetter.at)) x.internal.push(Math.max(0, d.firstAttemptAt - m.receivedAt));
      }
    }
    return [...buckets].sort(([a], [c]) => a - c).map(([start, x]) => ({ bucket: new Date(start).toISOString(), endToEnd: latencyStats(x.e2e), dipProcessing: latencyStats(x.internal) }));
  }

  /** Per message the sender sent: when it reached the DIP, and per recipient whether and when it was received. */
  private async senderAuditNow(viewer: Viewer, f: ReportFilter) {
    const sender = viewer.kind === 'participant' ? viewer.dipId : f.sender;
    return new Slices().map(await this.filtered(viewer, { ...f, sender }), (m) => ({
      transactionId: m.transactionId,
      senderUniqueReference: m.senderUniqueReference,
      channel: m.channel,
      sender: m.sender,
      atDip: new Date(m.receivedAt).toISOString(),
      recipients: m.deliveries.map((d) => ({ recipient: d.recipient, state: d.state, receivedAt: d.deliveredAt === null ? null : new Date(d.deliveredAt).toISOString() })),
    }));
  }

  /** Every message of a transaction or a workflow (correlation ID), across channels. */
  private traceNow(viewer: Viewer, by: { transactionId?: string; correlationId?: string }, fromMs: number, toMs: number): Promise<TracedMessage[]> {
    return this.visible(viewer, { fromMs, toMs, ...by });
  }

  /** The detailed journey of one transaction: every event in time order. */
  async journey(viewer: Viewer, transactionId: string): Promise<Outcome<{ transactionId: string; events: JourneyEvent[] }>> {
    const [m] = await this.visible(viewer, { fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, transactionId, withRouting: viewer.kind === 'operator' || undefined });
    if (!m) return { ok: false, status: 404, help: `no transaction ${transactionId} that you may see` };
    if (m.unreadable !== undefined) this.unreadableSeen(transactionId, m.unreadable);
    return { ok: true, value: { transactionId, events: journeyOf(m) } };
  }

  /**
   * Messages about one MPAN over a period, across channels. A participant sees them only for the times it
   * was appointed to the MPAN (any slot), as the lookup's history says (never appointed: refused), and of
   * those only what every report shows it: the messages it sent or received, of others' copies its own.
   * Being appointed is no view of what others exchanged about the MPAN (a distributor is appointed to every
   * MPAN of its area for all time).
   */
  private async mpanTraceNow(viewer: Viewer, mpan: string, fromMs: number, toMs: number): Promise<Outcome<TracedMessage[]>> {
    const messages = await this.visible(viewer, { fromMs, toMs, mpan });
    if (viewer.kind === 'operator') return { ok: true, value: messages };
    const windows = (await this.mpan.history(mpan)).filter((a) => a.dipId === viewer.dipId);
    if (windows.length === 0) return { ok: false, status: 403, help: `${viewer.dipId} has never been responsible for MPAN ${mpan}: its trace is not yours to see` };
    const inWindow = (ms: number) => windows.some((w) => w.fromMs <= ms && (w.toMs === null || ms <= w.toMs));
    return { ok: true, value: await new Slices().filter(messages, (m) => inWindow(m.receivedAt)) };
  }

  /**
   * Business processes (figure 15, spec 5.11.3): the tracked flows linked by correlation ID, and those
   * linked by MPAN; or, asked for, a participant's own chain alone. Where each stands and which are stuck.
   * Read from the period's messages the viewer may see, as every report (so the limit holds).
   */
  private async processesNow(viewer: Viewer, f: ReportFilter, stuckAfterMs: number, chain?: Chain): Promise<LinkedProcess[]> {
    const slices = new Slices();
    const now = this.now();
    const messages = await this.filtered(viewer, f, chain === undefined ? (BY_MPAN.length > 0 ? true : undefined) : chain.linkBy === 'mpan' ? true : undefined);
    if (chain) {
      const def: ProcessDefinition = { id: null, name: 'custom', linkage: chain.linkBy, stages: chain.channels, ends: [chain.channels.at(-1)!] };
      return slices.sort(await linkProcesses(def, messages, chain.linkBy, now, stuckAfterMs), (a, b) => a.startedAt - b.startedAt);
    }
    const byCorrelation = new Map<string, TracedMessage[]>();
    for (const m of messages) {
      if (slices.due()) await slices.pause();
      if (!m.correlationId) continue;
      const group = byCorrelation.get(m.correlationId);
      if (group) group.push(m);
      else byCorrelation.set(m.correlationId, [m]);
    }
    const tracked: LinkedProcess[] = await slices.map([...byCorrelation], ([correlationId, msgs]) => trackProcess(correlationId, msgs, now, stuckAfterMs));
    // After them (the sort is stable: alone, the correlation-ID processes are answered as they always were).
    for (const def of BY_MPAN) tracked.push(...(await linkProcesses(def, messages, 'mpan', now, stuckAfterMs)));
    return slices.sort(tracked, (a, b) => a.startedAt - b.startedAt);
  }
}

/**
 * Where one process stands, from its messages (one correlation ID): the tracked flow linked by correlation
 * ID they belong to (the one they start, else the one holding their channels), as stateOf says.
 */
export function trackProcess(correlationId: string, msgs: readonly TracedMessage[], now: number, stuckAfterMs: number): ProcessStatus {
  const def = BY_CORRELATION.find((p) => msgs.some((m) => m.channel === p.stages[0])) ?? BY_CORRELATION.find((p) => msgs.some((m) => p.stages.includes(m.channel)));
  return { correlationId, ...stateOf(def, msgs, now, stuckAfterMs) };
}

/**
 * The instances of one process linked by a key (an MPAN, or what a participant's chain names), from the
 * period's messages in time order, in the order they started: per key, each message on the first stage starts one, and the messages
 * on its other stages join the last one started; what comes before a first stage (it began before the
 * period, or the viewer saw no start) is no instance, and messages without the key are in none.
 */
export async function linkProcesses(def: ProcessDefinition, msgs: readonly TracedMessage[], link: 'mpan' | LinkBy, now: number, stuckAfterMs: number): Promise<LinkedProcess[]> {
  const slices = new Slices();
  const name = KEY_OF[link];
  const key = keyOf[name];
  const stages = new Set(def.stages);
  const open = new Map<string, TracedMessage[]>();
  const instances: Array<[string, TracedMessage[]]> = [];
  for (const m of msgs) {
    if (slices.due()) await slices.pause();
    const k = key(m);
    if (k === null || k === undefined || !stages.has(m.channel)) continue;
    if (m.channel === def.stages[0]) {
      const started = [m];
      open.set(k, started);
      instances.push([k, started]);
    } else open.get(k)?.push(m);
  }
  // In the order they started (the messages' order).
  return slices.map(instances, ([k, of]) => ({ [name]: k, ...stateOf(def, of, now, stuckAfterMs) }) as LinkedProcess);
}

/**
 * Where one process stands, from its messages and the definition they belong to (none: an unknown
 * process): its stages in the definition's order, and its state: complete once an end is seen; else stuck
 * when a message of it is dead-lettered or nothing has happened for `stuckAfterMs`; else in progress.
 */
function stateOf(def: ProcessDefinition | undefined, msgs: readonly TracedMessage[], now: number, stuckAfterMs: number): ProcessState {
  const order = (c: string) => (def ? def.stages.indexOf(c) : -1);
  const sorted = [...msgs].sort((a, b) => order(a.channel) - order(b.channel) || a.receivedAt - b.receivedAt);
  const last = sorted.at(-1)!;
  const lastAt = Math.max(...msgs.map((m) => m.receivedAt));
  // Event codes are archived as published, in brackets ([DSAppRejected]).
  const complete = def !== undefined && msgs.some((m) => def.ends.includes(m.channel) || def.ends.includes(`${m.channel}:${m.eventCode.replace(/^\[|\]$/g, '')}`));
  const dead = msgs.find((m) => m.deliveries.some((d) => d.state === 'dead'));
  const reason = complete ? null : dead ? `${dead.channel} ${dead.transactionId} is dead-lettered` : now - lastAt > stuckAfterMs ? `nothing since ${new Date(lastAt).toISOString()} (${Math.round((now - lastAt) / 60_000)} min)` : null;
  return {
    flow: def?.id ?? null,
    process: def?.name ?? 'unknown',
    startedAt: Math.min(...msgs.map((m) => m.receivedAt)),
    lastAt,
    stages: sorted.map((m) => ({ channel: m.channel, eventCode: m.eventCode, transactionId: m.transactionId, sender: m.sender, receivedAt: m.receivedAt, deliveries: m.deliveries.map((d) => ({ recipient: d.recipient, state: d.state })) })),
    current: last.channel,
    state: complete ? 'complete' : reason ? 'stuck' : 'in-progress',
    reason,
  };
}


export interface JourneyEvent {
  at: string;
  event: 'received' | 'validated' | 'archived' | 'unreadable' | 'routed' | 'attempt' | 'delivered' | 'rejected' | 'dead-lettered' | 'requeued' | 'discarded' | 'replayed';
  recipient?: string;
  detail: string;
}

/**
 * A message as its sender sees it: why another's copies were held back (the recipient's certificate revoked,
 * and why) replaced by a fixed text, as its status message has it (Return to Sender).
 */
function asSent(m: TracedMessage, me: string): TracedMessage {
  const held = (d: TracedMessage['deliveries'][number]) => d.recipient !== me && d.deadLetter !== null && detailForSender(d.deadLetter.detail) !== d.deadLetter.detail;
  if (!m.deliveries.some(held)) return m;
  return { ...m, deliveries: m.deliveries.map((d) => (held(d) ? { ...d, deadLetter: { ...d.deadLetter!, detail: detailForSender(d.deadLetter!.detail) } } : d)) };
}

/** A message's timeline, from what the archive and delivery journal hold. */
export function journeyOf(m: TracedMessage): JourneyEvent[] {
  const at = (ms: number) => new Date(ms).toISOString();
  const ev: Array<JourneyEvent & { ms: number }> = [];
  const push = (ms: number, e: Omit<JourneyEvent, 'at'>) => ev.push({ ms, at: at(ms), ...e });
  push(m.receivedAt, { event: 'received', detail: `${m.channel} ${m.eventCode} from ${m.sender} (${m.senderRole})${m.senderUniqueReference ? `, reference ${m.senderUniqueReference}` : ''}` });
  if (m.replayOf) push(m.receivedAt, { event: 'replayed', detail: `a replayed or requeued copy of ${m.replayOf}` });
  else push(m.receivedAt, { event: 'validated', detail: 'header and payload schema, signature, sender and duplicate checks passed (accepted 201)' });
  push(m.receivedAt, { event: 'archived', detail: 'written durably with the raw signed request before the 201' });
  // The stored copy did not open (damaged, swapped, or sealed under a data key not held): the journey is
  // still told from the journal, without the routing's reasons.
  if (m.unreadable !== undefined) push(m.receivedAt, { event: 'unreadable', detail: `the archived copy could not be opened, so why each recipient was routed is unknown: ${m.unreadable}` });
  const r = m.routing;
  const why = (id: string) => (r ? (r.primary.includes(id) ? 'primary (addressed by the sender)' : r.secondary.includes(id) ? 'MPAN lookup (secondary)' : r.always.includes(id) ? 'always' : 'routed') : 'routed');
  for (const d of m.deliveries) {
    push(m.receivedAt, { event: 'routed', recipient: d.recipient, detail: `to ${d.recipient}: ${why(d.recipient)}, queue position ${d.seq}` });
    for (const a of d.attempts) {
      if (a.pulled) push(a.startedAt, { event: 'attempt', recipient: d.recipient, detail: `pulled and acknowledged by ${d.recipient}` });
      else push(a.startedAt, { event: 'attempt', recipient: d.recipient, detail: `webhook call: ${a.status ?? 'no answer'} (${a.verdict}) in ${a.latencyMs} ms${a.error ? `: ${a.error}` : ''}` });
    }
    if (d.state === 'delivered' && d.deliveredAt !== null) push(d.deliveredAt, { event: 'delivered', recipient: d.recipient, detail: `delivered to ${d.recipient}` });
    if (d.deadLetter) {
      if (d.deadLetter.reason === 'rejected') push(d.deadLetter.at, { event: 'rejected', recipient: d.recipient, detail: `refused by ${d.recipient} (${d.deadLetter.status ?? ''}): ${d.deadLetter.detail}; a status message goes back to the sender` });
      push(d.deadLetter.at, { event: 'dead-lettered', recipient: d.recipient, detail: reasoned(d.deadLetter.reason, d.deadLetter.detail) });
      if (d.state === 'discarded') push(d.deadLetter.at, { event: d.state, recipient: d.recipient, detail: 'the operator discarded the dead letter' });
      // Requeued by the operator (the same message again, this position's outcome below) or by the recipient
      // (a copy under an R- transaction ID, whose own journey names this one as the message it copies).
      if (d.state === 'requeued') push(d.deadLetter.at, { event: d.state, recipient: d.recipient, detail: 'requeued: delivered again by the operator at the tail of the queue, or by the recipient as a copy under an R- transaction ID (its own journey)' });
      if (d.state === 'delivered') push(d.deadLetter.at, { event: 'requeued', recipient: d.recipient, detail: 'requeued by the operator, then delivered' });
    }
  }
  return ev.sort((a, b) => a.ms - b.ms).map(({ ms: _ms, ...e }) => e);
}

/**
 * A dead letter's detail behind its reason, the reason said once. A stale dead letter's detail starts with
 * its reason already ("stale: not delivered…", src/pipeline/queue-worker.ts): the sender's status message
 * carries the detail alone, without the reason beside it.
 */
function reasoned(reason: string, detail: string): string {
  return detail.startsWith(`${reason}: `) ? detail : `${reason}: ${detail}`;
}

/**
 * A text cell a spreadsheet would read as a formula (OWASP, CSV injection): it starts with a tab, a CR or
 * a NUL, or its first character after any whitespace and control characters (which spreadsheets skip) is
 * one of = + - @ or a full-width or small form of them (U+FF1D ＝, U+FF0B ＋, U+FF0D －, U+FF20 ＠,
 * U+FE66, U+FE62, U+FE63, U+FE6B), which spreadsheets normalise to them.
 */
// eslint-disable-next-line no-control-regex -- control characters before a trigger are what it looks for
const FORMULA_START = /^(?:[\t\r\0]|[\s\x00-\x1f]*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20\uFE66\uFE62\uFE63\uFE6B])/u;

/**
 * Rows as CSV (RFC 4180): nested values as JSON in their cell. Reports are opened in spreadsheets and carry
 * text participants chose (a sender's unique reference and correlation ID reach its recipients' and the
 * operator's traces), so a text cell that starts like a formula gets a leading apostrophe and is read as text.
 * Numbers are written as they are (-5 stays a number).
 */
export function toCsv(rows: Array<Record<string, unknown>>, columns?: readonly string[]): string {
  const flat = rows.map((r) => flatten(r));
  // `columns` names them when they are known beforehand: the header is written even with no row.
  const cols = columns ?? [...new Set(flat.flatMap((r) => Object.keys(r)))];
  return [cols.join(','), ...flat.map((r) => cols.map((c) => csvCell(r[c])).join(','))].join('\r\n') + '\r\n';
}

const csvCell = (v: unknown): string => {
  const s = v === null || v === undefined ? '' : typeof v === 'string' ? (FORMULA_START.test(v) ? `'${v}` : v) : JSON.stringify(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** About this many characters a piece of a written answer (csvPieces, jsonPieces). */
const PIECE_CHARS = 64 * 1024;

/**
 * toCsv's text, in pieces written in slices (src/domain/slices.ts): a listing report's 200,000 rows
 * written as one string held the event loop for seconds. The same bytes, joined.
 */
export async function* csvPieces(rows: ReadonlyArray<Record<string, unknown>>): AsyncGenerator<string> {
  const slices = new Slices();
  // The header names every row's columns, so every row is flattened once for them first; each row is
  // flattened again as it is written, so no flat copy of all 200,000 rows is kept beside them.
  const names = new Set<string>();
  for (const r of rows) {
    for (const k of Object.keys(flatten(r))) names.add(k);
    if (slices.due()) await slices.pause();
  }
  const cols = [...names];
  let piece = `${cols.join(',')}\r\n`;
  for (const row of rows) {
    const r = flatten(row);
    piece += `${cols.map((c) => csvCell(r[c])).join(',')}\r\n`;
    if (piece.length >= PIECE_CHARS) {
      yield piece;
      piece = '';
    }
    if (slices.due()) await slices.pause();
  }
  yield piece;
}

/**
 * `JSON.stringify({ ...head, rows })`, in pieces written in slices (as csvPieces): the same bytes, joined.
 * Each row is written by JSON.stringify, as it is inside the array.
 */
export async function* jsonPieces(head: Record<string, unknown>, rows: readonly unknown[]): AsyncGenerator<string> {
  const slices = new Slices();
  // `{…head,"rows":[]}`: its end is the array's, written row by row.
  const shell = JSON.stringify({ ...head, rows: [] });
  let piece = shell.slice(0, -2);
  for (let i = 0; i < rows.length; i++) {
    piece += (i === 0 ? '' : ',') + JSON.stringify(rows[i]);
    if (piece.length >= PIECE_CHARS) {
      yield piece;
      piece = '';
    }
    if (slices.due()) await slices.pause();
  }
  yield `${piece}]}`;
}

function flatten(row: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(row)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [k2, v2] of Object.entries(flatten(v as Record<string, unknown>, `${prefix}${k}.`))) out.set(k2, v2);
    else out.set(`${prefix}${k}`, v);
  }
  return Object.fromEntries(out);
}
