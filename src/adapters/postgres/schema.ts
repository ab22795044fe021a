import { appendOnlyGuards } from './append-only.js';
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { mpanIndexed } from '../archive-sql.js';
import { PORTAL_REALMS } from '../schema-generation.js';
import { isLockTimeout, isReadTimeout } from './errors.js';
import { withConnection } from './pool.js';

/**
 * The PostgreSQL schema. Statements are idempotent and applied when they change (applySchema), inside
 * one transaction guarded by an advisory lock, so several DIP nodes starting at once do not race each other.
 *
 * Volume decides the layout (15 billion messages a year kept 28 days): everything that grows with
 * traffic is partitioned by day, so retention drops a day's partitions instead of deleting rows
 * (src/adapters/postgres/partitions.ts). Messages and batches are partitioned by their id, whose high
 * bits are the day (see dayBase), so a lookup by id touches one partition and queue entries, which refer
 * to a message by id, are partitioned alongside their message.
 */
/** DDL that moves an older table's primary key (the name alone) to realm and name; nothing once it has. */
const rekeyedByRealm = (table: string): string => `DO $rekey$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '${table}'::regclass AND contype = 'p' AND cardinality(conkey) = 1) THEN
    ALTER TABLE ${table} DROP CONSTRAINT ${table}_pkey;
    ALTER TABLE ${table} ADD PRIMARY KEY (realm, username);
  END IF;
END $rekey$;`;

