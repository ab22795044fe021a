import type { Compression, PublicationOwed, PublicationQuery, PublicationRecord, PublicationWithdrawal, WithdrawalNoticeOwed } from '../ports/publications.js';

/** A publication as both SQL stores keep it (columns in snake case, selected under these names). */
export const PUBLICATION_COLUMNS = `id, channel, publication_type AS "publicationType", version, publisher_dip_id AS "publisherDipId",
  effective_from AS "effectiveFrom", effective_to AS "effectiveTo", format, compression, file_name AS "fileName", description,
  public, size, sha256, published_at AS "publishedAt", recipients,
  withdrawn_at AS "withdrawnAt", withdrawn_by AS "withdrawnBy", withdrawn_reason AS "withdrawnReason", notice_recipients AS "noticeRecipients"`;

export interface PublicationRow extends Omit<PublicationRecord, 'public' | 'compression' | 'recipients' | 'withdrawn' | 'noticeRecipients'> {
  /** 0/1 in SQLite, a boolean in PostgreSQL. */
  public: number | boolean;
  compression: string;
  /** A JSON array of DIP IDs, or null. */
  recipients: string | null;
  withdrawnAt: number | null;
  withdrawnBy: string | null;
  withdrawnReason: string | null;
  /** A JSON array of DIP IDs, or null (PublicationRecord.noticeRecipients). */
  noticeRecipients: string | null;
}

export function publicationRecord(r: PublicationRow): PublicationRecord {
  const { withdrawnAt, withdrawnBy, withdrawnReason, noticeRecipients, ...rest } = r;
  // Only a withdrawn record carries the field: a live one reads as it was written.
  const withdrawn: PublicationWithdrawal | null = withdrawnAt === null ? null : { at: Number(withdrawnAt), by: withdrawnBy ?? '', reason: withdrawnReason ?? '' };
  return {
    ...rest,
    public: r.public === true || r.public === 1,
    compression: r.compression as Compression,
    recipients: r.recipients === null ? null : (JSON.parse(r.recipients) as string[]),
    ...(withdrawn ? { withdrawn } : {}),
    // Likewise: a record whose notice was never claimed reads as it was written.
    ...(noticeRecipients === null ? {} : { noticeRecipients: JSON.parse(noticeRecipients) as string[] }),
  };
}

/**
 * Sets the withdrawal columns of a publication not yet withdrawn (placeholders $1…$4 or ?, in the order of
 * withdrawalValues). Its withdrawal notice is owed (false) only when its availability notice was queued or
 * claimed (notice_claimed_at): recipients never told of it are owed neither (NULL, as the rows withdrawn
 * before withdrawal notices). One statement, so a claim on another node comes wholly before or after it.
 */
export const WITHDRAW = (param: (i: number) => string, no: string): string =>
  `UPDATE publications SET withdrawn_at = ${param(1)}, withdrawn_by = ${param(2)}, withdrawn_reason = ${param(3)},
   withdrawal_notice_queued = CASE WHEN notice_queued <> ${no} OR notice_claimed_at IS NOT NULL THEN ${no} END, withdrawal_journalled = ${no}
   WHERE id = ${param(4)} AND withdrawn_at IS NULL`;

/** What withdraw() read back: the owed notices, as the WITHDRAW statement left them. */
export function withdrawalOwed(noticeQueued: boolean | number, withdrawalNoticeQueued: boolean | number | null): WithdrawalNoticeOwed {
  if (withdrawalNoticeQueued === null) return 'none';
  return noticeQueued === true || noticeQueued === 1 ? 'owed' : 'after-availability';
}

/**
 * Claims the availability notice of a publication not withdrawn (placeholders, in the order written, as `?`
 * needs: at, the recipients as claimRecipients wrote them from what the row held (the caller reads it in the
 * same transaction, locked), id).
 */
export const CLAIM_NOTICE = (param: (i: number) => string): string =>
  `UPDATE publications SET notice_claimed_at = ${param(1)}, notice_recipients = ${param(2)} WHERE id = ${param(3)} AND withdrawn_at IS NULL`;

/** The recipients a claim records: those of earlier claims (`held`, a JSON array or null) and `sent`, once each, sorted. */
export function claimRecipients(held: string | null, sent: readonly string[]): string {
  return JSON.stringify([...new Set([...(held === null ? [] : (JSON.parse(held) as string[])), ...sent])].sort());
}

/**
 * Takes back a claim (placeholders: id, at) whose append failed, so that a later pass may claim it again.
 * A withdrawal notice owed since is left owed: a failed append does not prove "available" was not sent (a
 * commit whose answer was lost; another node's claim, overwritten by this one, that appended), and a
 * recipient told "available" must be told "withdrawn". One told "withdrawn" of what it never heard of is
 * the lesser harm. The `no` parameter is kept for the callers' shape.
 */
export const RELEASE_NOTICE = (param: (i: number) => string, no: string): string =>
  `UPDATE publications SET notice_claimed_at = NULL
   WHERE id = ${param(1)} AND notice_claimed_at = ${param(2)} AND notice_queued = ${no}`;

/**
 * What noticeQueued sets and awaitingNotice reads, by notice: the availability notice's flag (false from the
 * insert), or the withdrawal notice's (NULL until withdrawn, false from then until queued; NULL in the rows
 * withdrawn before withdrawal notices were sent, which none is owed). `no`: the store's false; `also`: what
 * else noticeQueued sets, after the flag.
 */
