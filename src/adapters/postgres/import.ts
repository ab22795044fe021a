import type pg from 'pg';
import { migrationRecordProblem, type MigrationCounts, type MigrationRecord } from '../migration.js';
import { PgDatabase, type PostgresOptions } from './database.js';
import { dayOf } from './partitions.js';
import { realmOf } from '../../ports/portal-accounts.js';
import { REGISTRY_CHANNEL } from './schema.js';
import { ACKNOWLEDGED_LOOKBACK } from '../archive-sql.js';
import { takeIds } from './write-batches.js';

const BATCH = 1000;

type Of<T extends MigrationRecord['type']> = Extract<MigrationRecord, { type: T }>;

/** The import itself, journalled after the journal it carries (an unauthenticated file's import above all: who chose to trust it). */
export interface ImportAct {
  actor: string;
  action: string;
  /** The file imported. */
  target: string;
  /** What the journal entry records besides the counts (whether the file's MAC was checked). */
  after: Record<string, unknown>;
}

/**
 * Writes what `dip migrate export` read from an embedded store into the cluster's PostgreSQL, for
 * `dip migrate import`. The target must be new: no DIP node may have opened it yet (the first node makes
 * a data key, and the exported payloads are sealed under the exported ones). Queues keep their positions,
 * so recipients see no gap and no repeat; unsettled entries keep their transaction IDs.
 */
export async function importIntoPostgres(options: PostgresOptions, records: AsyncIterable<MigrationRecord>, act?: ImportAct): Promise<MigrationCounts> {
  const d = await PgDatabase.open(options);
  const counts: MigrationCounts = {};
  const messageIds = new Map<number, number>();
  const queueIds = new Map<string, number>();
  /** Each replay copy's new row and its original's transaction ID: linked once every message is in. */
  const replayLinks: Array<{ id: number; originalTx: string }> = [];
  try {
    const [{ n: keys } = { n: 0 }] = await d.query<{ n: number }>('SELECT count(*)::int AS n FROM data_keys');
    const [{ n: messages } = { n: 0 }] = await d.query<{ n: number }>('SELECT count(*)::int AS n FROM queues WHERE head > 0');
    if (keys > 0 || messages > 0) throw new Error('the target database is in use (it has data keys or messages): import into a new database, before any DIP node starts on it');
    let pending: MigrationRecord[] = [];
    const flush = async () => {
      const group = pending;
      pending = [];
      if (group.length === 0) return;
      const type = group[0]!.type;
      counts[type] = (counts[type] ?? 0) + group.length;
      const days = type === 'senderRef' ? group.map((r) => dayOf((r as Of<'senderRef'>).receivedAt)) : type === 'message' ? group.map((r) => dayOf((r as Of<'message'>).receivedAt)) : [];
      await d.tx((c) => write(d, c, group, { messageIds, queueIds, replayLinks }), days);
    };
    let n = 0;
    for await (const r of records) {
      const problem = migrationRecordProblem(r, (n += 1));
      if (problem) throw new Error(`${problem}: nothing from it on is imported; correct the file and import it into a new database`);
      if (pending.length >= BATCH || (pending.length > 0 && pending[0]!.type !== r.type)) await flush();
      pending.push(r);
    }
    await flush();
    await d.tx(async (c) => {
      // A copy's replay_of is its original's new row, found by the transaction ID the export gave (the
      // original is exported first, but may be in a later batch than the copy's on a file written by hand).
      await linkReplayCopies(c, replayLinks);
      await c.query("SELECT setval(pg_get_serial_sequence('data_keys', 'id'), greatest((SELECT max(id) FROM data_keys), 1))");
      await c.query("SELECT setval(pg_get_serial_sequence('operator_journal', 'id'), greatest((SELECT max(id) FROM operator_journal), 1))");
      if (act) {
        await c.query('INSERT INTO operator_journal (at, actor, action, target, before, after, status) VALUES ($1, $2, $3, $4, NULL, $5, NULL)', [
          options.clock.now(),
          act.actor,
          act.action,
          act.target,
          JSON.stringify({ ...act.after, counts }),
        ]);
      }
      await c.query('UPDATE registry_version SET version = version + 1 WHERE id = 1');
      await c.query('SELECT pg_notify($1, $2)', [REGISTRY_CHANNEL, 'import']);
    });
    return counts;
  } finally {
    await d.close();
  }
}

/**
 * Points each copy's replay_of at its original's new row. A copy whose original is not in the target (a
 * file exported before copies were carried with their originals) keeps none, as before.
 */
async function linkReplayCopies(c: pg.PoolClient, links: ReadonlyArray<{ id: number; originalTx: string }>): Promise<void> {
  for (let i = 0; i < links.length; i += BATCH) {
    const group = links.slice(i, i + BATCH);
    await c.query(
      `UPDATE messages m SET replay_of = o.id
         FROM unnest($1::bigint[], $2::text[]) AS x(id, tx) JOIN messages o ON o.transaction_id = x.tx
        WHERE m.id = x.id`,
      [group.map((l) => l.id), group.map((l) => l.originalTx)],
    );
  }
}

