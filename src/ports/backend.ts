import type { Archive } from './archive.js';
import type { DataKeyStore } from './data-keys.js';
import type { DeadLetters } from './dead-letters.js';
import type { AlarmNotifierLease, QueueLeases } from './leases.js';
import type { MessageLog } from './message-log.js';
import type { MpanStore } from './mpan.js';
import type { PublicationIndex } from './publications.js';
import type { RateLimits } from './rate-limits.js';
import type { RegistryStore } from './registry.js';
import type { SignatureReplayGuard } from './replay-guard.js';
import type { PortalAccounts } from './portal-accounts.js';
import type { SavedReports } from './saved-reports.js';
import type { MailRecipients } from './mail-recipients.js';
import type { RequeueJobs } from './requeue-jobs.js';
import type { MessageTraces } from './traces.js';
import type { ReportCounts } from './report-counts.js';
import type { OperatorJournal } from './operator-journal.js';
import type { MaintenanceNotices, MaintenanceOutbox } from './maintenance.js';

/** Whether the store can take writes now; `fatal` when it never will again in this process. */
export type BackendHealth =
  | { state: 'ok' }
  | { state: 'unavailable'; reason: string; code: string | null }
  | { state: 'fatal'; reason: string };

export interface SealOptions {
  compress?: boolean;
}

/**
 * The kind of record a sealed value belongs to. With the record's key it is authenticated
 * with the value (formats 4-6, src/security/at-rest.ts), so a value moved or copied to another record, in
 * the database or in an export edited by hand, does not open there.
 */
export type SealedKind = 'outbound' | 'rawRequest' | 'totpSecret' | 'encryptionKeys' | 'nodeSecret';

/** How payloads are written at rest (src/security/at-rest.ts's Sealer); adapters call it, never bypass it. */
export interface ValueSealer {
  /**
   * `kind` and `record` name the record the value belongs to (an outbound copy: its message's transaction
   * ID); they are authenticated with it, not stored. `compress` compresses the value before sealing (an
   * outbound copy: JSON, 3-4x smaller); open() undoes it, so readers never ask. A sealer that does not seal
   * (a test store's) stores the value as it is.
   */
  seal(plain: Buffer | string, kind: SealedKind, record: string, options?: SealOptions): Buffer | string;
  /**
   * The value sealed for that record (`kind`, `record`: what it was sealed with). A value sealed in a bound
   * format for another record throws SealedForAnotherRecord; one of formats 1-3 (bound to nothing) opens.
   */
  open(sealed: Buffer, kind: SealedKind, record: string): Buffer;
  /** What is stored in place of a searchable personal value (the MPAN): equal inputs, equal outputs. */
  index(value: string): string;
}

/**
 * Everything the DIP keeps, by concern. One factory (src/adapters/backend.ts) opens the configured
 * engine; nothing else names an adapter.
 */
export interface Backend {
  readonly kind: string;
  /**
   * The embedded store opened accepting committed transactions its WAL had lost (`dip serve
   * --accept-wal-loss`): what was lost, for the storage alarm and the operator journal; else null or absent.
   */
  readonly walLossAccepted?: string | null;
  log: MessageLog;
  deadLetters: DeadLetters;
  archive: Archive;
  registry: RegistryStore;
  mpan: MpanStore;
  dataKeys: DataKeyStore;
  requeueJobs: RequeueJobs;
  /** Messages with their copies, attempts and dead letters (reports, traces, journeys). */
  traces: MessageTraces;
  /** Throughput and latency counted where the messages are (reports over periods of any size). */
  reportCounts: ReportCounts;
  /** Pattern B publication metadata (the bytes are in PublicationBlobs). */
  publications: PublicationIndex;
  /** Every administrative act, append-only (who, what, when, before and after). */
  journal: OperatorJournal;
  portalAccounts: PortalAccounts;
  /** Portal users' saved reports and when their e-mails are due. */
  savedReports: SavedReports;
  /** Addresses that confirmed they take a saved report's e-mail (secrev3 M1). */
  mailRecipients: MailRecipients;
  /** Maintenance notices (spec 5.13.5), versioned. */
  maintenance: MaintenanceNotices;
  /** Their announcements not yet sent (any node finishes them). */
  maintenanceSends: MaintenanceOutbox;
  /** From now on payloads are sealed on write (set once, before the first write). Reads open either kind. */
  useSealer(sealer: ValueSealer): void;
  health(): BackendHealth;
  /**
   * Rows an upgrade left to be filled after the schema, in the background, still not filled: false once
   * done (SQLite fills them in its schema: always false). The metric dip_storage_backfill_pending.
   */
  backfillPending(): boolean;
  /** Called whenever health() changes. */
  onHealthChange(listener: (health: BackendHealth) => void): void;
  /** Called for each group of writes made durable together (group commit): how many, and how long it took (metrics). */
  onGroupCommit(listener: (group: CommitGroup) => void): void;
  close(): Promise<void>;
}

