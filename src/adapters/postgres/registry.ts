import pg from 'pg';
import type { Participant } from '../../domain/participant.js';
import { canonicalRoles, registeredParticipant, type ParticipantRow } from '../participant-row.js';
import type { Cancel } from '../../ports/clock.js';
import { RecordConflictError, type RegisteredParticipant, type RegistryStore, type StoredRecord, type Webhook } from '../../ports/registry.js';
import type { JournalEntry } from '../../ports/operator-journal.js';
import type { PgDatabase } from './database.js';
import { appendJournalIn } from './operator-journal.js';
import { REGISTRY_CHANNEL } from './schema.js';


/** A safety net under LISTEN/NOTIFY: how often the version is compared anyway. */
const POLL_MS = 5_000;
/** Wait before listening again after the listening connection dropped. */
const RELISTEN_MS = 1_000;

/**
 * Participants and webhooks on PostgreSQL. The change feed is LISTEN/NOTIFY: every change bumps the
 * version and NOTIFYs in the changing transaction, so the notice goes out exactly when the change
 * commits, to every node. The listening connection is a session of its own (through a pooler it must be
 * a session-mode connection); when it drops, watchers are told once (a change may have been missed) and
 * it listens again. A slow version poll stands behind it in case a notice is lost all the same.
 */
export class PgRegistry implements RegistryStore {
  private readonly watchers = new Set<() => void>();
  private listener: pg.Client | null = null;
  private stopPoll: Cancel | null = null;
  private seen = -1;
  private closed = false;

  constructor(private readonly d: PgDatabase) {}

  async upsertParticipant(p: Participant, apiKeyHash: string | null): Promise<void> {
    await this.d.tx(async (c) => {
      if (apiKeyHash === null) {
        const exists = await c.query('SELECT 1 FROM participants WHERE dip_id = $1', [p.dipId]);
        if (!exists.rowCount) throw new Error(`participant ${p.dipId} is new: an API key is required`);
      }
      await c.query(
        `${INSERT_PARTICIPANT}
         ON CONFLICT (dip_id) DO UPDATE SET roles = excluded.roles, organisation = excluded.organisation,
           connection_provider = excluded.connection_provider,
           certificate_pem = excluded.certificate_pem, certificate_fingerprint = excluded.certificate_fingerprint,
           previous_certificate_pem = excluded.previous_certificate_pem,
           previous_certificate_fingerprint = excluded.previous_certificate_fingerprint,
           previous_valid_until = excluded.previous_valid_until,
           api_key_hash = coalesce($6, participants.api_key_hash)`,
        participantParams(p, apiKeyHash),
      );
      await bump(c);
    });
    this.changed();
  }

  async insertParticipant(p: Participant, apiKeyHash: string): Promise<boolean> {
    const inserted = await this.d.tx(async (c) => {
      const done = await c.query(`${INSERT_PARTICIPANT} ON CONFLICT (dip_id) DO NOTHING`, participantParams(p, apiKeyHash));
      if (!done.rowCount) return false;
      await bump(c);
      return true;
    });
    if (inserted) this.changed();
    return inserted;
  }

  setConnectionProvider(dipId: string, expected: string | null, next: string | null): Promise<boolean> {
    return this.compareAndSet('UPDATE participants SET connection_provider = $3 WHERE dip_id = $1 AND connection_provider IS NOT DISTINCT FROM $2', [dipId, expected, next]);
  }

  setRoles(dipId: string, expected: string[], next: string[]): Promise<boolean> {
    // Compared in the canonical form (storedRoles: empty pieces dropped), as the roles were read.
    return this.compareAndSet("UPDATE participants SET roles = $3 WHERE dip_id = $1 AND array_to_string(array_remove(string_to_array(roles, ','), ''), ',') = $2", [
      dipId,
      canonicalRoles(expected),
      canonicalRoles(next),
    ]);
  }

  setCertificate(dipId: string, expected: string, next: Pick<Participant, 'certificatePem' | 'certificateFingerprint' | 'previous'>): Promise<boolean> {
    return this.compareAndSet(
      `UPDATE participants SET certificate_pem = $3, certificate_fingerprint = $4, previous_certificate_pem = $5,
         previous_certificate_fingerprint = $6, previous_valid_until = $7
       WHERE dip_id = $1 AND certificate_fingerprint = $2`,
      [dipId, expected, next.certificatePem, next.certificateFingerprint, next.previous?.certificatePem ?? null, next.previous?.certificateFingerprint ?? null, next.previous?.validUntil ?? null],
    );
  }

