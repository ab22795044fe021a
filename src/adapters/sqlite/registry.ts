import type { Participant } from '../../domain/participant.js';
import { canonicalRoles, registeredParticipant, storedRoles, type ParticipantRow } from '../participant-row.js';
import type { Cancel } from '../../ports/clock.js';
import { RecordConflictError, type RegisteredParticipant, type RegistryStore, type StoredRecord, type Webhook } from '../../ports/registry.js';
import type { JournalEntry } from '../../ports/operator-journal.js';
import type { SqliteDatabase } from './database.js';
import { JOURNAL_INSERT, journalValues } from './operator-journal.js';

/** How often a running DIP checks whether another process (the CLI) changed the registry, unless told otherwise. */
const POLL_MS = 500;


interface RecordRow {
  kind: string;
  key: string;
  version: number;
  doc: string;
  at: number;
  by: string;
}

const fromRow = (r: RecordRow): StoredRecord => ({ ...r, doc: JSON.parse(r.doc) as unknown });

/**
 * Participants and webhooks. The change feed is a version number every change bumps: a watcher checks
 * it (one tiny read) every half second, which also sees what the CLI changed from another process.
 */
export class SqliteRegistry implements RegistryStore {
  private readonly s;
  private readonly watchers = new Set<() => void>();

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      insertParticipant: db.prepare(`${INSERT_PARTICIPANT} ON CONFLICT (dip_id) DO NOTHING`),
      upsertParticipant: db.prepare(
        `${INSERT_PARTICIPANT}
         ON CONFLICT (dip_id) DO UPDATE SET roles = excluded.roles, organisation = excluded.organisation,
           connection_provider = excluded.connection_provider,
           certificate_pem = excluded.certificate_pem, certificate_fingerprint = excluded.certificate_fingerprint,
           previous_certificate_pem = excluded.previous_certificate_pem,
           previous_certificate_fingerprint = excluded.previous_certificate_fingerprint,
           previous_valid_until = excluded.previous_valid_until,
           api_key_hash = coalesce(@newApiKeyHash, participants.api_key_hash)`,
      ),
      // IS: null compares equal to null (no provider expected).
      setConnectionProvider: db.prepare('UPDATE participants SET connection_provider = @next WHERE dip_id = @dipId AND connection_provider IS @expected'),
      // The roles' compare is the canonical form's (storedRoles), checked in the same write transaction.
      rolesOf: db.prepare<[string], { roles: string }>('SELECT roles FROM participants WHERE dip_id = ?'),
      setRoles: db.prepare('UPDATE participants SET roles = @next WHERE dip_id = @dipId AND roles = @stored'),
      setCertificate: db.prepare(
        `UPDATE participants SET certificate_pem = @certificatePem, certificate_fingerprint = @certificateFingerprint,
           previous_certificate_pem = @previousCertificatePem, previous_certificate_fingerprint = @previousCertificateFingerprint,
           previous_valid_until = @previousValidUntil
         WHERE dip_id = @dipId AND certificate_fingerprint = @expected`,
      ),
      setApiKeyHash: db.prepare('UPDATE participants SET api_key_hash = @next WHERE dip_id = @dipId AND api_key_hash = @expected'),
      journal: db.prepare(JOURNAL_INSERT),
      exists: db.prepare<[string], { n: number }>('SELECT 1 AS n FROM participants WHERE dip_id = ?'),
      participants: db.prepare<[], ParticipantRow>(
        `SELECT dip_id AS dipId, roles, organisation, certificate_pem AS certificatePem, certificate_fingerprint AS certificateFingerprint,
                api_key_hash AS apiKeyHash, created_at AS createdAt, connection_provider AS connectionProvider,
                previous_certificate_pem AS previousCertificatePem, previous_certificate_fingerprint AS previousCertificateFingerprint,
                previous_valid_until AS previousValidUntil FROM participants ORDER BY dip_id`,
      ),
      bumpVersion: db.prepare('UPDATE registry_version SET version = version + 1 WHERE id = 1'),
      version: db.prepare<[], { version: number }>('SELECT version FROM registry_version WHERE id = 1'),
      putWebhook: db.prepare(
        `INSERT INTO webhooks (recipient_dip_id, channel, url, max_message_count, max_payload_kb, registered_by) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (recipient_dip_id, channel) DO UPDATE SET url = excluded.url,
           max_message_count = excluded.max_message_count, max_payload_kb = excluded.max_payload_kb, registered_by = excluded.registered_by`,
      ),
      deleteWebhook: db.prepare('DELETE FROM webhooks WHERE recipient_dip_id = ? AND channel = ?'),
      deleteParticipant: db.prepare('DELETE FROM participants WHERE dip_id = ?'),
      deleteWebhooksOf: db.prepare('DELETE FROM webhooks WHERE recipient_dip_id = ?'),
      latestVersion: db.prepare<[string, string], { version: number }>('SELECT max(version) AS version FROM registry_records WHERE kind = ? AND key = ?'),
      insertRecord: db.prepare('INSERT INTO registry_records (kind, key, version, doc, at, by) VALUES (?, ?, ?, ?, ?, ?)'),
      records: db.prepare<[string], RecordRow>(
        `SELECT r.kind, r.key, r.version, r.doc, r.at, r.by FROM registry_records r
         WHERE r.kind = ? AND r.version = (SELECT max(version) FROM registry_records l WHERE l.kind = r.kind AND l.key = r.key) ORDER BY r.key`,
      ),
      history: db.prepare<[string, string], RecordRow>('SELECT kind, key, version, doc, at, by FROM registry_records WHERE kind = ? AND key = ? ORDER BY version'),
      webhooks: db.prepare<[], Webhook>(
        `SELECT recipient_dip_id AS recipientDipId, channel, url, max_message_count AS maxMessageCount,
                max_payload_kb AS maxPayloadKb, registered_by AS registeredBy FROM webhooks`,
      ),
    };
  }

  async upsertParticipant(p: Participant, apiKeyHash: string | null): Promise<void> {
    await this.d.write(() => {
      if (apiKeyHash === null && !this.s.exists.get(p.dipId)) throw new Error(`participant ${p.dipId} is new: an API key is required`);
      this.s.upsertParticipant.run(participantParams(p, apiKeyHash));
      this.s.bumpVersion.run();
    });
    this.changed();
  }

  async insertParticipant(p: Participant, apiKeyHash: string): Promise<boolean> {
    const inserted = await this.d.write(() => {
      if (this.s.insertParticipant.run(participantParams(p, apiKeyHash)).changes === 0) return false;
      this.s.bumpVersion.run();
      return true;
    });
    if (inserted) this.changed();
    return inserted;
  }

  setConnectionProvider(dipId: string, expected: string | null, next: string | null): Promise<boolean> {
    return this.compareAndSet(() => this.s.setConnectionProvider.run({ dipId, expected, next }).changes);
  }

  setRoles(dipId: string, expected: string[], next: string[]): Promise<boolean> {
    return this.compareAndSet(() => {
      const stored = this.s.rolesOf.get(dipId)?.roles;
      if (stored === undefined || canonicalRoles(storedRoles(stored)) !== canonicalRoles(expected)) return 0;
      return this.s.setRoles.run({ dipId, stored, next: canonicalRoles(next) }).changes;
    });
  }

  setCertificate(dipId: string, expected: string, next: Pick<Participant, 'certificatePem' | 'certificateFingerprint' | 'previous'>): Promise<boolean> {
    return this.compareAndSet(() => this.s.setCertificate.run({ dipId, expected, ...certificateParams(next) }).changes);
  }

  setApiKeyHash(dipId: string, expected: string, next: string, record: Omit<StoredRecord, 'version'>, expectedVersion: number, journal?: Omit<JournalEntry, 'id'>): Promise<boolean> {
    // One write transaction: the record's version is checked before anything is written, so a conflict
    // (thrown) and a key not `expected` (0 changes) both leave the row and the record as they were.
    return this.compareAndSet(() => {
      this.checkVersion(record, expectedVersion);
      if (this.s.setApiKeyHash.run({ dipId, expected, next }).changes === 0) return 0;
      this.insertVersion(record, expectedVersion);
      if (journal) this.s.journal.run(...journalValues(journal));
      return 1;
    });
  }

  /** One conditional UPDATE: the version bumped (and watchers told) only when it changed a row. */
  private async compareAndSet(update: () => number): Promise<boolean> {
    const set = await this.d.write(() => {
      if (update() === 0) return false;
      this.s.bumpVersion.run();
      return true;
    });
    if (set) this.changed();
    return set;
  }

  async participants(): Promise<RegisteredParticipant[]> {
    return this.s.participants.all().map(registeredParticipant);
  }

  async putWebhook(w: Webhook): Promise<void> {
    await this.d.write(() => {
      this.s.putWebhook.run(w.recipientDipId, w.channel, w.url, w.maxMessageCount, w.maxPayloadKb, w.registeredBy);
      this.s.bumpVersion.run();
    });
    this.changed();
  }

  async deleteWebhook(recipientDipId: string, channel: string): Promise<boolean> {
    const removed = await this.d.write(() => {
      const changed = this.s.deleteWebhook.run(recipientDipId, channel).changes > 0;
      if (changed) this.s.bumpVersion.run();
      return changed;
    });
    if (removed) this.changed();
    return removed;
  }

  async removeParticipant(dipId: string): Promise<boolean> {
    const removed = await this.d.write(() => {
      const gone = this.s.deleteParticipant.run(dipId).changes > 0;
      this.s.deleteWebhooksOf.run(dipId);
      if (gone) this.s.bumpVersion.run();
      return gone;
    });
    if (removed) this.changed();
    return removed;
  }

  async putRecord(record: Omit<StoredRecord, 'version'>, expectedVersion: number): Promise<StoredRecord> {
    const stored = await this.d.write(() => {
      this.checkVersion(record, expectedVersion);
      const put = this.insertVersion(record, expectedVersion);
      this.s.bumpVersion.run();
      return put;
    });
    this.changed();
    return stored;
  }

  /** Inside a write: RecordConflictError unless the record's latest version is `expectedVersion` (0: none yet). */
  private checkVersion(record: Pick<StoredRecord, 'kind' | 'key'>, expectedVersion: number): void {
    const latest = this.s.latestVersion.get(record.kind, record.key)?.version ?? 0;
    if (latest !== expectedVersion) throw new RecordConflictError(record.kind, record.key, expectedVersion);
  }

  private insertVersion(record: Omit<StoredRecord, 'version'>, expectedVersion: number): StoredRecord {
    const version = expectedVersion + 1;
    this.s.insertRecord.run(record.kind, record.key, version, JSON.stringify(record.doc), record.at, record.by);
    return { ...record, version };
  }

  async records(kind: string): Promise<StoredRecord[]> {
    return this.s.records.all(kind).map(fromRow);
  }

  async recordHistory(kind: string, key: string): Promise<StoredRecord[]> {
    return this.s.history.all(kind, key).map(fromRow);
  }

  async webhooks(): Promise<Webhook[]> {
    return this.s.webhooks.all();
  }

  async version(): Promise<number> {
    return this.s.version.get()?.version ?? 0;
  }

  watch(onChange: () => void, pollMs = POLL_MS): Cancel {
    this.watchers.add(onChange);
    let seen = this.s.version.get()?.version ?? 0;
    const stop = this.d.options.clock.every(pollMs, () => {
      const version = this.s.version.get()?.version ?? 0;
      if (version === seen) return;
      seen = version;
      onChange();
    });
    return () => {
      stop();
      this.watchers.delete(onChange);
    };
  }

  /** A change made through this process is told at once, not at the next poll. */
  private changed(): void {
    for (const w of this.watchers) w();
  }
}

