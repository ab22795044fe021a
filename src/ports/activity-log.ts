import type { ChainedActivity } from '../domain/activity.js';

export type { ActivityEntry, ChainedActivity } from '../domain/activity.js';

/** A chain's last record as stored (where its writer continues), and where retention cut it. */
export interface ChainInfo {
  chain: string;
  /**
   * The last record appended, as recorded beside the chain in the same transaction as each append: a
   * record deleted from the end of the chain is detected against it.
   */
  head: { seq: number; hash: string };
  /** The last record retention deleted (seq 0 and the genesis hash when none was): verification starts after it. */
  anchor: { seq: number; hash: string };
}

export interface ActivityQuery {
  fromMs: number;
  toMs: number;
  /** Records after this (at, chain, seq) position, for paging an export. */
  after?: { at: number; chain: string; seq: number };
  limit: number;
}

/** A loss or damage of the log found (when, and what was lost, described). */
export interface ActivityLoss {
  at: number;
  lost: string;
}

/** What a listing or an export narrows to besides its period: every member given must hold. */
export interface ActivityFilter {
  /** That caller's records and those its DIP Connection Provider made for it (indexed by caller and by acting-for). */
  caller?: string;
  /** The request answered with this `x-request-id` (indexed: a participant quoting one is found at once). */
  requestId?: string;
  /** Requests answered with this status or above; a handshake refused before HTTP has none and is left out. */
  minStatus?: number;
}

/**
 * The API activity log's store: append-only records in hash chains, apart from the archive, never
 * purged by the DIP (spec 5.8.1: nothing here deletes a record; a chain's anchor lets one whose oldest records
 * an earlier version purged still verify). Written in batches off the request path (src/pipeline/activity-recorder.ts).
 */
export interface ActivityLogStore {
  readonly kind: string;
  /**
   * Records the store found lost at an open (the embedded store: its WAL short of committed frames after a
   * crash, the file damaged, or the whole file gone: dip.db knew another log) that no `dip serve` has
   * announced yet, whichever process opened it then (`dip audit verify` too), described for the log, the
   * journal and the `storage` alarm; null when there are none.
   */
  unannouncedWalLosses?(): Promise<string | null>;
  /** Those losses are logged, journalled and recorded on a chain: later starts do not announce them again. */
  walLossesAnnounced?(): Promise<void>;
  /** Every such loss found so far (when, what), kept beside the records: `dip audit verify` reports them. */
  walLosses?(): Promise<ActivityLoss[]>;
  /**
   * Those losses no operator has acknowledged yet (and one the damaged file would not keep): while there is
   * one, GET /admin/health says the log is `damaged` and the `storage` alarm holds, across restarts.
   */
  unacknowledgedLosses?(): Promise<ActivityLoss[]>;
  /** An operator acknowledged these losses (POST /admin/activity/damage/acknowledge): kept, who and when. */
  acknowledgeLosses?(losses: readonly ActivityLoss[], by: string, at: number): Promise<void>;
  /** Keeps a damage met while running beside the others (the damaged file may refuse it: the caller tells it anyway). */
  keepLoss?(loss: ActivityLoss): Promise<void>;
  /** Appends records (of one chain, consecutive after its head), all or nothing. */
  append(records: readonly ChainedActivity[]): Promise<void>;
  /** Registers a new chain (a writer: every process writes its own) before its first record. */
  openChain(chain: string, at: number): Promise<void>;
  chains(): Promise<ChainInfo[]>;
  /** One chain's records after `afterSeq`, in order, at most `limit` (for verification). */
  chainRecords(chain: string, afterSeq: number, limit: number): Promise<ChainedActivity[]>;
  /** Records received in [fromMs, toMs), ordered by (at, chain, seq); with a request ID or a least status, only those. */
  range(query: ActivityQuery & Omit<ActivityFilter, 'caller'>): Promise<ChainedActivity[]>;
  /**
   * Records received in [fromMs, toMs), newest first, at most `limit`, narrowed by `filter` (a caller's:
   * a participant's users see the requests made as it, and no other's is read).
   */
  recent(fromMs: number, toMs: number, limit: number, filter?: ActivityFilter): Promise<ChainedActivity[]>;
  /**
   * Refused submissions: POST requests to a `/dip-channel/…` path (any case) answered 400 or above,
   * received in [fromMs, toMs), ordered by (at, chain, seq), after `after`, at most `limit`; with
   * `caller`, only that caller's and those made for it (as `recent`). The caller refines the path (the
   * store's filter also lets the channel's sub-routes through). A partial index holds only records
   * answered 400 or above, so a period's refusals are read without its accepted requests.
   */
  refusedSubmissions(query: ActivityQuery & { caller?: string }): Promise<ChainedActivity[]>;
  close(): Promise<void>;
}