export const SCHEMA = `
CREATE SEQUENCE IF NOT EXISTS message_ids CACHE 64;
CREATE SEQUENCE IF NOT EXISTS batch_ids CACHE 64;
CREATE TABLE IF NOT EXISTS batches (
  id bigint NOT NULL,
  channel text NOT NULL,
  sender_dip_id text NOT NULL,
  received_at bigint NOT NULL,
  raw bytea NOT NULL, -- the request body exactly as signed, compressed and sealed (at-rest format 2; format 1 rows hold it deflate-raw compressed)
  signature text NOT NULL,
  PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE INDEX IF NOT EXISTS batches_age ON batches (channel, received_at);
CREATE TABLE IF NOT EXISTS messages (
  id bigint NOT NULL,
  batch_id bigint,
  transaction_id text NOT NULL,
  channel text NOT NULL,
  event_code text NOT NULL,
  sender_dip_id text NOT NULL,
  sender_role text NOT NULL,
  sender_ref text,
  correlation_id text,
  mpan text, -- a keyed hash of the MPAN when encryption at rest is on: searchable, not readable
  received_at bigint NOT NULL,
  replay_of bigint,
  outbound bytea NOT NULL,
  sealed boolean NOT NULL, -- outbound is AES-256-GCM sealed (else UTF-8 text)
  PRIMARY KEY (id)
) PARTITION BY RANGE (id);
-- Transaction IDs are made unique by the DIP; the index is per day (a global one would need the day in it).
CREATE INDEX IF NOT EXISTS messages_transaction ON messages (transaction_id);
CREATE INDEX IF NOT EXISTS messages_channel_age ON messages (channel, received_at);
CREATE INDEX IF NOT EXISTS messages_batch ON messages (batch_id);
-- Sender unique references, one row per (sender, reference) per day it was used: the duplicate check of a
-- batch probes every kept day at once, and the unique index of the day being written serialises two
-- concurrent writers of the same reference (see message-log.ts for the day boundary).
CREATE TABLE IF NOT EXISTS sender_refs (
  day integer NOT NULL,
  sender_dip_id text NOT NULL,
  sender_ref text NOT NULL,
  PRIMARY KEY (sender_dip_id, sender_ref, day)
) PARTITION BY RANGE (day);
-- One row per recipient queue: its head (the last position given out) and how far it is settled. Appends
-- lock the rows they extend, always in id order, so positions are consecutive and writers never deadlock.
CREATE TABLE IF NOT EXISTS queues (
  id serial PRIMARY KEY,
  recipient_dip_id text NOT NULL,
  channel text NOT NULL,
  head bigint NOT NULL DEFAULT 0,
  acked_seq bigint NOT NULL DEFAULT 0,
  UNIQUE (recipient_dip_id, channel)
);
CREATE TABLE IF NOT EXISTS queue_entries (
  queue_id integer NOT NULL,
  seq bigint NOT NULL,
  message_id bigint NOT NULL,
  -- Set only when a dead letter is requeued: its staleness clock restarts then, not at first receipt.
  enqueued_at bigint,
  -- The capacity the copy was routed in ('SDS', 'LDSO,SUP': src/domain/channel.ts capacityCode), what it is
  -- obfuscated for; NULL on entries queued before it was recorded (all the recipient's receiving roles).
  capacity text,
  PRIMARY KEY (queue_id, seq, message_id)
) PARTITION BY RANGE (message_id);
CREATE INDEX IF NOT EXISTS queue_entries_message ON queue_entries (message_id);
CREATE TABLE IF NOT EXISTS archived_channels (channel text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS delivery_attempts (
  id bigint GENERATED ALWAYS AS IDENTITY,
  queue_id integer NOT NULL,
  first_seq bigint NOT NULL,
  last_seq bigint NOT NULL,
  url text NOT NULL,
  started_at bigint NOT NULL,
  latency_ms integer NOT NULL,
  status integer,
  verdict text NOT NULL,
  error text
) PARTITION BY RANGE (started_at);
CREATE INDEX IF NOT EXISTS delivery_attempts_queue ON delivery_attempts (queue_id, id);
-- A UUIDv7 given when the attempt was made (NULL in rows written before 2026-12-03): a record written twice
-- (a retry after a write whose answer was lost) is stored once. A unique index of a partitioned table must
-- hold the partition key; every write of one attempt carries the same started_at, so it is as unique as
-- the ID alone. Added 2026-12-03 (on an existing database the index is built on every day's partition:
-- docs/cluster.md, "Upgrading").
ALTER TABLE delivery_attempts ADD COLUMN IF NOT EXISTS attempt_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS delivery_attempts_attempt_id ON delivery_attempts (attempt_id, started_at);
CREATE TABLE IF NOT EXISTS dead_letters (
  queue_id integer NOT NULL,
  seq bigint NOT NULL,
  message_id bigint NOT NULL,
  reason text NOT NULL,
  status integer,
  detail text NOT NULL,
  at bigint NOT NULL,
  state text NOT NULL DEFAULT 'dead',
  PRIMARY KEY (queue_id, seq)
);
CREATE INDEX IF NOT EXISTS dead_letters_message ON dead_letters (message_id);
CREATE TABLE IF NOT EXISTS participants (
  dip_id text PRIMARY KEY,
  roles text NOT NULL,
  organisation text NOT NULL,
  certificate_pem text NOT NULL,
  certificate_fingerprint text NOT NULL,
  api_key_hash text NOT NULL UNIQUE,
  created_at bigint NOT NULL,
  connection_provider text,
  previous_certificate_pem text,
  previous_certificate_fingerprint text,
  previous_valid_until bigint
);
CREATE TABLE IF NOT EXISTS webhooks (
  recipient_dip_id text NOT NULL,
  channel text NOT NULL,
  url text NOT NULL,
  max_message_count integer NOT NULL,
  max_payload_kb integer NOT NULL,
  PRIMARY KEY (recipient_dip_id, channel)
);
-- Who registered a webhook (the recipient or its connection provider): the provider's go when its
-- nomination does. Null on rows from before it was recorded.
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS registered_by text;
-- Bumped with every participant or webhook change, in the changing transaction, with a NOTIFY.
CREATE TABLE IF NOT EXISTS registry_version (
  id integer PRIMARY KEY CHECK (id = 1),
  version bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS mpan_appointments (
  mpan text NOT NULL,
  slot text NOT NULL,
  from_ms bigint NOT NULL,
  to_ms bigint,
  dip_id text NOT NULL,
  PRIMARY KEY (mpan, slot, from_ms)
);
-- One-off rewrites of stored data, by name, once done (e.g. 'mpan-index': the MPAN lookup keyed by the
-- at-rest index hash). A start that finds the name skips the rewrite.
CREATE TABLE IF NOT EXISTS data_migrations (
  name text PRIMARY KEY,
  done_at bigint NOT NULL
);
-- The stored data's generation (src/adapters/schema-generation.ts), one row per PostgreSQL schema as in
-- dip_schema_digests: raised by a migration that leaves data older builds cannot read, and read by every
-- node before it touches the schema (storedGeneration).
CREATE TABLE IF NOT EXISTS dip_schema_generation (
  schema_name text PRIMARY KEY,
  generation integer NOT NULL,
  raised_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS data_keys (
  id serial PRIMARY KEY,
  wrapped bytea NOT NULL,
  created_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS requeue_jobs (
  id text PRIMARY KEY,
  recipient_dip_id text NOT NULL,
  channel text NOT NULL,
  filter jsonb NOT NULL,
  up_to_seq bigint NOT NULL,
  cursor bigint NOT NULL,
  requeued integer NOT NULL DEFAULT 0,
  state text NOT NULL,
  error text,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL
);
-- Open jobs, the listings and the retention sweep (2026-12-04; why each: the SQLite schema). Without
-- updated_at, so that a page's progress can be a HOT update.
CREATE INDEX IF NOT EXISTS requeue_jobs_state ON requeue_jobs (state, created_at);
CREATE INDEX IF NOT EXISTS requeue_jobs_recipient ON requeue_jobs (recipient_dip_id, created_at);
CREATE INDEX IF NOT EXISTS requeue_jobs_age ON requeue_jobs (created_at);
-- Pattern B publications (src/ports/publications.ts): metadata here, bytes in the publication blob store.
CREATE TABLE IF NOT EXISTS publications (
  id text PRIMARY KEY,
  channel text NOT NULL,
  publication_type text NOT NULL,
  version text NOT NULL,
  publisher_dip_id text NOT NULL,
  effective_from text,
  effective_to text,
  format text NOT NULL,
  compression text NOT NULL,
  file_name text NOT NULL,
  description text,
  public boolean NOT NULL,
  size bigint NOT NULL,
  sha256 text NOT NULL,
  published_at bigint NOT NULL,
  UNIQUE (channel, publication_type, version)
);
CREATE INDEX IF NOT EXISTS publications_listing ON publications (channel, publication_type, published_at);
-- The DIP IDs the publisher named (a JSON array); NULL: every recipient of the channel. Added 2026-12-02.
ALTER TABLE publications ADD COLUMN IF NOT EXISTS recipients text;
-- A replay copy's recipient (2026-12-05): the one participant that may name the copy in a status message.
-- Copies made before read NULL and keep their original's recipients. No default: no rows rewritten.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS replay_for text;
-- The security pattern (1, 2, 3) a message was accepted under (2026-12-05), kept for its copies. NULL in older
-- rows, whose copies follow src/pipeline/recipient-copy.ts copyPattern. No default:
-- no rows rewritten.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS security_pattern smallint;
-- The transaction ID a reference was accepted under: a duplicate's refusal names it (older rows have none).
ALTER TABLE sender_refs ADD COLUMN IF NOT EXISTS transaction_id text;
-- The last position a pull handed out (2026-12-03): a pull's acknowledgement may not pass it (nor acked_seq).
-- A constant default: adding it rewrites no rows, and older queues read 0, "up to the acknowledged position".
ALTER TABLE queues ADD COLUMN IF NOT EXISTS pulled_seq bigint NOT NULL DEFAULT 0;
-- The recipient's acknowledged position (2026-12-06): the last a pull's acknowledgement (or a delivery) reached,
-- and the one before it; a pull's acknowledgement names what was set aside between the two. Before, each
-- acknowledgement read it from the delivery journal. Added without a default (the rows there read NULL: not
-- filled yet), then defaulted for the queues made from now on (0). The rows are filled from the journal after
-- the schema, in small batches outside this transaction (PgMessageLog.backfillAcknowledged): filled here, the
-- journal's scan held every queue's row, and every node's writes, for as long as it took on a large archive.
-- Until a row is filled, its readers compute it as the journal then said (ACKNOWLEDGED_BEFORE, NULL rows only).
-- Nullable for good: SET NOT NULL would scan the table again under its lock.
ALTER TABLE queues ADD COLUMN IF NOT EXISTS told_seq bigint;
ALTER TABLE queues ADD COLUMN IF NOT EXISTS told_from bigint;
ALTER TABLE queues ALTER COLUMN told_seq SET DEFAULT 0, ALTER COLUMN told_from SET DEFAULT 0;
-- The capacity a queued copy was routed in (2026-12-05), what it is obfuscated for. NULL in older entries,
-- which keep the rule of their time (all the recipient's receiving roles): no default, no rows rewritten,
-- and the column reaches every partition of the parent.
ALTER TABLE queue_entries ADD COLUMN IF NOT EXISTS capacity text;
-- Whether a publication's notice is in the message log (2026-12-03): false from the insert until it is, so
-- that what a crash between the two writes left unqueued is queued at the next start. Older rows read true
-- (their notice was queued, or their publication taken back). A constant default: no rows rewritten. The
-- partial index holds only the few rows awaiting their notice.
ALTER TABLE publications ADD COLUMN IF NOT EXISTS notice_queued boolean NOT NULL DEFAULT true;
CREATE INDEX IF NOT EXISTS publications_awaiting_notice ON publications (published_at) WHERE NOT notice_queued;
-- Withdrawal by an operator (2026-12-05): the bytes are removed, the record stays to answer 410. NULL in
-- every older row; no rows rewritten.
ALTER TABLE publications ADD COLUMN IF NOT EXISTS withdrawn_at bigint;
ALTER TABLE publications ADD COLUMN IF NOT EXISTS withdrawn_by text;
ALTER TABLE publications ADD COLUMN IF NOT EXISTS withdrawn_reason text;
-- Whether a withdrawal's notice is in the message log (2026-12-05): false from the withdrawal until it is;
-- NULL while not withdrawn, and in the rows withdrawn before, whose recipients were owed no notice.
ALTER TABLE publications ADD COLUMN IF NOT EXISTS withdrawal_notice_queued boolean;
CREATE INDEX IF NOT EXISTS publications_awaiting_withdrawal_notice ON publications (withdrawn_at) WHERE withdrawal_notice_queued = false;
-- When a publication's availability notice was last claimed for an append (2026-12-05): a withdrawal after
-- the claim owes its notice, one before it (recipients never told) neither. NULL in older rows, whose
-- withdrawal reads notice_queued; no rows rewritten.
ALTER TABLE publications ADD COLUMN IF NOT EXISTS notice_claimed_at bigint;
-- Whether a withdrawal's operator journal entry is written (2026-12-05): false from the withdrawal until it
-- is (a failed journal write is owed, and written by the pass for missed notices); NULL otherwise.
ALTER TABLE publications ADD COLUMN IF NOT EXISTS withdrawal_journalled boolean;
-- Who a publication's availability notice was sent to (2026-12-05), a JSON array recorded by its claim: its
-- withdrawal notice goes to them. NULL until sent, and in older rows, whose withdrawal goes to the channel's
-- recipients of the day; no rows rewritten.
ALTER TABLE publications ADD COLUMN IF NOT EXISTS notice_recipients text;
-- Who publishes a type on a channel: its first publisher; nobody else may add versions to it.
CREATE TABLE IF NOT EXISTS publication_types (
  channel text NOT NULL,
  publication_type text NOT NULL,
  publisher_dip_id text NOT NULL,
  PRIMARY KEY (channel, publication_type)
);
-- Versioned documents beside the participants (profiles, channel settings, operators, register entries).
CREATE TABLE IF NOT EXISTS registry_records (
  kind text NOT NULL,
  key text NOT NULL,
  version integer NOT NULL,
  doc jsonb NOT NULL,
  at bigint NOT NULL,
  by text NOT NULL,
  PRIMARY KEY (kind, key, version)
);
-- Every administrative act, append-only.
CREATE TABLE IF NOT EXISTS operator_journal (
  id bigserial PRIMARY KEY,
  at bigint NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  target text NOT NULL,
  before jsonb,
  after jsonb,
  status integer
);
-- An audit log (spec 5.8.1: it "cannot be accidentally or maliciously purged"), guarded as the activity
-- log is (src/adapters/postgres/append-only.ts).
-- Nothing in the DIP updates or deletes a journal row (no retention: acts are few).
${appendOnlyGuards('operator_journal_append_only', 'operator journal', [{ table: 'operator_journal', refuse: ['UPDATE', 'DELETE', 'TRUNCATE'] }])}
-- Portal users and operators (src/ports/portal-accounts.ts): hashes and sealed secrets only.
-- Keyed by realm and name (2026-12-05): a participant's user and an operator may bear one name. An older
-- database's accounts (one namespace, so each name one account) get the realm of their participant (none:
-- an operator's), then the key moves; pending enrolments take their account's realm (one of no account goes).
CREATE TABLE IF NOT EXISTS portal_accounts (
  realm text NOT NULL,
  username text NOT NULL,
  participant_dip_id text,
  record jsonb NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (realm, username)
);
ALTER TABLE portal_accounts ADD COLUMN IF NOT EXISTS realm text;
UPDATE portal_accounts SET realm = CASE WHEN participant_dip_id IS NULL THEN 'operator' ELSE 'user' END WHERE realm IS NULL;
ALTER TABLE portal_accounts ALTER COLUMN realm SET NOT NULL;
${rekeyedByRealm('portal_accounts')}
CREATE INDEX IF NOT EXISTS portal_accounts_participant ON portal_accounts (participant_dip_id);
-- Sign-in attempts by name, account or not, each a row (so nodes counting at once lose none); kept
-- for the lockout window: a failure stays, a refusal before any check and a success are forgotten.
CREATE TABLE IF NOT EXISTS portal_sign_in_attempts (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  at bigint NOT NULL
);
-- Attempts recorded before the realms keep NULL: counted in neither, they leave with the lockout window.
ALTER TABLE portal_sign_in_attempts ADD COLUMN IF NOT EXISTS realm text;
CREATE INDEX IF NOT EXISTS portal_sign_in_attempts_name ON portal_sign_in_attempts (name, at);
CREATE INDEX IF NOT EXISTS portal_sign_in_attempts_at ON portal_sign_in_attempts (at);
-- Second factors being set up at a first sign-in (src/ports/portal-accounts.ts, PendingTotpEnrolment): at
-- most one per account, kept until completed or expired; the token only as its SHA-256, the secret sealed.
CREATE TABLE IF NOT EXISTS portal_totp_enrolments (
  realm text NOT NULL,
  username text NOT NULL,
  token_hash text NOT NULL UNIQUE,
  secret_sealed text NOT NULL,
  epoch bigint NOT NULL,
  started_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (realm, username)
);
ALTER TABLE portal_totp_enrolments ADD COLUMN IF NOT EXISTS realm text;
-- One of a name with no account can never complete: dropped (as SQLite's upgrade does), not made an operator's.
DELETE FROM portal_totp_enrolments e WHERE e.realm IS NULL AND NOT EXISTS (SELECT 1 FROM portal_accounts a WHERE a.username = e.username);
UPDATE portal_totp_enrolments e SET realm = (SELECT a.realm FROM portal_accounts a WHERE a.username = e.username) WHERE e.realm IS NULL;
ALTER TABLE portal_totp_enrolments ALTER COLUMN realm SET NOT NULL;
${rekeyedByRealm('portal_totp_enrolments')}
-- Accounts keyed by realm are generation ${PORTAL_REALMS} (src/adapters/schema-generation.ts): recorded in this
-- transaction, with the move, so no node of generation 2 starts on them, and a running one stops (database.ts).
INSERT INTO dip_schema_generation (schema_name, generation, raised_at)
  VALUES (current_schema(), ${PORTAL_REALMS}, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
  ON CONFLICT (schema_name) DO UPDATE SET generation = EXCLUDED.generation, raised_at = EXCLUDED.raised_at
  WHERE dip_schema_generation.generation < EXCLUDED.generation;
-- Portal users' saved reports (src/ports/saved-reports.ts): the definition as JSON; next_due_at the
-- time its next e-mail is due (NULL: not e-mailed), moved on by the one node that claims it.
CREATE TABLE IF NOT EXISTS saved_reports (
  id text PRIMARY KEY,
  owner text NOT NULL,
  name text NOT NULL,
  record jsonb NOT NULL,
  created_at bigint NOT NULL,
  next_due_at bigint,
  UNIQUE (owner, name)
);
CREATE INDEX IF NOT EXISTS saved_reports_due ON saved_reports (next_due_at) WHERE next_due_at IS NOT NULL;
-- Maintenance announcements not yet sent (MaintenanceOutbox): a row per address, removed once sent.
CREATE TABLE IF NOT EXISTS maintenance_sends (
  id text PRIMARY KEY,
  record jsonb NOT NULL,
  due_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS maintenance_sends_due ON maintenance_sends (due_at);
-- Addresses asked to confirm, and confirmed, for the DIP's e-mail (src/ports/mail-recipients.ts): the token only as its SHA-256.
CREATE TABLE IF NOT EXISTS mail_recipients (
  scope text NOT NULL,
  address text NOT NULL,
  token_hash text UNIQUE,
  requested_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  confirmed_at bigint,
  PRIMARY KEY (scope, address)
);
-- A write that tells whether the server takes writes again after it could not (see PgDatabase), padded
-- (2026-12-04) to a large batch's size: out of line and uncompressed, so that its bytes reach the disk.
CREATE TABLE IF NOT EXISTS health_probe (at bigint NOT NULL);
ALTER TABLE health_probe ADD COLUMN IF NOT EXISTS pad bytea;
ALTER TABLE health_probe ALTER COLUMN pad SET STORAGE EXTERNAL;
`;