const INSERT_PARTICIPANT = `INSERT INTO participants (dip_id, roles, organisation, certificate_pem, certificate_fingerprint, api_key_hash, created_at, connection_provider,
                                   previous_certificate_pem, previous_certificate_fingerprint, previous_valid_until)
         VALUES (@dipId, @roles, @organisation, @certificatePem, @certificateFingerprint, @apiKeyHash, @createdAt, @connectionProvider,
                 @previousCertificatePem, @previousCertificateFingerprint, @previousValidUntil)`;

function participantParams(p: Participant, apiKeyHash: string | null) {
  return {
    dipId: p.dipId,
    roles: p.roles.join(','),
    organisation: p.organisation,
    apiKeyHash: apiKeyHash ?? '',
    newApiKeyHash: apiKeyHash,
    createdAt: p.createdAt,
    connectionProvider: p.connectionProvider,
    ...certificateParams(p),
  };
}

function certificateParams(p: Pick<Participant, 'certificatePem' | 'certificateFingerprint' | 'previous'>) {
  return {
    certificatePem: p.certificatePem,
    certificateFingerprint: p.certificateFingerprint,
    previousCertificatePem: p.previous?.certificatePem ?? null,
    previousCertificateFingerprint: p.previous?.certificateFingerprint ?? null,
    previousValidUntil: p.previous?.validUntil ?? null,
  };
}