/** One group commit: its writes (SQLite: every write of one event-loop turn; PostgreSQL: appended batches) and the time from its transaction's start until durable. */
export interface CommitGroup {
  writes: number;
  durableMs: number;
}

/**
 * What several DIP nodes share besides storage: who works which recipient queue, the signatures already
 * used, and the fair-use buckets. In one process these live in memory; in a cluster, in NATS JetStream.
 */
/**
 * Whether what the nodes share (NATS JetStream) answers this node. While it does not, no queue lease can
 * be claimed or renewed, so delivery stops cluster-wide while ingest goes on: the operator must be told
 * (GET /admin/health, dip_coordination_ok, the `coordination` alarm), not left with a green health.
 */
export type CoordinationHealth = { state: 'ok' } | { state: 'unavailable'; reason: string; since: number };

/**
 * The peer whose clock disagrees most with this node's, as its roll calls say (positive: ahead). Clocks
 * beyond the lease allowance delay takeovers; a peer's beyond the believed cap (`believed` false: five
 * lease lengths) is ignored by the leases, and a node that far behind works no queue while it hears the
 * node ahead (docs/cluster.md). Shown in GET /admin/health, dip_cluster_clock_offset_seconds and the
 * `clock-skew` alarm: skew was only logged.
 */
export interface PeerClockOffset {
  node: string;
  offsetMs: number;
  /** The skew the leases allow for (storage.nats lease skew): the `clock-skew` alarm's threshold. */
  allowanceMs: number;
  /** False when the offset is beyond what the leases believe (five lease lengths): they ignore it. */
  believed: boolean;
}

/** A node heard from once that stopped saying its roll call without saying it was leaving (killed, hung, cut off). */
export interface LostNode {
  node: string;
  /** Epoch ms. */
  lastHeardAt: number;
}

/**
 * The nodes found lost, kept where every node reads them (the shared store): a node started after the
 * loss (a survivor restarted, a node added) knows of it too, and an operator's word that it was removed
 * holds on every node, across their restarts.
 */
export interface LostNodeRecords {
  /** The nodes recorded lost and not resolved since. */
  lost(): Promise<LostNode[]>;
  /** Records `node` as lost, unless it is recorded lost already. */
  recordLost(node: LostNode, by: string): Promise<void>;
  /** `node` is no longer lost: back (heard again, or restarted under a new id), or removed by an operator. */
  resolve(node: string, why: 'returned' | 'removed', by: string): Promise<void>;
}

/**
 * Which incarnation of a cluster's leases bucket (NATS: its stream's creation time) the nodes have worked
 * in, recorded in the store every node shares, which outlives the bucket: what tells a node started
 * beside a bucket just created again (its holders before may still work their leases) from one of a
 * fresh cluster (nobody ever held a lease before).
 */
export interface LeaseIncarnationRecords {
  /**
   * Records `id` as the incarnation of `bucket` nodes work in. True when it is one created again: another
   * was recorded before it (now, or when it was first recorded). False when none was (a fresh cluster).
   */
  enter(bucket: string, id: string, by: string): Promise<boolean>;
}

export interface Coordination {
  readonly kind: string;
  /**
   * This node's id among the cluster's nodes: the holder named in the leases bucket (logged at start as
   * `leaseHolder`), `<host name or storage.nats.nodeName>-<8 hex made at start>`. Absent in one process,
   * which is the only node. A node's own alarms name it, so an operator can tell which machine lost its
   * store or its coordination.
   */
  readonly node?: string;
  leases: QueueLeases;
  /** Which node sends the notices of shared alarm conditions (absent in one process: it sends them all). */
  notifier?: AlarmNotifierLease;
  replayGuard: SignatureReplayGuard;
  rateLimits: RateLimits;
  health(): CoordinationHealth;
  /** The largest clock offset of a peer heard from lately, or null (none heard, or one process). */
  clockOffset?(): PeerClockOffset | null;
  /** The nodes that stopped saying their roll call (absent in one process). */
  lostNodes?(): LostNode[];
  /** An operator says a lost node was removed for good: every node stops raising it. False when it is not lost. */
  forgetNode?(node: string): boolean;
  close(): Promise<void>;
}

/** The data folder's volume as read at an evaluation (src/adapters/disk-space.ts). */
export interface DiskSpace {
  /** The data folder. */
  path: string;
  /** Bytes free to the DIP's user on its volume. */
  freeBytes: number;
  /** The API activity log's files on it (SQLite: activity.db with its WAL); null when it is not there (cluster: PostgreSQL's). */
  activityLogBytes: number | null;
}