/** What the import keeps across batches: the stored IDs of what it wrote, and the copies still to link. */
interface ImportState {
  messageIds: Map<number, number>;
  queueIds: Map<string, number>;
  replayLinks: Array<{ id: number; originalTx: string }>;
}

async function write(d: PgDatabase, c: pg.PoolClient, group: MigrationRecord[], { messageIds, queueIds, replayLinks }: ImportState): Promise<void> {
  const col = <T extends MigrationRecord, K extends keyof T>(rows: T[], k: K) => rows.map((r) => r[k]);
  switch (group[0]!.type) {
    case 'dataKey': {
      const rows = group as Array<Of<'dataKey'>>;
      await c.query('INSERT INTO data_keys (id, wrapped, created_at) SELECT * FROM unnest($1::int[], $2::bytea[], $3::bigint[])', [
        col(rows, 'id'),
        rows.map((r) => Buffer.from(r.wrapped, 'base64')),
        col(rows, 'createdAt'),
      ]);
      return;
    }
    case 'participant': {
      for (const p of group as Array<Of<'participant'>>) {
        await c.query(
          `INSERT INTO participants (dip_id, roles, organisation, certificate_pem, certificate_fingerprint, api_key_hash, created_at, connection_provider,
                                     previous_certificate_pem, previous_certificate_fingerprint, previous_valid_until)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (dip_id) DO NOTHING`,
          [p.dipId, p.roles, p.organisation, p.certificatePem, p.certificateFingerprint, p.apiKeyHash, p.createdAt, p.connectionProvider, p.previousCertificatePem, p.previousCertificateFingerprint, p.previousValidUntil],
        );
      }
      return;
    }
    case 'webhook': {
      const rows = group as Array<Of<'webhook'>>;
      await c.query(
        'INSERT INTO webhooks (recipient_dip_id, channel, url, max_message_count, max_payload_kb, registered_by) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[]) ON CONFLICT DO NOTHING',
        [col(rows, 'recipientDipId'), col(rows, 'channel'), col(rows, 'url'), col(rows, 'maxMessageCount'), col(rows, 'maxPayloadKb'), rows.map((r) => r.registeredBy ?? null)],
      );
      return;
    }
    case 'mpan': {
      const rows = group as Array<Of<'mpan'>>;
      await c.query(
        'INSERT INTO mpan_appointments (mpan, slot, from_ms, to_ms, dip_id) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[]) ON CONFLICT DO NOTHING',
        [col(rows, 'mpan'), col(rows, 'slot'), col(rows, 'fromMs'), col(rows, 'toMs'), col(rows, 'dipId')],
      );
      return;
    }
    case 'senderRef': {
      const rows = group as Array<Of<'senderRef'>>;
      await c.query('INSERT INTO sender_refs (day, sender_dip_id, sender_ref) SELECT * FROM unnest($1::int[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING', [
        rows.map((r) => dayOf(r.receivedAt)),
        col(rows, 'senderDipId'),
        col(rows, 'ref'),
      ]);
      return;
    }
    case 'queue': {
      for (const q of group as Array<Of<'queue'>>) {
        const { rows } = await c.query<{ id: number }>(
          `INSERT INTO queues (recipient_dip_id, channel, head, acked_seq, pulled_seq, told_seq, told_from) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (recipient_dip_id, channel) DO UPDATE SET head = excluded.head, acked_seq = excluded.acked_seq, pulled_seq = excluded.pulled_seq,
             told_seq = excluded.told_seq, told_from = excluded.told_from RETURNING id`,
          [q.recipientDipId, q.channel, q.headSeq, q.ackedSeq, q.pulledSeq ?? 0, ...toldOf(q)]
        );
        queueIds.set(`${q.recipientDipId}\u0000${q.channel}`, rows[0]!.id);
      }
      return;
    }
    case 'message': {
      const rows = group as Array<Of<'message'>>;
      const ids = await takeIds(c, 'message_ids', col(rows, 'receivedAt'));
      rows.forEach((r, i) => {
        messageIds.set(r.id, ids[i]!);
        if (r.replayOf) replayLinks.push({ id: ids[i]!, originalTx: r.replayOf });
      });
      // Stored bytes as they were (sealed stays sealed): bypass the sealer. replay_of is set once every
      // message is in (linkReplayCopies).
      await c.query(
        `INSERT INTO messages (id, batch_id, transaction_id, channel, event_code, sender_dip_id, sender_role, sender_ref, correlation_id, mpan, received_at, replay_of, outbound, sealed, replay_for, security_pattern)
         SELECT id, NULL, t, ch, ev, s, sr, ref, corr, mp, at, NULL, o, se, rf, sp
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bytea[], $12::boolean[], $13::text[], $14::smallint[])
             AS x(id, t, ch, ev, s, sr, ref, corr, mp, at, o, se, rf, sp)`,
        [
          ids,
          col(rows, 'transactionId'),
          col(rows, 'channel'),
          col(rows, 'eventCode'),
          col(rows, 'senderDipId'),
          col(rows, 'senderRole'),
          col(rows, 'senderRef'),
          col(rows, 'correlationId'),
          col(rows, 'mpan'),
          col(rows, 'receivedAt'),
          rows.map((r) => Buffer.from(r.outbound, 'base64')),
          col(rows, 'sealed'),
          rows.map((r) => r.replayFor ?? null),
          rows.map((r) => r.securityPattern ?? null),
        ],
      );
      await d.noteChannels(c, [...new Set(col(rows, 'channel'))]);
      return;
    }
    case 'entry': {
      const rows = group as Array<Of<'entry'>>;
      await c.query('INSERT INTO queue_entries (queue_id, seq, message_id, enqueued_at, capacity) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[])', [
        rows.map((r) => queueIds.get(`${r.recipientDipId}\u0000${r.channel}`)),
        col(rows, 'seq'),
        rows.map((r) => messageIds.get(r.messageId)),
        col(rows, 'enqueuedAt'),
        rows.map((r) => r.capacity ?? null),
      ]);
      return;
    }
    case 'registryRecord': {
      const rows = group as Array<Of<'registryRecord'>>;
      await c.query(
        'INSERT INTO registry_records (kind, key, version, doc, at, by) SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::jsonb[], $5::bigint[], $6::text[]) ON CONFLICT DO NOTHING',
        [col(rows, 'kind'), col(rows, 'key'), col(rows, 'version'), rows.map((r) => JSON.stringify(r.doc)), col(rows, 'at'), col(rows, 'by')],
      );
      return;
    }
    case 'journal': {
      const rows = group as Array<Of<'journal'>>;
      const asJson = (v: unknown) => JSON.stringify(v ?? null);
      await c.query(
        `INSERT INTO operator_journal (id, at, actor, action, target, before, after, status)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::int[]) ON CONFLICT DO NOTHING`,
        [col(rows, 'id'), col(rows, 'at'), col(rows, 'actor'), col(rows, 'action'), col(rows, 'target'), rows.map((r) => asJson(r.before)), rows.map((r) => asJson(r.after)), col(rows, 'status')],
      );
      return;
    }
    case 'portalAccount': {
      const rows = group as Array<Of<'portalAccount'>>;
      await c.query(
        // The realm as the store keeps it (realmOf): an export names none (it is its participant's, or none).
        'INSERT INTO portal_accounts (realm, username, participant_dip_id, record, created_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::bigint[]) ON CONFLICT DO NOTHING',
        [rows.map((r) => realmOf(r)), col(rows, 'username'), col(rows, 'participantDipId'), rows.map((r) => JSON.stringify(r.record)), col(rows, 'createdAt')],
      );
      return;
    }
    case 'savedReport': {
      const rows = group as Array<Of<'savedReport'>>;
      await c.query(
        'INSERT INTO saved_reports (id, owner, name, record, created_at, next_due_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::bigint[], $6::bigint[]) ON CONFLICT DO NOTHING',
        [col(rows, 'id'), col(rows, 'owner'), col(rows, 'name'), rows.map((r) => JSON.stringify(r.record)), col(rows, 'createdAt'), col(rows, 'nextDueAt')],
      );
      return;
    }
    case 'maintenanceSend': {
      const rows = group as Array<Of<'maintenanceSend'>>;
      await c.query('INSERT INTO maintenance_sends (id, record, due_at) SELECT * FROM unnest($1::text[], $2::jsonb[], $3::bigint[]) ON CONFLICT DO NOTHING', [
        col(rows, 'id'),
        rows.map((r) => JSON.stringify(r.record)),
        col(rows, 'dueAt'),
      ]);
      return;
    }
    case 'mailRecipient': {
      const rows = group as Array<Of<'mailRecipient'>>;
      await c.query(
        `INSERT INTO mail_recipients (scope, address, token_hash, requested_at, expires_at, confirmed_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[]) ON CONFLICT DO NOTHING`,
        [col(rows, 'scope'), col(rows, 'address'), col(rows, 'tokenHash'), col(rows, 'requestedAt'), col(rows, 'expiresAt'), col(rows, 'confirmedAt')],
      );
      return;
    }
  }
}

/** A queue's acknowledged position and the one before it (see MigrationRecord 'queue'). */
function toldOf(q: { ackedSeq: number; toldSeq?: number; toldFrom?: number }): [number, number] {
  const told = q.toldSeq ?? Math.max(q.ackedSeq - ACKNOWLEDGED_LOOKBACK, 0);
  return [told, q.toldFrom ?? told];
}
