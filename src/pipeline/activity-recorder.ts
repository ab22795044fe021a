import { randomBytes, randomUUID } from 'node:crypto';
import { ChainChecker, chainEntries, GENESIS_HASH, keptUrl, longRefusalNote, maskedBody, type ActivityEntry, type ChainBreak, type ChainedActivity } from '../domain/activity.js';
import type { ActivityFilter, ActivityLogStore } from '../ports/activity-log.js';
import type { Cancel, Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';

export interface ActivitySettings {
  /** A readable name for this writer's chain (the host name); a random suffix makes it unique per process. */
  label: string;
  /** How often the batch of recorded requests is written (group-commit style, off the request path). */
  flushIntervalMs: number;
  /** Most records written in one transaction. */
  maxBatch: number;
  /** Response bodies longer than this are kept as a note of their size only. */
  maxBodyBytes: number;
  /**
   * Records waiting up to this many (the store is down, or slow): from then on `accepting()` is false and
   * the listeners refuse new requests 503 (back-pressure) until the backlog is written. Nothing is dropped:
   * a request already being served when the cap is reached is still recorded.
   */
  maxPending: number;
}

/** The recorder's backlog: what `status()` answers. */
export interface ActivityLogStatus {
  /** Records in memory not yet written. */
  waiting: number;
  /** Requests refused 503 since the start because the backlog was full (told in one summary record once it has room). */
  refused: number;
  /** The backlog is full: new requests are refused 503 until it is written. */
  full: boolean;
  /** The store refusing this process's records: since when (epoch ms) and its error; null while they are written. */
  failing: { since: number; reason: string } | null;
}

/** What a request leaves behind as it is answered: the body is masked later, in the batch. */
export type RequestRecord = Omit<ActivityEntry, 'responseBody'> & { rawBody: string | null };

/** What a listener needs to record its requests, and to know whether it may serve a new one. */
export interface ActivitySink {
  /** Keeps the record of a request that was served (or refused for another reason): never dropped. */
  record(r: RequestRecord): void;
  /**
   * Whether a new request may be served: false while the backlog is full (refuse it 503, and call
   * `refused`). `headroom`: records allowed beyond the cap (the few requests served even when full).
   */
  accepting(headroom?: number): boolean;
  /** A request refused because the backlog was full: counted, and summed up in one record once there is room. */
  refused(r: RequestRecord): void;
  /**
   * A request refused 429 by a listener's request rate per client address, before anything of it was read
   * (no session, no body): counted, and summed up in one record every COUNTED_SUMMARY_MS, with the
   * addresses it came from. Kept one by one, a flood of them would fill the log's disk at the rate it comes.
   */
  counted(r: RequestRecord): void;
}

/** A batch as written: its chained records, the chain's head after them, and how many pending records it holds. */
interface WrittenBatch {
  records: ChainedActivity[];
  head: { seq: number; hash: string };
  size: number;
}
/** How often the requests refused by a request rate are summed up in one record (the first flush after). */
export const COUNTED_SUMMARY_MS = 60_000;
/** Addresses named in one summary of rate-limited requests, the most refused first; the rest counted together. */
const COUNTED_ADDRESSES_NAMED = 20;

/** Requests refused for a full backlog and not yet summed up in a record. */
interface RefusedRun {
  n: number;
  from: number;
  to: number;
  listeners: Map<string, number>;
}

/** Requests refused by a request rate and not yet summed up: per listener, with the addresses they came from. */
interface CountedRun {
  n: number;
  from: number;
  to: number;
  addresses: Map<string, number>;
}

/**
 * Records every request to every listener in the activity log. A request only pushes its record onto an
 * in-memory batch; a timer masks the bodies, links the batch onto this process's hash chain and writes
 * it in one transaction, one at a time. A failed write keeps the batch (and the chain's head where it
 * was) and tries again at the next tick.
 */
export class ActivityRecorder implements ActivitySink {
  readonly chain: string;
  private pending: RequestRecord[] = [];
  private head = { seq: 0, hash: GENESIS_HASH };
  private writing: Promise<void> | null = null;
  private cancels: Cancel[] = [];
  private opened = false;
  /** Opening the chain failed once (logged once, not at every flush). */
  private openFailed = false;
  /** Requests refused 503 because the backlog was full, since the start; also reported by /metrics. */
  private refusedTotal = 0;
  /** Those of them not yet summed up in a record. */
  private refusedRun: RefusedRun | null = null;
  /** Requests refused by a request rate not yet summed up, per listener. */
  private countedRuns = new Map<string, CountedRun>();
  /** Stopping: what is counted is summed up now, however young. */
  private stopping = false;
  /** Addresses tracked in one run at most (a flood from many addresses grows no map without end): the rest are counted as "other". */
  private static readonly MAX_ADDRESSES = 10_000;
  /** Since when, and why, the store refuses this process's records (null while they are written). */
  private failure: { since: number; reason: string } | null = null;
  /**
   * The batch last written without success, tried again as it is until it is written or found stored:
   * rebuilt from a backlog grown meanwhile, it began with the records of a commit whose answer was lost,
   * was refused as their duplicate, and its head was never the stored one (the log stuck for good).
   */
  private unsettled: WrittenBatch | null = null;

  constructor(
    private readonly store: ActivityLogStore,
    private readonly settings: ActivitySettings,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.chain = `${settings.label}-${new Date(clock.now()).toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
  }

  /**
   * Opens this process's chain and starts the timers. A store that cannot take the chain's first row now
   * (a full disk at start, after a crash) does not stop the DIP from starting: its records wait in memory,
   * as they do while the store is down later, and each flush tries to open the chain again.
   */
  async start(): Promise<void> {
    await this.open();
    this.cancels.push(this.clock.every(this.settings.flushIntervalMs, () => void this.flush()));
  }

  /**
   * Whether the log is behind: records waiting in memory (lost if the process dies) and requests refused
   * for a full backlog are what the operator must be told of (the `activity-log` alarm, /metrics), not only
   * a line in the process's log.
   */
  status(): ActivityLogStatus {
    return { waiting: this.pending.length, refused: this.refusedTotal, full: !this.accepting(), failing: this.failure };
  }

  accepting(headroom = 0): boolean {
    return this.pending.length < this.settings.maxPending + headroom;
  }

  /** The URL is masked and cut (keptUrl) here, not at the write: a backlog of long URLs would fill memory too. */
  record(r: RequestRecord): void {
    this.pending.push({ ...r, url: keptUrl(r.url) });
  }

  counted(r: RequestRecord): void {
    let run = this.countedRuns.get(r.listener);
    if (!run) this.countedRuns.set(r.listener, (run = { n: 0, from: r.at, to: r.at, addresses: new Map() }));
    run.n += 1;
    run.from = Math.min(run.from, r.at);
    run.to = Math.max(run.to, r.at);
    const address = r.remote ?? 'unknown';
    const key = run.addresses.has(address) || run.addresses.size < ActivityRecorder.MAX_ADDRESSES ? address : 'other';
    run.addresses.set(key, (run.addresses.get(key) ?? 0) + 1);
  }

  /**
   * The requests refused by a request rate, one record per listener once its run is COUNTED_SUMMARY_MS old
   * (or at stop): how many, from when to when, and from which addresses (the most refused named).
   */
  private sumUpCounted(all: boolean): void {
    const now = this.clock.now();
    for (const [listener, run] of this.countedRuns) {
      if (!all && now - run.from < COUNTED_SUMMARY_MS) continue;
      this.countedRuns.delete(listener);
      const ranked = [...run.addresses].sort((a, b) => b[1] - a[1]);
      const named = ranked.slice(0, COUNTED_ADDRESSES_NAMED);
      const others = ranked.slice(COUNTED_ADDRESSES_NAMED).reduce((n, [, c]) => n + c, 0);
      const note = { counted: run.n, from: run.from, to: run.to, sources: Object.fromEntries(named), ...(others > 0 ? { otherSources: ranked.length - named.length, fromOtherSources: others } : {}), reason: 'refused 429 by the per-address request rate before anything of them was read: counted here, not kept one by one' };
      this.pending.push({ requestId: randomUUID(), at: run.from, listener, caller: null, remote: null, method: 'RATE-LIMITED', url: '', status: 429, durationMs: 0, rawBody: JSON.stringify(note) });
    }
  }

  refused(r: RequestRecord): void {
    if (this.refusedTotal++ % 1000 === 0) this.logger.error({ refused: this.refusedTotal, waiting: this.pending.length }, 'activity log: its backlog is full; new requests are refused 503 until it is written');
    const run = (this.refusedRun ??= { n: 0, from: r.at, to: r.at, listeners: new Map<string, number>() });
    run.n += 1;
    run.from = Math.min(run.from, r.at);
    run.to = Math.max(run.to, r.at);
    run.listeners.set(r.listener, (run.listeners.get(r.listener) ?? 0) + 1);
  }

  /**
   * The requests refused for a full backlog, summed up in one record on this chain once the backlog has
   * room again (one per refused request would refill it): how many, from when to when, on which listeners.
   */
  private sumUpRefused(): void {
    const run = this.refusedRun;
    if (run === null || !this.accepting()) return;
    this.refusedRun = null;
    const note = { refused: run.n, from: run.from, to: run.to, listeners: Object.fromEntries(run.listeners), reason: 'the activity log backlog was full: these requests were refused 503 and not served' };
    this.pending.push({ requestId: randomUUID(), at: run.from, listener: 'activity-log', caller: null, remote: null, method: 'REFUSED', url: '', status: 503, durationMs: 0, rawBody: JSON.stringify(note) });
  }

  /** Writes what is pending (one batch at a time); resolves when this flush's writes are done. */
  flush(): Promise<void> {
    this.writing ??= this.writeAll().finally(() => {
      this.writing = null;
    });
    return this.writing;
  }

  /** Whether the chain is open, opening it first if it is not yet (false while the store refuses). */
  private async open(): Promise<boolean> {
    if (this.opened) return true;
    try {
      await this.store.openChain(this.chain, this.clock.now());
    } catch (err) {
      // Its row may have been written with the answer lost (a failed sync after the insert): opened all the same.
      if (!(await this.chainStored())) {
        if (!this.openFailed) this.logger.error({ err, chain: this.chain }, 'activity log: could not open this process\'s chain; its records wait and it is tried again at each flush');
        this.openFailed = true;
        this.failed(err);
        return false;
      }
    }
    this.opened = true;
    this.failure = null;
    return true;
  }

  private async chainStored(): Promise<boolean> {
    try {
      return (await this.store.chains()).some((c) => c.chain === this.chain);
    } catch {
      return false;
    }
  }

  private async writeAll(): Promise<void> {
    if (!(await this.open())) return;
    this.sumUpRefused();
    this.sumUpCounted(this.stopping);
    while (this.pending.length > 0) {
      const batch = (this.unsettled ??= this.nextBatch());
      try {
        await this.store.append(batch.records);
      } catch (err) {
        // The commit may have gone through with its answer lost (a connection cut after COMMIT, a COMMIT
        // in doubt): tried again, the same records are refused as duplicates. The chain's head, stored in
        // the same transaction, tells; when it cannot be read now, the batch is kept as it is
        // (`unsettled`) and tried again, and the next look tells.
        if (!(await this.headIs(batch.head))) {
          if (this.failure === null) this.logger.error({ err, waiting: this.pending.length }, 'activity log write failed; the batch is kept and tried again');
          this.failed(err);
          return;
        }
      }
      this.unsettled = null;
      this.failure = null;
      this.head = batch.head;
      this.pending.splice(0, batch.size);
      this.sumUpRefused();
    }
  }

  /** The next batch of what is pending, masked and linked onto the chain's head. */
  private nextBatch(): WrittenBatch {
    const batch = this.pending.slice(0, this.settings.maxBatch);
    // The URL was masked and cut when the record was taken (keptUrl).
    const entries: ActivityEntry[] = batch.map(({ rawBody, ...rest }) => ({ ...rest, responseBody: this.kept(rawBody, rest.status) }));
    return { ...chainEntries(this.chain, this.head, entries), size: batch.length };
  }

  private failed(err: unknown): void {
    this.failure ??= { since: this.clock.now(), reason: err instanceof Error ? err.message : String(err) };
  }

  /**
   * An answer as kept: masked, or a note of its size when long. A long refusal's note also says how many
   * entries it had and its code (the throughput report counts refused messages by them); only a refusal's
   * answer is read for it, never an accepted one's (a pull of a thousand messages).
   */
  private kept(rawBody: string | null, status: number | null): string | null {
    const long = rawBody !== null && rawBody.length > this.settings.maxBodyBytes;
    return (long && status !== null && status >= 400 ? longRefusalNote(rawBody) : null) ?? maskedBody(rawBody, this.settings.maxBodyBytes);
  }

  /** Whether the store's head of this chain is `head` (false when the store cannot say). */
  private async headIs(head: { seq: number; hash: string }): Promise<boolean> {
    try {
      const stored = (await this.store.chains()).find((c) => c.chain === this.chain);
      return stored !== undefined && stored.head.seq === head.seq && stored.head.hash === head.hash;
    } catch {
      return false;
    }
  }

  async stop(): Promise<void> {
    for (const c of this.cancels) c();
    this.stopping = true;
    await this.flush();
    await this.flush();
  }
}

export interface VerifyReport {
  ok: boolean;
  chains: number;
  records: number;
  /** The first bad record found, chain by chain in the order they were started. */
  firstBad: ChainBreak | null;
  /**
   * Committed records a WAL lost after a crash, as the store found them at an open (ActivityLogStore.walLosses):
   * the lost tail took its chain's recorded head with it, so the chains verify and only this tells the gap.
   */
  walLosses: Array<{ at: number; lost: string }>;
}

/** Checks every chain from its anchor to its recorded head; names the first bad record. */
export async function verifyActivityLog(store: ActivityLogStore, pageSize = 5_000): Promise<VerifyReport> {
  const walLosses = (await store.walLosses?.()) ?? [];
  let records = 0;
  const chains = await store.chains();
  for (const c of chains) {
    const checker = new ChainChecker(c.chain, c.anchor);
    let after = c.anchor.seq;
    let last: ChainedActivity | null = null;
    for (;;) {
      const page = await store.chainRecords(c.chain, after, pageSize);
      for (const r of page) {
        const broken = checker.check(r);
        if (broken) return { ok: false, chains: chains.length, records, firstBad: broken, walLosses };
        records += 1;
        last = r;
      }
      if (page.length < pageSize) break;
      after = page.at(-1)!.seq;
    }
    const endSeq = last?.seq ?? c.anchor.seq;
    const endHash = last?.hash ?? c.anchor.hash;
    if (endSeq !== c.head.seq || endHash !== c.head.hash) {
      return {
        ok: false,
        chains: chains.length,
        records,
        firstBad: { chain: c.chain, seq: endSeq + 1, reason: `the chain ends at record ${endSeq} but its recorded head is record ${c.head.seq}: records after ${endSeq} were deleted or changed` },
        walLosses,
      };
    }
  }
  return { ok: true, chains: chains.length, records, firstBad: null, walLosses };
}

/** Every record received in [fromMs, toMs) (with a request ID or a least status, those only), oldest first, page by page. */
export async function* exportActivity(store: ActivityLogStore, fromMs: number, toMs: number, pageSize = 5_000, filter: Omit<ActivityFilter, 'caller'> = {}): AsyncGenerator<ChainedActivity> {
  let after: { at: number; chain: string; seq: number } | undefined;
  for (;;) {
    const page = await store.range({ ...filter, fromMs, toMs, after, limit: pageSize });
    yield* page;
    if (page.length < pageSize) return;
    const last = page.at(-1)!;
    after = { at: last.at, chain: last.chain, seq: last.seq };
  }
}
