import Database from 'better-sqlite3';
import type { SecurityPattern } from '../../domain/channel.js';
import type { MigrationCounts, MigrationRecord } from '../migration.js';
import { ACKNOWLEDGED_BEFORE } from '../archive-sql.js';
import { realFile } from './private-file.js';
import { walLoss, WalLossError } from './wal-guard.js';

/**
 * Reads what a cluster needs from an embedded store, for `dip migrate export`: data keys, participants,
 * webhooks, the MPAN lookup, sender references within retention, the queues in flight (their positions,
 * and every unsettled entry with its message), every version of the registry's records (channel settings,
 * operator accounts, register entries, maintenance notices), the operator journal, the portal accounts, saved
 * reports, maintenance e-mails not sent yet and the e-mail addresses asked to confirm (and confirmed).
 * The archive of settled messages stays in the SQLite file (keep it for replays of what came before the move),
 * but for one: the original of a replayed or requeued copy still in flight travels with it (as a message
 * with no queue position), so the copy keeps its link (MigrationRecord `replayOf`) and a status message
 * about it still names the original to its sender.
 */
export function* exportSqlite(file: string, sinceMs: number, counts: MigrationCounts = {}): Generator<MigrationRecord> {
  // The check every open of the store makes (wal-guard.ts), before this one rebuilds the wal-index from the
  // WAL as it is: a WAL that lost acknowledged messages would be carried to the cluster short of them, without
  // a word. Refused as a start is (the same answer: restore, or dip serve --accept-wal-loss once, then export).
  const loss = walLoss(realFile(file));
  if (loss) throw new WalLossError(loss);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  const count = (t: MigrationRecord['type']) => (counts[t] = (counts[t] ?? 0) + 1);
  try {
    for (const r of db.prepare<[], { id: number; wrapped: Buffer; createdAt: number }>('SELECT id, wrapped, created_at AS createdAt FROM data_keys ORDER BY id').iterate()) {
      count('dataKey');
      yield { type: 'dataKey', id: r.id, wrapped: r.wrapped.toString('base64'), createdAt: r.createdAt };
    }
    for (const r of db
      .prepare<[], Omit<Extract<MigrationRecord, { type: 'participant' }>, 'type'>>(
        `SELECT dip_id AS dipId, roles, organisation, certificate_pem AS certificatePem, certificate_fingerprint AS certificateFingerprint,
                api_key_hash AS apiKeyHash, created_at AS createdAt, connection_provider AS connectionProvider,
                previous_certificate_pem AS previousCertificatePem, previous_certificate_fingerprint AS previousCertificateFingerprint,
                previous_valid_until AS previousValidUntil FROM participants ORDER BY dip_id`,
      )
      .iterate()) {
      count('participant');
      yield { type: 'participant', ...r };
    }
    for (const r of db
      .prepare<[], Omit<Extract<MigrationRecord, { type: 'webhook' }>, 'type'>>(
        'SELECT recipient_dip_id AS recipientDipId, channel, url, max_message_count AS maxMessageCount, max_payload_kb AS maxPayloadKb, registered_by AS registeredBy FROM webhooks',
      )
      .iterate()) {
      count('webhook');
      yield { type: 'webhook', ...r };
    }
    for (const r of db
      .prepare<[], Omit<Extract<MigrationRecord, { type: 'mpan' }>, 'type'>>('SELECT mpan, slot, from_ms AS fromMs, to_ms AS toMs, dip_id AS dipId FROM mpan_appointments')
      .iterate()) {
      count('mpan');
      yield { type: 'mpan', ...r };
    }
    for (const r of db
      .prepare<[number], { senderDipId: string; ref: string; receivedAt: number }>(
        'SELECT sender_dip_id AS senderDipId, sender_ref AS ref, received_at AS receivedAt FROM messages WHERE sender_ref IS NOT NULL AND received_at >= ?',
      )
      .iterate(sinceMs)) {
      count('senderRef');
      yield { type: 'senderRef', ...r };
    }
    // told_seq and told_from were added in place (schema.ts): a file no newer DIP opened has none, and its
    // acknowledged positions are read from the delivery journal as that version read them.
    const hasTold = db.prepare<[], { name: string }>('PRAGMA table_info(queues)').all().some((c) => c.name === 'told_seq');
    const queues = db
      .prepare<[], { id: number; recipientDipId: string; channel: string; ackedSeq: number; headSeq: number; pulledSeq: number; toldSeq: number; toldFrom: number }>(
        `SELECT queues.id, queues.recipient_dip_id AS recipientDipId, queues.channel, queues.acked_seq AS ackedSeq, queues.pulled_seq AS pulledSeq,
                ${hasTold ? 'queues.told_seq' : ACKNOWLEDGED_BEFORE} AS toldSeq, ${hasTold ? 'queues.told_from' : ACKNOWLEDGED_BEFORE} AS toldFrom,
                max(queues.acked_seq, coalesce((SELECT max(seq) FROM queue_entries e WHERE e.queue_id = queues.id), 0)) AS headSeq FROM queues`,
      )
      .all();
    // capacity was added in place too (schema.ts): a file no newer DIP opened has none, its entries the rule of their time.
    const hasCapacity = db.prepare<[], { name: string }>('PRAGMA table_info(queue_entries)').all().some((c) => c.name === 'capacity');
    const entries = db.prepare<[number, number], { seq: number; messageId: number; enqueuedAt: number | null; capacity: string | null }>(
      `SELECT seq, message_id AS messageId, enqueued_at AS enqueuedAt, ${hasCapacity ? 'capacity' : 'NULL'} AS capacity FROM queue_entries WHERE queue_id = ? AND seq > ? ORDER BY seq`,
    );
    // replay_for was added in place (schema.ts): a file no newer DIP opened has none, and its copies no recipient.
    // So were security_pattern: a file from before has none, its messages' patterns read from what was stored.
    const messageColumns = db.prepare<[], { name: string }>('PRAGMA table_info(messages)').all();
    const hasReplayFor = messageColumns.some((c) => c.name === 'replay_for');
    const hasPattern = messageColumns.some((c) => c.name === 'security_pattern');
    const message = db.prepare<[number], Omit<Extract<MigrationRecord, { type: 'message' }>, 'type' | 'outbound' | 'sealed' | 'replayOf' | 'replayFor' | 'securityPattern'> & { outbound: Buffer | string; replayOfId: number | null; replayOf: string | null; replayFor: string | null; securityPattern: SecurityPattern | null }>(
      `SELECT m.id, m.transaction_id AS transactionId, m.channel, m.event_code AS eventCode, m.sender_dip_id AS senderDipId, m.sender_role AS senderRole,
              m.sender_ref AS senderRef, m.correlation_id AS correlationId, m.mpan, m.received_at AS receivedAt, m.outbound,
              m.replay_of AS replayOfId, o.transaction_id AS replayOf, ${hasReplayFor ? 'm.replay_for' : 'NULL'} AS replayFor,
              ${hasPattern ? 'm.security_pattern' : 'NULL'} AS securityPattern
         FROM messages m LEFT JOIN messages o ON o.id = m.replay_of WHERE m.id = ?`,
    );
    const exported = new Set<number>();
    /** A stored message as a record, once: a copy's original first (the importer links the copy to it by its transaction ID). */
    function* messageRecords(id: number, where: string): Generator<MigrationRecord> {
      const m = message.get(id);
      if (!m) throw new Error(`damaged database: ${where} refers to missing message ${id}`);
      const { replayOfId, outbound, ...fields } = m;
      exported.add(id);
      // Its original, when it is still there: retention purges a settled original whatever copy points at it
      // (a replay of an old message waits in its queue with today's date), and the copy then goes as older
      // files have it, unlinked (replayOf null from the join).
      if (replayOfId !== null && fields.replayOf !== null && !exported.has(replayOfId)) yield* messageRecords(replayOfId, `the replay copy ${m.transactionId}`);
      count('message');
      const sealed = typeof outbound !== 'string';
      yield { type: 'message', ...fields, outbound: (sealed ? outbound : Buffer.from(outbound, 'utf8')).toString('base64'), sealed };
    }
    for (const q of queues) {
      count('queue');
      yield { type: 'queue', recipientDipId: q.recipientDipId, channel: q.channel, ackedSeq: q.ackedSeq, headSeq: q.headSeq, pulledSeq: q.pulledSeq, toldSeq: q.toldSeq, toldFrom: q.toldFrom };
      // The queue's new messages first, then its positions: the importer writes each kind in bulk.
      const pending = entries.all(q.id, q.ackedSeq);
      for (const e of pending) {
        if (!exported.has(e.messageId)) yield* messageRecords(e.messageId, `queue ${q.recipientDipId}/${q.channel} position ${e.seq}`);
      }
      for (const e of pending) {
        count('entry');
        yield { type: 'entry', recipientDipId: q.recipientDipId, channel: q.channel, seq: e.seq, messageId: e.messageId, enqueuedAt: e.enqueuedAt, capacity: e.capacity };
      }
    }
    for (const r of db
      .prepare<[], { kind: string; key: string; version: number; doc: string; at: number; by: string }>('SELECT kind, key, version, doc, at, by FROM registry_records ORDER BY kind, key, version')
      .iterate()) {
      count('registryRecord');
      yield { type: 'registryRecord', ...r, doc: JSON.parse(r.doc) as unknown };
    }
    const json = (text: string | null): unknown => (text === null ? null : (JSON.parse(text) as unknown));
    for (const r of db
      .prepare<[], { id: number; at: number; actor: string; action: string; target: string; before: string | null; after: string | null; status: number | null }>(
        'SELECT id, at, actor, action, target, before, after, status FROM operator_journal ORDER BY id',
      )
      .iterate()) {
      count('journal');
      yield { type: 'journal', ...r, before: json(r.before), after: json(r.after) };
    }
    for (const r of db
      .prepare<[], { username: string; participantDipId: string | null; record: string; createdAt: number }>(
        'SELECT username, participant_dip_id AS participantDipId, record, created_at AS createdAt FROM portal_accounts ORDER BY username',
      )
      .iterate()) {
      count('portalAccount');
      yield { type: 'portalAccount', ...r, record: JSON.parse(r.record) as unknown };
    }
    // saved_reports came later (schema.ts): a file no newer DIP opened has no table, and no saved report.
    const hasSavedReports = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'saved_reports'").get() !== undefined;
    for (const r of !hasSavedReports
      ? []
      : db
          .prepare<[], { id: string; owner: string; name: string; record: string; createdAt: number; nextDueAt: number | null }>(
            'SELECT id, owner, name, record, created_at AS createdAt, next_due_at AS nextDueAt FROM saved_reports ORDER BY id',
          )
          .iterate()) {
      count('savedReport');
      yield { type: 'savedReport', ...r, record: JSON.parse(r.record) as unknown };
    }
    // maintenance_sends and mail_recipients came later still: a file without them has nothing of either.
    const hasTable = (name: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
    for (const r of !hasTable('maintenance_sends')
      ? []
      : db.prepare<[], { id: string; record: string; dueAt: number }>('SELECT id, record, due_at AS dueAt FROM maintenance_sends ORDER BY id').iterate()) {
      count('maintenanceSend');
      yield { type: 'maintenanceSend', ...r, record: JSON.parse(r.record) as unknown };
    }
    for (const r of !hasTable('mail_recipients')
      ? []
      : db
          .prepare<[], Omit<Extract<MigrationRecord, { type: 'mailRecipient' }>, 'type'>>(
            `SELECT scope, address, token_hash AS tokenHash, requested_at AS requestedAt, expires_at AS expiresAt, confirmed_at AS confirmedAt
               FROM mail_recipients ORDER BY scope, address`,
          )
          .iterate()) {
      count('mailRecipient');
      yield { type: 'mailRecipient', ...r };
    }
  } finally {
    db.close();
  }
}