  async setApiKeyHash(dipId: string, expected: string, next: string, record: Omit<StoredRecord, 'version'>, expectedVersion: number, journal?: Omit<JournalEntry, 'id'>): Promise<boolean> {
    // One transaction: the key's compare-and-set and the record's new version commit together or not at all.
    // The savepoint undoes the swap when the record lost its race (another writer's version committed first).
    const outcome = await this.d.tx(async (c): Promise<'set' | 'key' | 'record'> => {
      await c.query('SAVEPOINT swap');
      const swapped = await c.query('UPDATE participants SET api_key_hash = $3 WHERE dip_id = $1 AND api_key_hash = $2', [dipId, expected, next]);
      if (!swapped.rowCount) return 'key';
      if (!(await insertVersion(c, record, expectedVersion))) {
        await c.query('ROLLBACK TO SAVEPOINT swap');
        return 'record';
      }
      if (journal) await appendJournalIn(c, journal);
      await bump(c);
      return 'set';
    });
    if (outcome === 'record') throw new RecordConflictError(record.kind, record.key, expectedVersion);
    if (outcome === 'set') this.changed();
    return outcome === 'set';
  }

  /** One conditional UPDATE: the version bumped (and NOTIFYed) in its transaction only when it changed a row. */
  private async compareAndSet(sql: string, params: unknown[]): Promise<boolean> {
    const set = await this.d.tx(async (c) => {
      const r = await c.query(sql, params);
      if (!r.rowCount) return false;
      await bump(c);
      return true;
    });
    if (set) this.changed();
    return set;
  }

  async participants(): Promise<RegisteredParticipant[]> {
    const rows = await this.d.query<ParticipantRow>(
      `SELECT dip_id AS "dipId", roles, organisation, certificate_pem AS "certificatePem", certificate_fingerprint AS "certificateFingerprint",
              api_key_hash AS "apiKeyHash", created_at AS "createdAt", connection_provider AS "connectionProvider",
              previous_certificate_pem AS "previousCertificatePem", previous_certificate_fingerprint AS "previousCertificateFingerprint",
              previous_valid_until AS "previousValidUntil" FROM participants ORDER BY dip_id`,
    );
    return rows.map(registeredParticipant);
  }

  async putWebhook(w: Webhook): Promise<void> {
    await this.d.tx(async (c) => {
      await c.query(
        `INSERT INTO webhooks (recipient_dip_id, channel, url, max_message_count, max_payload_kb, registered_by) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (recipient_dip_id, channel) DO UPDATE SET url = excluded.url,
           max_message_count = excluded.max_message_count, max_payload_kb = excluded.max_payload_kb, registered_by = excluded.registered_by`,
        [w.recipientDipId, w.channel, w.url, w.maxMessageCount, w.maxPayloadKb, w.registeredBy],
      );
      await bump(c);
    });
    this.changed();
  }

  async deleteWebhook(recipientDipId: string, channel: string): Promise<boolean> {
    const removed = await this.d.tx(async (c) => {
      const r = await c.query('DELETE FROM webhooks WHERE recipient_dip_id = $1 AND channel = $2', [recipientDipId, channel]);
      if (!r.rowCount) return false;
      await bump(c);
      return true;
    });
    if (removed) this.changed();
    return removed;
  }

  async removeParticipant(dipId: string): Promise<boolean> {
    const removed = await this.d.tx(async (c) => {
      const r = await c.query('DELETE FROM participants WHERE dip_id = $1', [dipId]);
      await c.query('DELETE FROM webhooks WHERE recipient_dip_id = $1', [dipId]);
      if (!r.rowCount) return false;
      await bump(c);
      return true;
    });
    if (removed) this.changed();
    return removed;
  }

  async putRecord(record: Omit<StoredRecord, 'version'>, expectedVersion: number): Promise<StoredRecord> {
    // A conflict leaves the transaction as a value: tx() classifies whatever it throws as a store failure.
    const stored = await this.d.tx(async (c): Promise<StoredRecord | null> => {
      if (!(await insertVersion(c, record, expectedVersion))) return null;
      await bump(c);
      return { ...record, version: expectedVersion + 1 };
    });
    if (!stored) throw new RecordConflictError(record.kind, record.key, expectedVersion);
    this.changed();
    return stored;
  }

  async records(kind: string): Promise<StoredRecord[]> {
    return this.d.query<StoredRecord>(
      `SELECT DISTINCT ON (key) kind, key, version, doc, at, by FROM registry_records WHERE kind = $1 ORDER BY key, version DESC`,
      [kind],
    );
  }