/** The NOTIFY channel of the registry's change feed. */
export const REGISTRY_CHANNEL = 'dip_registry';

/**
 * messages_mpan (storage.mpanIndex), an MPAN's archived consumption for the DIP Replay Service
 * (Archive.findForMpan), in id order per MPAN, on every day partition: made when asked for, dropped when
 * not. Part of the schema's DDL, so a change of the setting is applied once (applySchema), as an upgrade
 * is; every node of a cluster must say the same, or each start applies its own again.
 */
export function mpanIndexDdl(on: boolean): string {
  return on ? `CREATE INDEX IF NOT EXISTS messages_mpan ON messages (mpan, id) WHERE ${mpanIndexed()};` : 'DROP INDEX IF EXISTS messages_mpan;';
}

/**
 * Every advisory lock key OpenDIP takes on PostgreSQL, in one place so no two uses collide (the activity
 * log's schema and partition changes once shared 0x0d1b5c4f by accident). Any constants unique to OpenDIP.
 */
export const LOCKS = {
  /** Set-up of the message store's schema between nodes starting at once. */
  schema: 0x0d1b5c4e,
  /** Partition changes (creating the same partition twice at once fails). */
  partitions: 0x0d1b5c4f,
  /** Set-up of the alarm subscriptions' table. */
  alarmSchema: 0x0d1b5c50,
  /** Set-up of the activity log's schema (its own, so it never waits for the message store's). */
  activitySchema: 0x0d1b5c51,
  /** Set-up of the onboarding applications' table. */
  onboardingSchema: 0x0d1b5c52,
  /** An index built outside the schema's transaction (buildIndexConcurrently): one node builds it. */
  concurrentIndex: 0x0d1b5c53,
} as const;

