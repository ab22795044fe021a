/**
 * Pattern B (spec 5.6): large publications stored once, listed and downloaded many times. Two ports: the
 * index (metadata, in the backend's database beside everything else it keeps) and the blobs (the bytes:
 * files on the embedded default, a JetStream Object Store in a cluster). A publication is visible only
 * once its bytes are durable, checked against the publisher's hash, and its row is committed.
 */

/** How the stored bytes are compressed; `zlib-base64` is the published REP payload form (base64 of zlib). */
export const COMPRESSIONS = ['none', 'gzip', 'zlib', 'zlib-base64'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

/** What the publisher says about a publication (spec 5.6: date/time, version, and the rest a recipient filters by). */
export interface PublicationMetadata {
  channel: string;
  /** The publication's kind within its channel (e.g. "ISD", "DUoS-aggregated"): versions count per type. */
  publicationType: string;
  version: string;
  /** ISO dates (or date-times) the data is effective from / to; null when open. */
  effectiveFrom: string | null;
  effectiveTo: string | null;
  /** What the bytes are once decompressed: csv, jsonl, json, zip, pdf… (lower case). */
  format: string;
  compression: Compression;
  fileName: string;
  description: string | null;
  /** Listed and downloadable without a client certificate on the anonymous listener. */
  public: boolean;
  /**
   * The recipients the publisher named (a report for one supplier), who alone are notified and may list
   * and download it besides the publisher; null: every recipient of the channel.
   */
  recipients: string[] | null;
}

/** A withdrawal of a publication, by an operator or its publisher (README "Large publications"): its bytes are gone, its record stays to say so. */
export interface PublicationWithdrawal {
  at: number;
  /** The journal's actor: `operator:<name>` (or `bootstrap`), or `participant:<DIP ID>`, its publisher. */
  by: string;
  reason: string;
}

export interface PublicationRecord extends PublicationMetadata {
  id: string;
  publisherDipId: string;
  /** Bytes as stored (compressed, if it is). */
  size: number;
  /** Hex SHA-256 of the bytes as stored. */
  sha256: string;
  publishedAt: number;
  /** Set once an operator or its publisher withdrew it: listed nowhere, downloaded by nobody (410), its version not reused. */
  withdrawn?: PublicationWithdrawal | null;
  /**
   * Who its availability notice was sent to (PublicationIndex.claimNotice records them): its withdrawal
   * notice goes to exactly them, not to the channel's recipients of the day. Absent until its notice is
   * claimed or queued, and in records whose notice was queued before they were recorded (2026-12-05).
   */
  noticeRecipients?: string[] | null;
}

export interface PublicationQuery {
  channel?: string;
  publicationType?: string;
  version?: string;
  /** publishedAt within [from, to] (ms since the epoch). */
  from?: number;
  to?: number;
  /** Only publications whose effective period covers this ISO date. */
  effectiveOn?: string;
  publicOnly?: boolean;
  /** Withdrawn publications too (the publisher's own versions, which stay taken): never for a listing. */
  includeWithdrawn?: boolean;
  /** Channels the caller may see (a participant's receiving and sending channels); absent: any. */
  channels?: readonly string[];
  /** Only publications for this participant: for every recipient of the channel, naming it, or published by it (namesCaller). */
  namedFor?: string;
  /** Only those listed after this one, in the listing's order (newest first; by ID within one millisecond): the next page. */
  after?: { publishedAt: number; id: string };
  limit: number;
}

/**
 * `publicationType` on success: the spelling the type was first published under on the channel, when the
 * record's differs only in case (a type is read in any case, and kept as first written): the record is
 * stored under it.
 */
export type InsertOutcome = { ok: true; publicationType?: string } | { ok: false; reason: 'version-exists'; existing: PublicationRecord } | { ok: false; reason: 'owned-by-other'; owner: string };

/** The two notices a publication's recipients get: that it is available, and that it was withdrawn. */
export type PublicationNotice = 'availability' | 'withdrawal';

/** What the index records as owed until done: a notice, or a withdrawal's journal entry (journalled once written). */
export type PublicationOwed = PublicationNotice | 'withdrawal-journal';

/** What a withdrawal owes its recipients (PublicationIndex.withdraw). */
export type WithdrawalNoticeOwed = 'owed' | 'after-availability' | 'none';

/** Publication metadata, in the backend's database (SQLite or PostgreSQL). */
export interface PublicationIndex {
  /**
   * Records a publication, durably, unless (channel, type, version) exists already, or another publisher
   * published that type on that channel first: a publication is never overwritten, only versioned. The
   * type is compared in any case and kept as first published.
   */
  insert(record: PublicationRecord): Promise<InsertOutcome>;
  get(id: string): Promise<PublicationRecord | undefined>;
  /** Newest first; never a withdrawn one. */
  find(query: PublicationQuery): Promise<PublicationRecord[]>;
  /**
   * Publications older than `before` in `channel` that a newer version of the same type supersedes: what
   * retention may remove (the newest version of each type stays, however old).
   */
  superseded(channel: string, before: number, limit: number): Promise<PublicationRecord[]>;
  /** Channels that hold publications, for the retention sweep. */
  channels(): Promise<string[]>;
  remove(id: string): Promise<void>;
  /**
   * Marks a publication withdrawn, durably, unless it is withdrawn already: the record as it now is, or
   * undefined when there is no such publication or it was withdrawn before (the first withdrawal stands).
   * In the same write, what its recipients are owed (`notice`): 'owed', its availability notice being
   * queued, its withdrawal notice is recorded as not queued yet (noticeQueued 'withdrawal'); 'after-availability',
   * its availability notice claimed (claimNotice) but not yet recorded as queued, the same, but the withdrawal
   * notice is left to the pass for missed notices, after the grace, so that it follows the one being appended;
   * 'none', its availability notice never claimed: they were never told of it, and are owed neither notice.
   */
  withdraw(id: string, withdrawal: PublicationWithdrawal): Promise<{ record: PublicationRecord; notice: WithdrawalNoticeOwed } | undefined>;
  /**
   * Claims, durably, the right to append the publication's availability notice to `recipients`, unless it
   * is withdrawn: false when it is (or there is no such publication). Atomic with withdraw(): a withdrawal
   * after the claim owes the withdrawal notice, after the availability; one before it, a failed claim, owes
   * neither. The recipients join those of earlier claims (noticeRecipients): an append whose claim was
   * taken back may have committed, its answer lost, so whoever it named may have been told.
   */
  claimNotice(id: string, at: number, recipients: readonly string[]): Promise<boolean>;
  /** Takes back the claim made `at` whose append failed, unless the notice is recorded as queued or claimed again since. */
  releaseNotice(id: string, at: number): Promise<void>;
  /**
   * Records, durably, that the publication's notice (its availability, or its withdrawal) is in the message
   * log. insert() and withdraw() leave it unrecorded: the record and the notice are two writes, and a crash
   * between them must not lose the notice. An availability notice queued with no claim (it had no recipient)
   * records its recipients as none.
   */
  noticeQueued(id: string, notice?: PublicationOwed): Promise<void>;
  /**
   * Publications whose notice is not recorded as queued, oldest first: for 'availability' (the default),
   * published before `before` and not withdrawn; for 'withdrawal', withdrawn before `before`; for
   * 'withdrawal-journal', withdrawn before `before` and not journalled (withdraw() records it owed).
   */
  awaitingNotice(before: number, limit: number, notice?: PublicationOwed): Promise<PublicationRecord[]>;
}

/** The bytes put would have exceeded the limit: nothing is kept. */
export class BlobTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the payload is larger than the limit of ${limit} bytes`);
    this.name = 'BlobTooLarge';
  }
}

export interface StoredBlob {
  size: number;
  /** Hex SHA-256 of the plain bytes. */
  sha256: string;
}

/** Bytes a store holds under one ID, whole or partial (an upload under way, or one a crash cut short). */
export interface StoredBlobEntry {
  id: string;
  /** When bytes were last written under this ID, by the store's own clock (ms since the epoch). */
  writtenAt: number;
}

/**
 * Publication bytes, sealed at rest. put() streams (memory stays flat whatever the size) and resolves
 * only once the bytes are durable; read() streams the plain bytes of a range, opening only the sealed
 * chunks the range touches.
 */
export interface PublicationBlobs {
  readonly kind: string;
  put(id: string, source: AsyncIterable<Uint8Array>, options: { maxBytes: number }): Promise<StoredBlob>;
  /** Plain bytes `start`…`end` (inclusive) of a blob of `size` bytes; the whole of it without a range. */
  read(id: string, size: number, range?: { start: number; end: number }): AsyncIterable<Buffer>;
  /** Removes a blob (absent already: nothing happens). */
  remove(id: string, size: number): Promise<void>;
  /**
   * Every ID the store holds bytes for, whole or partial: with the index, what finds bytes no committed
   * record points to (an upload abandoned, or a crash between the bytes and the record).
   */
  list(): AsyncIterable<StoredBlobEntry>;
  /** Removes whatever is stored under the ID, whole or partial, without knowing its size. */
  discard(id: string): Promise<void>;
  close(): Promise<void>;
}

/** Seals the chunks of a stream (src/security/at-rest.ts): `context` binds each to its object and place. */
export interface ChunkSealer {
  sealChunk(plain: Buffer, context: Buffer): Buffer;
  openChunk(sealed: Buffer, context: Buffer): Buffer;
}
