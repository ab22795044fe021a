import type Database from 'better-sqlite3';
import { ACKNOWLEDGED_BEFORE, mpanIndexed } from '../archive-sql.js';
import { PORTAL_REALMS, SCHEMA_GENERATION, unreadableGeneration } from '../schema-generation.js';
import { StoreError } from '../../ports/errors.js';

/** The embedded store's schema. Statements are idempotent: applied on every open. */
/** The portal accounts' table, by realm and name (also what migrate() rebuilds an older file's into). */
const portalAccountsTable = (name: string): string => `CREATE TABLE IF NOT EXISTS ${name} (
  realm TEXT NOT NULL,
  username TEXT NOT NULL,
  participant_dip_id TEXT,
  record TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (realm, username)
);`;

/** Pending TOTP enrolments, one per account (realm and name). */
const portalEnrolmentsTable = (name: string): string => `CREATE TABLE IF NOT EXISTS ${name} (
  realm TEXT NOT NULL,
  username TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  secret_sealed TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (realm, username)
);`;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS batches (
  id INTEGER PRIMARY KEY,
  channel TEXT NOT NULL,
  sender_dip_id TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  raw BLOB NOT NULL, -- the request body exactly as signed, compressed and sealed (at-rest format 2; format 1 rows hold it deflate-raw compressed)
  signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY,
  batch_id INTEGER,
  transaction_id TEXT NOT NULL UNIQUE,
  channel TEXT NOT NULL,
  event_code TEXT NOT NULL,
  sender_dip_id TEXT NOT NULL,
  sender_role TEXT NOT NULL,
  sender_ref TEXT,
  correlation_id TEXT,
  mpan TEXT, -- a keyed hash of the MPAN when encryption at rest is on: searchable, not readable
  received_at INTEGER NOT NULL,
  replay_of INTEGER,
  outbound BLOB NOT NULL, -- sealed (AES-256-GCM) when encryption at rest is on
  replay_for TEXT, -- a replay copy's recipient: the one participant that may name it in a status message
  security_pattern INTEGER -- the pattern (1, 2, 3) its channel ran when accepted, kept for its copies; NULL: stored before it was recorded, or a status message
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_sender_ref ON messages (sender_dip_id, sender_ref) WHERE sender_ref IS NOT NULL;
CREATE TABLE IF NOT EXISTS queues (
  id INTEGER PRIMARY KEY,
  recipient_dip_id TEXT NOT NULL,
  channel TEXT NOT NULL,
  acked_seq INTEGER NOT NULL DEFAULT 0,
  -- The last position a pull handed out: a pull's acknowledgement may not pass it (nor acked_seq). migrate() adds it to older files.
  pulled_seq INTEGER NOT NULL DEFAULT 0,
  -- The recipient's acknowledged position: the last a pull's acknowledgement (or a delivery) reached, and the
  -- one before it. A pull's acknowledgement names what was set aside between the two (MessageLog.acknowledge).
  told_seq INTEGER NOT NULL DEFAULT 0,
  told_from INTEGER NOT NULL DEFAULT 0,
  UNIQUE (recipient_dip_id, channel)
);
CREATE TABLE IF NOT EXISTS queue_entries (
  queue_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  message_id INTEGER NOT NULL,
  -- Set only when a dead letter is requeued: its staleness clock restarts then, not at first receipt.
  enqueued_at INTEGER,
  -- The capacity the copy was routed in ('SDS', 'LDSO,SUP': src/domain/channel.ts capacityCode), what it is
  -- obfuscated for; NULL on entries queued before it was recorded (all the recipient's receiving roles).
  capacity TEXT,
  PRIMARY KEY (queue_id, seq)
) WITHOUT ROWID;
-- Who a message went to (status messages, purging): one small index entry per fan-out.
CREATE INDEX IF NOT EXISTS queue_entries_message ON queue_entries (message_id);
CREATE INDEX IF NOT EXISTS messages_channel_age ON messages (channel, received_at);
CREATE INDEX IF NOT EXISTS messages_batch ON messages (batch_id);
CREATE INDEX IF NOT EXISTS batches_age ON batches (channel, received_at);
CREATE TABLE IF NOT EXISTS delivery_attempts (
  id INTEGER PRIMARY KEY,
  queue_id INTEGER NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  url TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL,
  status INTEGER,
  verdict TEXT NOT NULL,
  error TEXT,
  -- A UUIDv7 given when the attempt was made (NULL in rows written before 2026-12-03); unique (migrate()).
  attempt_id TEXT
);
CREATE INDEX IF NOT EXISTS delivery_attempts_queue ON delivery_attempts (queue_id, id);
-- The calls that can have carried a queue's positions from one on (report counts: src/adapters/report-counts-sql.ts).
CREATE INDEX IF NOT EXISTS delivery_attempts_reach ON delivery_attempts (queue_id, last_seq);
CREATE TABLE IF NOT EXISTS dead_letters (
  queue_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  message_id INTEGER NOT NULL,
  reason TEXT NOT NULL,
  status INTEGER,
  detail TEXT NOT NULL,
  at INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'dead',
  PRIMARY KEY (queue_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS participants (
  dip_id TEXT PRIMARY KEY,
  roles TEXT NOT NULL,
  organisation TEXT NOT NULL,
  certificate_pem TEXT NOT NULL,
  certificate_fingerprint TEXT NOT NULL,
  api_key_hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  connection_provider TEXT, -- the DIP ID of the connection provider this participant nominated
  -- The certificate a rotation replaced, accepted for signing until previous_valid_until (epoch ms).
  previous_certificate_pem TEXT,
  previous_certificate_fingerprint TEXT,
  previous_valid_until INTEGER
);
-- Bumped on every participant or webhook change, so a running server notices what the CLI changed.
CREATE TABLE IF NOT EXISTS registry_version (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL
);
INSERT OR IGNORE INTO registry_version (id, version) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS mpan_appointments (
  mpan TEXT NOT NULL,
  slot TEXT NOT NULL,
  from_ms INTEGER NOT NULL,
  to_ms INTEGER,
  dip_id TEXT NOT NULL,
  PRIMARY KEY (mpan, slot, from_ms)
) WITHOUT ROWID;
-- Envelope encryption: data keys, each wrapped by the key-encryption key (a key file or a KMS).
CREATE TABLE IF NOT EXISTS data_keys (
  id INTEGER PRIMARY KEY,
  wrapped BLOB NOT NULL,
  created_at INTEGER NOT NULL
);
-- One-off rewrites of stored data, by name, once done (e.g. 'mpan-index': the MPAN lookup keyed by the
-- at-rest index hash). A start that finds the name skips the rewrite.
CREATE TABLE IF NOT EXISTS data_migrations (
  name TEXT PRIMARY KEY,
  done_at INTEGER NOT NULL
);
-- The stored data's generation (src/adapters/schema-generation.ts): raised by a migration that leaves data
-- older builds cannot read, and read before the schema is applied (refuseUnreadableGeneration).
CREATE TABLE IF NOT EXISTS schema_generation (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  generation INTEGER NOT NULL,
  raised_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhooks (
  recipient_dip_id TEXT NOT NULL,
  channel TEXT NOT NULL,
  url TEXT NOT NULL,
  max_message_count INTEGER NOT NULL,
  max_payload_kb INTEGER NOT NULL,
  registered_by TEXT,
  PRIMARY KEY (recipient_dip_id, channel)
);
CREATE TABLE IF NOT EXISTS requeue_jobs (
  id TEXT PRIMARY KEY,
  recipient_dip_id TEXT NOT NULL,
  channel TEXT NOT NULL,
  filter TEXT NOT NULL, -- JSON (ReplayFilter)
  up_to_seq INTEGER NOT NULL,
  cursor INTEGER NOT NULL,
  requeued INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
-- Open jobs (every node looks each minute), the listings newest first (by state: the operator portal's;
-- by recipient: the participant's; of all: the operator API's default) and the retention sweep of
-- finished jobs. Added 2026-12-04: each was a scan of the whole table. updated_at is in none, so a
-- page's progress changes no index.
CREATE INDEX IF NOT EXISTS requeue_jobs_state ON requeue_jobs (state, created_at);
CREATE INDEX IF NOT EXISTS requeue_jobs_recipient ON requeue_jobs (recipient_dip_id, created_at);
CREATE INDEX IF NOT EXISTS requeue_jobs_age ON requeue_jobs (created_at);
-- Pattern B publications (src/ports/publications.ts): metadata here, bytes in the publication blob store.
CREATE TABLE IF NOT EXISTS publications (
  id TEXT PRIMARY KEY,
  channel TEXT NOT NULL,
  publication_type TEXT NOT NULL,
  version TEXT NOT NULL,
  publisher_dip_id TEXT NOT NULL,
  effective_from TEXT,
  effective_to TEXT,
  format TEXT NOT NULL,
  compression TEXT NOT NULL,
  file_name TEXT NOT NULL,
  description TEXT,
  public INTEGER NOT NULL,
  size INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  published_at INTEGER NOT NULL,
  recipients TEXT, -- JSON array of the DIP IDs the publisher named; NULL: every recipient of the channel
  notice_queued INTEGER NOT NULL DEFAULT 1, -- 0 from the insert until the notice is in the message log
  withdrawn_at INTEGER, -- set when an operator or its publisher withdrew it (bytes removed; the record answers 410)
  withdrawn_by TEXT,
  withdrawn_reason TEXT,
  withdrawal_notice_queued INTEGER, -- 0 from the withdrawal until its notice is in the message log; NULL: not withdrawn, or owed none
  withdrawal_journalled INTEGER, -- 0 from the withdrawal until its operator journal entry is written; NULL: not withdrawn, or before
  notice_claimed_at INTEGER, -- when its availability notice was last claimed for an append (a withdrawal after it owes its notice)
  notice_recipients TEXT, -- JSON array of the DIP IDs its availability notice was sent to, its withdrawal's; NULL: not yet sent, or sent before they were recorded
  UNIQUE (channel, publication_type, version)
);
CREATE INDEX IF NOT EXISTS publications_listing ON publications (channel, publication_type, published_at);
-- Who publishes a type on a channel: its first publisher; nobody else may add versions to it.
CREATE TABLE IF NOT EXISTS publication_types (
  channel TEXT NOT NULL,
  publication_type TEXT NOT NULL,
  publisher_dip_id TEXT NOT NULL,
  PRIMARY KEY (channel, publication_type)
);
-- Versioned documents beside the participants (profiles, channel settings, operators, register entries):
-- every change is a new version; the latest is in force. Changes bump registry_version.
CREATE TABLE IF NOT EXISTS registry_records (
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  version INTEGER NOT NULL,
  doc TEXT NOT NULL,
  at INTEGER NOT NULL,
  by TEXT NOT NULL,
  PRIMARY KEY (kind, key, version)
) WITHOUT ROWID;
-- Every administrative act, append-only.
CREATE TABLE IF NOT EXISTS operator_journal (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  before TEXT,
  after TEXT,
  status INTEGER
);
-- An audit log (spec 5.8.1: it "cannot be accidentally or maliciously purged"): the engine refuses a change
-- or a delete, whoever asks; here in SCHEMA, so a database made before gets the guards at its next open.
-- Nothing in the DIP updates or deletes a journal row (no retention: acts are few).
CREATE TRIGGER IF NOT EXISTS operator_journal_no_update BEFORE UPDATE ON operator_journal
  BEGIN SELECT RAISE(ABORT, 'the operator journal is append-only: its records cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS operator_journal_no_delete BEFORE DELETE ON operator_journal
  BEGIN SELECT RAISE(ABORT, 'the operator journal is append-only: its records cannot be deleted (spec 5.8.1)'); END;
-- Portal users and operators (src/ports/portal-accounts.ts): hashes and sealed secrets only.
-- Keyed by realm and name: a participant's user and an operator may bear one name (PortalRealm).
${portalAccountsTable('portal_accounts')}
CREATE INDEX IF NOT EXISTS portal_accounts_participant ON portal_accounts (participant_dip_id);
-- Sign-in attempts by name, account or not, each a row (so nodes counting at once lose none); kept
-- for the lockout window: a failure stays, a refusal before any check and a success are forgotten.
CREATE TABLE IF NOT EXISTS portal_sign_in_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  realm TEXT,
  name TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS portal_sign_in_attempts_name ON portal_sign_in_attempts (name, at);
CREATE INDEX IF NOT EXISTS portal_sign_in_attempts_at ON portal_sign_in_attempts (at);
-- Second factors being set up at a first sign-in (src/ports/portal-accounts.ts, PendingTotpEnrolment): at
-- most one per account, kept until completed or expired; the token only as its SHA-256, the secret sealed.
${portalEnrolmentsTable('portal_totp_enrolments')}
-- Portal users' saved reports (src/ports/saved-reports.ts): the definition as JSON; next_due_at the
-- time its next e-mail is due (NULL: not e-mailed), moved on by the one node that claims it.
CREATE TABLE IF NOT EXISTS saved_reports (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  name TEXT NOT NULL,
  record TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  next_due_at INTEGER,
  UNIQUE (owner, name)
);
CREATE INDEX IF NOT EXISTS saved_reports_due ON saved_reports (next_due_at) WHERE next_due_at IS NOT NULL;
-- Maintenance announcements not yet sent (MaintenanceOutbox): a row per address, removed once sent.
CREATE TABLE IF NOT EXISTS maintenance_sends (
  id TEXT PRIMARY KEY,
  record TEXT NOT NULL,
  due_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS maintenance_sends_due ON maintenance_sends (due_at);
-- Addresses asked to confirm, and confirmed, for the DIP's e-mail (src/ports/mail-recipients.ts): the token only as its SHA-256.
CREATE TABLE IF NOT EXISTS mail_recipients (
  scope TEXT NOT NULL,
  address TEXT NOT NULL,
  token_hash TEXT UNIQUE,
  requested_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  confirmed_at INTEGER,
  PRIMARY KEY (scope, address)
);
-- A write that tells whether the disk takes writes again after it was full (see SqliteDatabase): pad
-- makes it the size of a large batch.
CREATE TABLE IF NOT EXISTS health_probe (at INTEGER NOT NULL, pad BLOB);
`;

/**
 * messages_mpan (storage.mpanIndex), an MPAN's archived consumption for the DIP Replay Service
 * (Archive.findForMpan; the rowid, in it, orders a page): made when asked for, dropped when not. Opt-in:
 * every consumption message inserted pays for it (BENCHMARKS.md, "2026-12-05 session 3").
 */
export function mpanIndexDdl(on: boolean): string {
  return on ? `CREATE INDEX IF NOT EXISTS messages_mpan ON messages (mpan) WHERE ${mpanIndexed()}` : 'DROP INDEX IF EXISTS messages_mpan';
}

/** The generation recorded in the file (undefined: none, a file from before the gate, or before the schema). */
export function storedGeneration(db: Database.Database): number | undefined {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_generation'").get();
  return table === undefined ? undefined : db.prepare<[], { generation: number }>('SELECT generation FROM schema_generation WHERE id = 1').get()?.generation;
}

/** Records that the file's data is now of `generation`; never lowers it. Read first: once recorded, nothing is written. */
export function raiseGeneration(db: Database.Database, generation: number, at: number): void {
  if ((storedGeneration(db) ?? 1) >= generation) return;
  db.prepare(
    'INSERT INTO schema_generation (id, generation, raised_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, raised_at = excluded.raised_at WHERE generation < excluded.generation',
  ).run(generation, at);
}

/** Throws, before the schema is applied, when the file holds data of a generation this build does not read. */
export function refuseUnreadableGeneration(db: Database.Database): void {
  const why = unreadableGeneration(storedGeneration(db), `the database ${db.name}`);
  if (why !== null) throw new StoreError('permanent', why, SCHEMA_GENERATION);
}

/** Brings a database made by an earlier version up to the current schema; `now` dates a generation it raises. */
export function migrate(db: Database.Database, now: number): void {
  const columns = db.prepare<[], { name: string }>('PRAGMA table_info(queue_entries)').all();
  if (!columns.some((c) => c.name === 'enqueued_at')) db.exec('ALTER TABLE queue_entries ADD COLUMN enqueued_at INTEGER');
  // Entries queued before the capacity was recorded keep NULL, read as the rule of their time: no backfill.
  if (!columns.some((c) => c.name === 'capacity')) db.exec('ALTER TABLE queue_entries ADD COLUMN capacity TEXT');
  const participantColumns = db.prepare<[], { name: string }>('PRAGMA table_info(participants)').all();
  if (!participantColumns.some((c) => c.name === 'connection_provider')) db.exec('ALTER TABLE participants ADD COLUMN connection_provider TEXT');
  // Certificate rotation with an overlap: the replaced certificate and the end of its overlap.
  for (const [name, type] of [['previous_certificate_pem', 'TEXT'], ['previous_certificate_fingerprint', 'TEXT'], ['previous_valid_until', 'INTEGER']] as const) {
    if (!participantColumns.some((c) => c.name === name)) db.exec(`ALTER TABLE participants ADD COLUMN ${name} ${type}`);
  }
  // Who registered a webhook (2026-12-05): rows from before keep NULL, not known.
  if (!db.prepare<[], { name: string }>('PRAGMA table_info(webhooks)').all().some((c) => c.name === 'registered_by')) db.exec('ALTER TABLE webhooks ADD COLUMN registered_by TEXT');
  // Publications for named recipients (2026-12-02).
  if (!db.prepare<[], { name: string }>('PRAGMA table_info(publications)').all().some((c) => c.name === 'recipients')) db.exec('ALTER TABLE publications ADD COLUMN recipients TEXT');
  // Attempt IDs (2026-12-03): a journal record written twice (a retry after a write whose answer was lost)
  // is stored once. Here and not in SCHEMA: on an older file the index must come after the column. Partial:
  // the rows written before have no ID and stay out of it (the upsert names the index by its WHERE clause).
  if (!db.prepare<[], { name: string }>('PRAGMA table_info(delivery_attempts)').all().some((c) => c.name === 'attempt_id')) db.exec('ALTER TABLE delivery_attempts ADD COLUMN attempt_id TEXT');
  db.exec('CREATE UNIQUE INDEX IF NOT EXISTS delivery_attempts_attempt_id ON delivery_attempts (attempt_id) WHERE attempt_id IS NOT NULL');
  // The health probe's padding (2026-12-03).
  if (!db.prepare<[], { name: string }>('PRAGMA table_info(health_probe)').all().some((c) => c.name === 'pad')) db.exec('ALTER TABLE health_probe ADD COLUMN pad BLOB');
  // What pulls handed out (2026-12-03): 0 on an older file, which max(pulled_seq, acked_seq) reads as
  // "up to the acknowledged position" until the recipient's next pull.
  if (!db.prepare<[], { name: string }>('PRAGMA table_info(queues)').all().some((c) => c.name === 'pulled_seq')) db.exec('ALTER TABLE queues ADD COLUMN pulled_seq INTEGER NOT NULL DEFAULT 0');
  // The recipient's acknowledged position (2026-12-06), kept in the queue's row: before, each acknowledgement
  // read it from the delivery journal. Filled in once, from the journal as that read it.
  if (!db.prepare<[], { name: string }>('PRAGMA table_info(queues)').all().some((c) => c.name === 'told_seq')) {
    db.transaction(() => {
      db.exec('ALTER TABLE queues ADD COLUMN told_seq INTEGER NOT NULL DEFAULT 0');
      db.exec('ALTER TABLE queues ADD COLUMN told_from INTEGER NOT NULL DEFAULT 0');
      db.exec(`UPDATE queues SET told_seq = ${ACKNOWLEDGED_BEFORE}`);
      db.exec('UPDATE queues SET told_from = told_seq');
    })();
  }
  // Whether a publication's notice is queued (2026-12-03): what a crash between the record and the notice
  // left unqueued is queued at the next start. Rows from before read 1: their notice was queued, or their
  // publication taken back (and their notice, with no sender reference, could not be told from a second).
  // The index holds only the few rows awaiting their notice; here, after the column, as attempt_id's.
  if (!db.prepare<[], { name: string }>('PRAGMA table_info(publications)').all().some((c) => c.name === 'notice_queued')) db.exec('ALTER TABLE publications ADD COLUMN notice_queued INTEGER NOT NULL DEFAULT 1');
  // Withdrawal by an operator (2026-12-05): NULL in every older row, which none was.
  const publicationColumns = db.prepare<[], { name: string }>('PRAGMA table_info(publications)').all();
  // Its withdrawal notice (2026-12-05): NULL in the rows withdrawn before, whose recipients were owed none.
  // The availability notice's claim (2026-12-05): NULL in older rows (a withdrawal reads notice_queued).
  // Its recipients (2026-12-05): NULL in older rows, whose withdrawal goes to the channel's recipients of the day.
  for (const [name, type] of [['withdrawn_at', 'INTEGER'], ['withdrawn_by', 'TEXT'], ['withdrawn_reason', 'TEXT'], ['withdrawal_notice_queued', 'INTEGER'], ['notice_claimed_at', 'INTEGER'], ['withdrawal_journalled', 'INTEGER'], ['notice_recipients', 'TEXT']] as const) {
    if (!publicationColumns.some((c) => c.name === name)) db.exec(`ALTER TABLE publications ADD COLUMN ${name} ${type}`);
  }
  db.exec('CREATE INDEX IF NOT EXISTS publications_awaiting_notice ON publications (published_at) WHERE notice_queued = 0');
  db.exec('CREATE INDEX IF NOT EXISTS publications_awaiting_withdrawal_notice ON publications (withdrawn_at) WHERE withdrawal_notice_queued = 0');
  // A replay copy's recipient (2026-12-05): copies made before read NULL and keep their original's recipients.
  const messageColumns = db.prepare<[], { name: string }>('PRAGMA table_info(messages)').all();
  if (!messageColumns.some((c) => c.name === 'replay_for')) db.exec('ALTER TABLE messages ADD COLUMN replay_for TEXT');
  // The pattern a message was accepted under (2026-12-05): NULL in older rows, whose copies follow the rule
  // of src/pipeline/recipient-copy.ts copyPattern (what was stored says 3 or not; no backfill).
  if (!messageColumns.some((c) => c.name === 'security_pattern')) db.exec('ALTER TABLE messages ADD COLUMN security_pattern INTEGER');
  migratePortalRealms(db);
  // Portal accounts by realm, whether moved just now or made so: a build of generation 2 misreads them.
  raiseGeneration(db, PORTAL_REALMS, now);
}

/**
 * Portal accounts by realm (2026-12-05): an older file's accounts (one namespace, so each name is one
 * account) are copied into the table keyed by realm and name, the realm read from the participant (none:
 * an operator's), and so are pending enrolments (the realm of their account's). Sign-in attempts get the
 * column only: those recorded before count in neither realm and leave with the lockout window.
 */
function migratePortalRealms(db: Database.Database): void {
  const has = (table: string, column: string) => db.prepare<[], { name: string }>(`PRAGMA table_info(${table})`).all().some((c) => c.name === column);
  if (!has('portal_sign_in_attempts', 'realm')) db.exec('ALTER TABLE portal_sign_in_attempts ADD COLUMN realm TEXT');
  if (has('portal_accounts', 'realm')) return;
  db.transaction(() => {
    db.exec(`${portalAccountsTable('portal_accounts_by_realm')}
INSERT INTO portal_accounts_by_realm (realm, username, participant_dip_id, record, created_at)
  SELECT CASE WHEN participant_dip_id IS NULL THEN 'operator' ELSE 'user' END, username, participant_dip_id, record, created_at FROM portal_accounts;
${portalEnrolmentsTable('portal_totp_enrolments_by_realm')}
INSERT INTO portal_totp_enrolments_by_realm (realm, username, token_hash, secret_sealed, epoch, started_at, expires_at)
  SELECT a.realm, e.username, e.token_hash, e.secret_sealed, e.epoch, e.started_at, e.expires_at FROM portal_totp_enrolments e JOIN portal_accounts_by_realm a ON a.username = e.username;
DROP TABLE portal_totp_enrolments;
ALTER TABLE portal_totp_enrolments_by_realm RENAME TO portal_totp_enrolments;
DROP TABLE portal_accounts;
ALTER TABLE portal_accounts_by_realm RENAME TO portal_accounts;
CREATE INDEX IF NOT EXISTS portal_accounts_participant ON portal_accounts (participant_dip_id);`);
  })();
}