  recordHistory(kind: string, key: string): Promise<StoredRecord[]> {
    return this.d.query<StoredRecord>('SELECT kind, key, version, doc, at, by FROM registry_records WHERE kind = $1 AND key = $2 ORDER BY version', [kind, key]);
  }

  webhooks(): Promise<Webhook[]> {
    return this.d.query<Webhook>(
      `SELECT recipient_dip_id AS "recipientDipId", channel, url, max_message_count AS "maxMessageCount", max_payload_kb AS "maxPayloadKb", registered_by AS "registeredBy" FROM webhooks`,
    );
  }

  async version(): Promise<number> {
    return (await this.d.query<{ version: number }>('SELECT version FROM registry_version WHERE id = 1'))[0]?.version ?? 0;
  }

  watch(onChange: () => void): Cancel {
    this.watchers.add(onChange);
    if (this.watchers.size === 1) this.startFeed();
    return () => {
      this.watchers.delete(onChange);
      if (this.watchers.size === 0) void this.stopFeed();
    };
  }

  /** Stops listening (the backend closes). */
  close(): Promise<void> {
    this.closed = true;
    return this.stopFeed();
  }

  private startFeed(): void {
    this.closed = false;
    void this.listen();
    this.stopPoll = this.d.options.clock.every(POLL_MS, () => {
      this.version().then(
        (v) => {
          if (this.seen !== -1 && v !== this.seen) this.changed();
          this.seen = v;
        },
        () => {},
      );
    });
  }

  private async stopFeed(): Promise<void> {
    this.stopPoll?.();
    this.stopPoll = null;
    const l = this.listener;
    this.listener = null;
    await l?.end().catch(() => {});
  }

  private async listen(): Promise<void> {
    if (this.closed || this.watchers.size === 0) return;
    const client = new pg.Client({ connectionString: this.d.url, application_name: 'opendip-registry-feed' });
    const again = () => {
      if (this.listener !== client) return;
      this.listener = null;
      client.end().catch(() => {});
      // A change may have gone by while nobody listened.
      this.changed();
      this.d.options.clock.after(RELISTEN_MS, () => void this.listen());
    };
    client.on('error', again);
    client.on('end', again);
    client.on('notification', () => this.changed());
    this.listener = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${REGISTRY_CHANNEL}`);
    } catch {
      again();
    }
  }

  private changed(): void {
    for (const w of this.watchers) w();
  }
}

/**
 * Adds version `expectedVersion + 1` of a record in this transaction; false, adding nothing, when the latest
 * is not `expectedVersion`. Two writers that both read the same latest version: the primary key lets one in.
 */
async function insertVersion(c: pg.PoolClient, record: Omit<StoredRecord, 'version'>, expectedVersion: number): Promise<boolean> {
  const { rows } = await c.query<{ version: number | null }>('SELECT max(version) AS version FROM registry_records WHERE kind = $1 AND key = $2', [record.kind, record.key]);
  if ((rows[0]?.version ?? 0) !== expectedVersion) return false;
  const inserted = await c.query('INSERT INTO registry_records (kind, key, version, doc, at, by) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING', [
    record.kind,
    record.key,
    expectedVersion + 1,
    JSON.stringify(record.doc),
    record.at,
    record.by,
  ]);
  return Boolean(inserted.rowCount);
}

/** Bumps the version and tells every listener, both at this transaction's COMMIT. */
async function bump(c: pg.PoolClient): Promise<void> {
  const { rows } = await c.query<{ version: number }>('UPDATE registry_version SET version = version + 1 WHERE id = 1 RETURNING version');
  await c.query('SELECT pg_notify($1, $2)', [REGISTRY_CHANNEL, String(rows[0]?.version ?? 0)]);
}

const INSERT_PARTICIPANT = `INSERT INTO participants (dip_id, roles, organisation, certificate_pem, certificate_fingerprint, api_key_hash, created_at, connection_provider,
                                   previous_certificate_pem, previous_certificate_fingerprint, previous_valid_until)
         VALUES ($1, $2, $3, $4, $5, coalesce($6, ''), $7, $8, $9, $10, $11)`;

const participantParams = (p: Participant, apiKeyHash: string | null) => [
          p.dipId,
          p.roles.join(','),
          p.organisation,
          p.certificatePem,
          p.certificateFingerprint,
          apiKeyHash,
          p.createdAt,
          p.connectionProvider,
          p.previous?.certificatePem ?? null,
          p.previous?.certificateFingerprint ?? null,
          p.previous?.validUntil ?? null
];
