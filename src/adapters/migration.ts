import type { SecurityPattern } from '../domain/channel.js';
import type { Webhook } from '../ports/registry.js';
import type { ParticipantRow } from './participant-row.js';

/**
 * Moving an embedded (SQLite) deployment to the cluster: what `dip migrate export` writes, one JSON
 * object per line, and `dip migrate import` reads. Payloads travel as stored: sealed ones stay sealed
 * (the data keys travel too, still wrapped by the same key-encryption key), so the file holds no
 * plaintext where encryption at rest is on.
 */
export type MigrationRecord =
  | { type: 'dataKey'; id: number; wrapped: string; createdAt: number }
  | ({ type: 'participant' } & ParticipantRow)
  /** registeredBy null or absent (files exported before 2026-12-05): not recorded. */
  | ({ type: 'webhook' } & Omit<Webhook, 'registeredBy'> & { registeredBy?: string | null })
  /**
   * One row of the MPAN lookup. mpan as stored: the keyed hash (Sealer.index) where encryption at rest is
   * on, so the file names no MPAN; the data keys travel, so the cluster derives the same index key and finds
   * it. A file from a store never started by a build that hashes holds clear MPANs: the cluster's first
   * start rewrites them (MpanStore.indexStoredMpans).
   */
  | { type: 'mpan'; mpan: string; slot: string; fromMs: number; toMs: number | null; dipId: string }
  /** A sender reference still within retention: refused as a duplicate after the move too. */
  | { type: 'senderRef'; senderDipId: string; ref: string; receivedAt: number }
  /**
   * pulledSeq: the last position a pull handed out (absent from files exported before 2026-12-03: 0).
   * toldSeq, toldFrom: the recipient's acknowledged position and the one before it (MessageLog.acknowledge);
   * absent from files exported before 2026-12-06: 10,000 behind the settled position, as a queue with no
   * delivery journalled read it then.
   */
  | { type: 'queue'; recipientDipId: string; channel: string; ackedSeq: number; headSeq: number; pulledSeq?: number; toldSeq?: number; toldFrom?: number }
  | {
      type: 'message';
      id: number;
      transactionId: string;
      channel: string;
      eventCode: string;
      senderDipId: string;
      senderRole: string;
      senderRef: string | null;
      correlationId: string | null;
      /** As stored: the keyed hash when encryption at rest is on. */
      mpan: string | null;
      receivedAt: number;
      /** base64 of the stored bytes. */
      outbound: string;
      sealed: boolean;
      /**
       * A replayed or requeued copy (R-…): the transaction ID of the original it copies, itself a message
       * record of the same file, exported before it (the importer links the copy to the original's new row).
       * Null or absent (files exported before 2026-12-05): not a copy, or a copy whose link was not carried.
       */
      replayOf?: string | null;
      /** A copy's recipient: the one participant that may name it in a status message. Null or absent: not kept. */
      replayFor?: string | null;
      /**
       * The security pattern it was accepted under (src/pipeline/recipient-copy.ts copyPattern). Null or absent
       * (files exported before 2026-12-05, rows stored before it was recorded): read from what was stored.
       */
      securityPattern?: SecurityPattern | null;
    }
  /**
   * An unsettled queue position (its message is exported before it). capacity: what its copy is obfuscated
   * for (src/domain/channel.ts capacityCode); null or absent (files exported before 2026-12-05): not recorded.
   */
  | { type: 'entry'; recipientDipId: string; channel: string; seq: number; messageId: number; enqueuedAt: number | null; capacity?: string | null }
  /**
   * One version of a versioned registry record (channel settings, operator accounts, register entries,
   * maintenance notices…): every version travels, so history and rollback survive the move.
   */
  | { type: 'registryRecord'; kind: string; key: string; version: number; doc: unknown; at: number; by: string }
  /** One act of the operator journal (append-only: carried in order, with its original ID). */
  | { type: 'journal'; id: number; at: number; actor: string; action: string; target: string; before: unknown; after: unknown; status: number | null }
  /** A portal user or operator sign-in: hashes and sealed secrets only, as stored. */
  | { type: 'portalAccount'; username: string; participantDipId: string | null; record: unknown; createdAt: number }
  /** A portal user's saved report (src/domain/saved-report.ts), with when its next e-mail is due (absent from files exported before 2026-12-05). */
  | { type: 'savedReport'; id: string; owner: string; name: string; record: unknown; createdAt: number; nextDueAt: number | null }
  /**
   * A maintenance notice's e-mail still to be sent (src/ports/maintenance-sends.ts), when it is due: carried
   * so that the move neither drops nor repeats it (absent from files exported before 2026-12-06).
   */
  | { type: 'maintenanceSend'; id: string; record: unknown; dueAt: number }
  /**
   * An address asked to confirm, or confirmed, for the DIP's e-mail (src/ports/mail-recipients.ts): its token
   * only as its hash, as stored. Carried so that confirmed addresses stay confirmed and an open link still
   * works after the move (absent from files exported before 2026-12-06).
   */
  | { type: 'mailRecipient'; scope: string; address: string; tokenHash: string | null; requestedAt: number; expiresAt: number; confirmedAt: number | null };

/** How many records of each kind an export or import carried. */
export type MigrationCounts = Partial<Record<MigrationRecord['type'], number>>;

/**
 * What a record read from an export (a file an operator may have edited by hand) must hold before it is
 * imported, or why not, naming it (`n`: its place in the file). A message's security pattern decides how
 * its copies are made for their recipients: "2" or 0 would give a clear pattern 1 copy on a channel at 1
 * or more, a downgrade, so only 1, 2, 3 or none (read from what was stored) are taken.
 */
export function migrationRecordProblem(r: MigrationRecord, n: number): string | null {
  if (r.type !== 'message') return null;
  const p: unknown = r.securityPattern;
  if (p === undefined || p === null || p === 1 || p === 2 || p === 3) return null;
  return `record ${n} (message ${r.transactionId}): securityPattern ${JSON.stringify(p)} is not 1, 2 or 3 (null or absent: read from what was stored)`;
}