export function noticeColumns(notice: PublicationOwed = 'availability', no: string): { column: string; awaiting: string; at: string; also: string } {
  // An availability notice queued unclaimed went to nobody (claimNotice records those it went to).
  if (notice === 'availability') return { column: 'notice_queued', awaiting: `notice_queued = ${no} AND withdrawn_at IS NULL`, at: 'published_at', also: `, notice_recipients = COALESCE(notice_recipients, '[]')` };
  const column = notice === 'withdrawal' ? 'withdrawal_notice_queued' : 'withdrawal_journalled';
  return { column, awaiting: `${column} = ${no}`, at: 'withdrawn_at', also: '' };
}
export const withdrawalValues = (id: string, w: PublicationWithdrawal): unknown[] => [w.at, w.by, w.reason, id];

/**
 * The columns of an insert. notice_queued is false until the notice is appended (PublicationIndex.noticeQueued):
 * its column's default, true, is for the rows published before it existed, whose notice was queued or
 * whose publication was taken back.
 */
export const PUBLICATION_INSERT_COLUMNS =
  'id, channel, publication_type, version, publisher_dip_id, effective_from, effective_to, format, compression, file_name, description, public, size, sha256, published_at, recipients, notice_queued';

/** The values of an insert, in PUBLICATION_INSERT_COLUMNS order; `publicValue` writes a boolean in the engine's form. */
export function publicationValues(p: PublicationRecord, publicValue: (flag: boolean) => unknown): unknown[] {
  return [
    p.id,
    p.channel,
    p.publicationType,
    p.version,
    p.publisherDipId,
    p.effectiveFrom,
    p.effectiveTo,
    p.format,
    p.compression,
    p.fileName,
    p.description,
    publicValue(p.public),
    p.size,
    p.sha256,
    p.publishedAt,
    // Sorted: the same set of recipients is the same text, which SUPERSEDED compares.
    p.recipients === null ? null : JSON.stringify([...p.recipients].sort()),
    publicValue(false),
  ];
}

/**
 * The WHERE clause of a listing, for either engine: `param(i)` writes the i-th placeholder (`?` or `$i`).
 * Effective dates are ISO strings, so they compare as text.
 */
/**
 * The WHERE clause of a publication query, in the engine's dialect: `param` writes the i-th placeholder,
 * `names` the test that the JSON array in `recipients` holds the placeholder's value as an element
 * (exactly: never a part of one, never another case of it).
 */
export function publicationFilter(q: PublicationQuery, param: (i: number) => string, publicTrue: unknown, names: (p: string) => string): { where: string; values: unknown[] } {
  // A withdrawn publication is listed nowhere: its record stays only to answer its URL 410.
  const clauses: string[] = q.includeWithdrawn ? [] : ['withdrawn_at IS NULL'];
  const values: unknown[] = [];
  const add = (sql: (p: string) => string, value: unknown): void => {
    values.push(value);
    clauses.push(sql(param(values.length)));
  };
  if (q.channel !== undefined) add((p) => `channel = ${p}`, q.channel);
  // A type in any case (as channel IDs and event codes are read): DUoS, duos and DUOS are one type.
  if (q.publicationType !== undefined) add((p) => `lower(publication_type) = lower(${p})`, q.publicationType);
  if (q.version !== undefined) add((p) => `version = ${p}`, q.version);
  if (q.from !== undefined) add((p) => `published_at >= ${p}`, q.from);
  if (q.to !== undefined) add((p) => `published_at <= ${p}`, q.to);
  if (q.effectiveOn !== undefined) {
    // Compared by date at both ends: an effective-from or effective-to date covers the whole of that day,
    // and so does one with a time of day (2026-03-01T06:00:00Z, longer than '2026-03-01', compared as
    // text was after it: a publication in effect from 06:00 on 1 March was not effective on 1 March).
    add((p) => `(effective_from IS NULL OR substr(effective_from, 1, 10) <= substr(${p}, 1, 10))`, q.effectiveOn);
    add((p) => `(effective_to IS NULL OR substr(effective_to, 1, 10) >= substr(${p}, 1, 10))`, q.effectiveOn);
  }
  if (q.after !== undefined) {
    // The listing's order (published_at DESC, id): what comes after the last one a page listed.
    // Each value once per placeholder: SQLite's `?` are positional.
    const [before, sameMs, laterId] = [q.after.publishedAt, q.after.publishedAt, q.after.id].map((v) => {
      values.push(v);
      return param(values.length);
    });
    clauses.push(`(published_at < ${before} OR (published_at = ${sameMs} AND id > ${laterId}))`);
  }
  if (q.publicOnly) add((p) => `public = ${p}`, publicTrue);
  if (q.channels !== undefined) {
    if (q.channels.length === 0) clauses.push('1 = 0');
    else {
      const placeholders = q.channels.map((c) => {
        values.push(c);
        return param(values.length);
      });
      clauses.push(`channel IN (${placeholders.join(', ')})`);
    }
  }
  if (q.namedFor !== undefined) {
    values.push(q.namedFor, q.namedFor);
    clauses.push(`(recipients IS NULL OR publisher_dip_id = ${param(values.length - 1)} OR ${names(param(values.length))})`);
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', values };
}

/**
 * Superseded: a newer publication (not withdrawn: a withdrawn newest version leaves the one before it the newest) of the same type on the same channel exists that everyone who may read
 * this one may read too: one for every recipient, or one for the same named recipients (stored sorted,
 * so the same set is the same text). A newer report for another supplier does not supersede a supplier's
 * own, whose newest would otherwise be purged though it is the newest that supplier can see; nor does one
 * for some recipients supersede one for everyone.
 */
export const SUPERSEDED = `EXISTS (SELECT 1 FROM publications n WHERE n.channel = publications.channel
  AND n.publication_type = publications.publication_type AND n.published_at > publications.published_at
  AND (n.recipients IS NULL OR n.recipients = publications.recipients) AND n.withdrawn_at IS NULL)`;