/**
 * Rows the store cannot work without, put back on every open (the schema's digest does not watch them):
 * without its one row the registry version never moves. Inserted only when no committed row is there, so
 * opening never waits behind a transaction that is changing it (ON CONFLICT alone would).
 */
export const SEED = `INSERT INTO registry_version (id, version)
  SELECT 1, 0 WHERE NOT EXISTS (SELECT 1 FROM registry_version WHERE id = 1)
  ON CONFLICT DO NOTHING`;

/** How long one try at applying a changed schema waits for a table's lock, and how many tries it makes. */
export const SCHEMA_LOCK = { timeoutMs: 2_000, tries: 15 } as const;
/**
 * How long the DDL of an upgrade may take to be answered (the client's own read timeout; the server's
 * statement timeout is lifted for it): index builds take minutes on the largest stores, and a server that
 * stopped answering still shows within this.
 */
export const SCHEMA_BUILD_TIMEOUT_MS = 60 * 60_000;

/**
 * Applies idempotent DDL, once per version of it: the DDL's digest is kept in `dip_schema_digests`, and a node
 * that finds its own digest there touches nothing else.
 *
 * Why the digest: PostgreSQL takes a table's lock before it looks whether the object exists, so `CREATE
 * INDEX IF NOT EXISTS` waits for a ShareLock and `ALTER TABLE … ADD COLUMN IF NOT EXISTS` for an
 * AccessExclusiveLock even when there is nothing to do; and every writer that comes after queues behind
 * that waiting request. A node (re)starting in a live cluster stalled every node's ingest for as long as
 * the oldest open transaction on those tables lasted (up to the idle-in-transaction timeout for a node
 * cut off mid-transaction).
 *
 * A changed schema (an upgrade) is applied in one transaction under an advisory lock (CREATE … IF NOT
 * EXISTS is not safe when two sessions run it at once: both may pass the check and one then fails on the
 * catalogue's unique index, which is what several nodes starting together do). Each try gives up a
 * table's lock after SCHEMA_LOCK.timeoutMs so the writers queued behind it go on, and tries again after
 * a pause. Each store has its own advisory lock, so they never wait for each other's set-up.
 */
export async function applySchema(pool: pg.Pool, lock: number, ddl: string, options: { timeoutMs: number; tries: number } = SCHEMA_LOCK): Promise<void> {
  const digest = createHash('sha256').update(ddl).digest('hex');
  if ((await appliedDigest(pool, lock)) === digest) return;
  for (let attempt = 1; ; attempt++) {
    try {
      await inTransaction(pool, async (client) => {
        // An upgrade may build an index over a table as large as the archive keeps (the journal's attempt
        // ID index: about 1.3 s a million rows, docs/cluster.md "Upgrading"). Under the pool's statement
        // and read timeouts, meant for ingest's writes, a large store failed every open, on every restart;
        // and a node waiting below for another node's upgrade failed its open with it. node-postgres reads
        // a query's own query_timeout (its types do not declare it).
        await client.query('SET LOCAL statement_timeout = 0');
        // Without values a query goes as a simple query, which may hold many statements (the DDL does).
        const unhurried = (text: string, values?: unknown[]): pg.QueryConfig & { query_timeout: number } => ({ text, ...(values ? { values } : {}), query_timeout: SCHEMA_BUILD_TIMEOUT_MS });
        // As long as it takes: another node applying the same version holds it only while it does.
        await client.query(unhurried('SELECT pg_advisory_xact_lock($1)', [lock]));
        await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(options.timeoutMs))}`);
        await client.query(SCHEMA_APPLIED);
        // Another node may have applied it while this one waited for the advisory lock.
        const { rows } = await client.query<{ digest: string }>(APPLIED_DIGEST, [lock]);
        if (rows[0]?.digest === digest) return;
        await client.query(unhurried(ddl));
        await client.query(
          `INSERT INTO dip_schema_digests (schema_name, lock_key, digest) VALUES (current_schema(), $1, $2)
           ON CONFLICT (schema_name, lock_key) DO UPDATE SET digest = EXCLUDED.digest, applied_at = now()`,
          [lock, digest],
        );
      });
      return;
    } catch (err) {
      if (!isLockTimeout(err) || attempt >= options.tries) throw err;
      // Long enough for the writers that queued behind the lock request to go through.
      await delay(options.timeoutMs / 2);
    }
  }
}

/** An index over a table that may be large when the index first comes (an upgrade), built without holding its writers. */
export interface ConcurrentIndex {
  name: string;
  /** What follows ON: the table and the columns, e.g. `activity_log (request_id)`. */
  on: string;
}

/**
 * Whether the index is there, and valid, in the schema the DDL made its table in. The schema is compared by
 * name in pg_namespace: `current_schema()::regnamespace` parsed the name as an identifier, so a mixed-case
 * schema (`"Staging"`, current_schema() 'Staging') was looked up folded to lower case, and the open failed
 * on a schema that does not exist, or read another's index (settle2).
 */
const INDEX_VALID = `SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relname = $1 AND n.nspname = current_schema()`;

/**
 * The transactions of the database open as a CONCURRENTLY build starts, besides its own: it waits for each
 * of them to end (those writing the table, then every one whose snapshot is older than its phases, on any
 * table), however long. What the start-up log names (buildIndexConcurrently's onWait). Only the sessions
 * the role may see in full (pg_read_all_stats shows every one).
 */
const OPEN_TRANSACTIONS = `SELECT count(*)::int AS n, min(xact_start)::text AS oldest,
         string_agg(DISTINCT coalesce(nullif(application_name, ''), 'unnamed') || CASE WHEN state LIKE 'idle in transaction%' THEN ' (idle in transaction)' ELSE '' END, ', ') AS who
    FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()`;

/**
 * Makes an index by CREATE INDEX CONCURRENTLY unless a valid one is there (one catalogue read on every
 * later open). A plain CREATE INDEX in applySchema's transaction holds a ShareLock on the table for the
 * whole build, and every INSERT into it waits meanwhile: minutes on a large activity log, during which no
 * request of any node could be recorded. CONCURRENTLY cannot run inside a transaction, hence not in the
 * schema's DDL.
 *
 * A build that was interrupted (the node stopped, the connection lost, the server restarted) leaves an
 * INVALID index of that name, which IF NOT EXISTS would take for done and which no query uses, while every
 * write keeps it up to date: it is dropped (CONCURRENTLY too) and built again.
 *
 * One node builds (a session advisory lock, tried, not waited for): another that meets the lock goes on
 * without the index, which the first is building. Waiting would deadlock: CONCURRENTLY waits for every
 * transaction older than its phases, a session waiting for the lock among them. The build itself waits
 * for the transactions open on the table when it starts, however long (a backup's pg_dump is one), with
 * no statement timeout and the client's read timeout of an upgrade (SCHEMA_BUILD_TIMEOUT_MS): every
 * transaction of the database older than its phases, on any table, a session idle in a transaction among
 * them. `onWait` is told which are open as it starts (the start-up log line says what the start waits on).
 *
 * What it did: 'present' (nothing), 'built', 'rebuilt' (an invalid one dropped first), or 'elsewhere'
 * (another session holds the lock).
 */
export async function buildIndexConcurrently(pool: pg.Pool, index: ConcurrentIndex, onWait?: (said: string) => void): Promise<'present' | 'built' | 'rebuilt' | 'elsewhere'> {
  return withConnection(pool, async (client, markBroken) => {
    const valid = async () => (await client.query<{ valid: boolean }>(INDEX_VALID, [index.name])).rows[0]?.valid;
    if ((await valid()) === true) return 'present';
    if (!(await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1) AS got', [LOCKS.concurrentIndex])).rows[0]!.got) return 'elsewhere';
    try {
      await client.query('SET statement_timeout = 0');
      const unhurried = (text: string): pg.QueryConfig & { query_timeout: number } => ({ text, query_timeout: SCHEMA_BUILD_TIMEOUT_MS });
      // Again under the lock: another node may have finished it since the read above.
      const was = await valid();
      if (was === true) return 'present';
      // Said before the wait, not after: the start that waits is the one the operator is looking at. No
      // lock_timeout: a build given up leaves an INVALID index, dropped and built (and waited for) again at
      // every later start, while the transaction it waited for may still be open.
      const open = (await client.query<{ n: number; oldest: string | null; who: string | null }>(OPEN_TRANSACTIONS)).rows[0];
      if (onWait && open !== undefined && open.n > 0) {
        onWait(`building index ${index.name} by CREATE INDEX CONCURRENTLY: it waits for the ${open.n} transaction(s) open in this database to end (the oldest since ${open.oldest ?? 'a time not shown to this role'}; ${open.who ?? 'sessions not shown to this role'}), however long: end a long one (a backup's pg_dump, a session idle in a transaction) or wait, and this start goes on`);
      }
      if (was === false) await client.query(unhurried(`DROP INDEX CONCURRENTLY IF EXISTS ${index.name}`));
      await client.query(unhurried(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${index.name} ON ${index.on}`));
      return was === false ? 'rebuilt' : 'built';
    } finally {
      // The connection goes back to the pool: the pool's statement timeout again, and the lock given up (a
      // connection that cannot say so is dropped, which gives it up too).
      await client.query('RESET statement_timeout').catch(markBroken);
      await client.query('SELECT pg_advisory_unlock($1)', [LOCKS.concurrentIndex]).catch(markBroken);
    }
  });
}

/**
 * One row per store's schema (by its advisory lock key) in each PostgreSQL schema the DIP's tables are
 * made in: the digest of the DDL last applied there. Keyed by the schema's name because an unqualified
 * name is looked up along the search_path: a deployment in `staging` with `search_path=staging,public`
 * must not take the row of the one in `public` for its own (its tables are made in `staging`).
 */
const SCHEMA_APPLIED = `CREATE TABLE IF NOT EXISTS dip_schema_digests (
  schema_name text NOT NULL,
  lock_key bigint NOT NULL,
  digest text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schema_name, lock_key)
)`;

const APPLIED_DIGEST = 'SELECT digest FROM dip_schema_digests WHERE schema_name = current_schema() AND lock_key = $1';

/** The digest recorded for a store's schema, read without taking any lock; undefined before the first. */
async function appliedDigest(pool: pg.Pool, lock: number): Promise<string | undefined> {
  try {
    const { rows } = await pool.query<{ digest: string }>(APPLIED_DIGEST, [lock]);
    return rows[0]?.digest;
  } catch (err) {
    if ((err as { code?: unknown })?.code === UNDEFINED_TABLE) return undefined;
    throw err;
  }
}

const UNDEFINED_TABLE = '42P01';

/** The generation recorded for this schema's data (undefined: none, a store made before the gate or new). */
export async function storedGeneration(pool: pg.Pool): Promise<number | undefined> {
  try {
    const { rows } = await pool.query<{ generation: number }>('SELECT generation FROM dip_schema_generation WHERE schema_name = current_schema()');
    return rows[0]?.generation;
  } catch (err) {
    if ((err as { code?: unknown })?.code === UNDEFINED_TABLE) return undefined;
    throw err;
  }
}

/** Raises this schema's recorded generation to `generation` (never lowers it; nothing written when it is there). */
export async function raiseGeneration(pool: pg.Pool, generation: number, at: number): Promise<void> {
  await pool.query(
    `INSERT INTO dip_schema_generation (schema_name, generation, raised_at) VALUES (current_schema(), $1, $2)
     ON CONFLICT (schema_name) DO UPDATE SET generation = EXCLUDED.generation, raised_at = EXCLUDED.raised_at
     WHERE dip_schema_generation.generation < EXCLUDED.generation`,
    [generation, at],
  );
}

/**
 * Runs `fn` in one transaction on a connection of the pool: committed when it returns, rolled back when
 * it throws. For the small stores with pools of their own; the message store's transactions
 * (PgDatabase.transaction) also retry and report the store's health.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withConnection(pool, async (client, markBroken) => {
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      // A query left unanswered: a ROLLBACK would only wait behind it (the connection is dropped).
      if (!isReadTimeout(err)) await client.query('ROLLBACK').catch(markBroken);
      throw err;
    }
  });
}
