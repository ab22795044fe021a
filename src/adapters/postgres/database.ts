import { queueKey } from '../../ports/queue-ref.js';
import pg from 'pg';
import { endedByAdministrator, IDLE_IN_TRANSACTION_MS, LOCK_TIMEOUT_MS, openPool, withConnection } from './pool.js';
import type { BackendHealth, CommitGroup, ValueSealer } from '../../ports/backend.js';
import { sealOutbound } from '../../security/seal-batch.js';
import type { Cancel, Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';
import { COMMIT_IN_DOUBT, StoreError } from '../../ports/errors.js';
import type { QueueRef } from '../../ports/message-log.js';
import { classifyPgError, isLockTimeout, isReadTimeout, isRetryable } from './errors.js';
import { commitInDoubt, NOT_KNOWN, settleInDoubt, unconfirmed } from './in-doubt.js';
import { createDays, dayOf } from './partitions.js';
import { openOwner, type Owner } from './roles.js';
import { newerGenerationStop, SCHEMA_GENERATION, unreadableGeneration } from '../schema-generation.js';
import { applySchema, LOCKS, mpanIndexDdl, raiseGeneration, SCHEMA, SEED, storedGeneration } from './schema.js';

export interface PostgresOptions {
  /** postgres://user:password@host:port/database (TLS and the rest as node-postgres reads them from the URL). */
  url: string;
  /**
   * postgres:// of the role that owns the tables (storage.postgres.migrationUrl): the schema, its grants to
   * `url`'s role, and day partitions are made and dropped over it (roles.ts). Absent: `url`'s role owns
   * them, the weaker mode.
   */
  migrationUrl?: string;
  clock: Clock;
  /** Index the archive's consumption by MPAN (storage.mpanIndex; schema.ts mpanIndexDdl): off unless true. */
  mpanIndex?: boolean;
  /** Connections this process keeps open (default 10). */
  poolSize?: number;
  /** Append groups committing at once (default 2): the next group forms while one commits. */
  concurrentGroups?: number;
  /** How long a query may go unanswered before the client gives it up (default QUERY_TIMEOUT_MS; tests shorten it). */
  queryTimeoutMs?: number;
  /** The server's idle_in_transaction_session_timeout (default IDLE_IN_TRANSACTION_MS; tests shorten it). */
  idleInTransactionMs?: number;
  /** How long a transaction's statement waits for a lock (default LOCK_TIMEOUT_MS; tests shorten it). */
  lockTimeoutMs?: number;
  /** How often, while healthy, the server is asked whether it takes writes (default WRITABLE_CHECK_MS). */
  writableCheckMs?: number;
  /**
   * How long a COMMIT may wait for the synchronous standbys before the store is called unavailable, their
   * not acknowledging named (default SYNC_WAIT_ALARM_MS; tests shorten it).
   */
  syncWaitAlarmMs?: number;
  /** Where the store's own background work (the upgrade's backfill) says it failed. */
  logger?: Logger;
}

const PLAIN: ValueSealer = { seal: (plain) => plain, open: (sealed) => sealed, index: (value) => value };

/** How much the health probe writes: what a batch of a few hundred IF-021 takes stored (~2.5 kB each). */
export const PROBE_BYTES = 1 << 20;

/** How often a healthy store asks the server whether it still takes writes (storage.postgres.writableCheckMs). */
export const WRITABLE_CHECK_MS = 5_000;

/**
 * How long a COMMIT of this application may wait for the synchronous standbys before the store is called
 * unavailable (`/admin/health`'s storage, the `storage` alarm): a standby in reach acknowledges in
 * milliseconds, and one that does not holds every commit until the client gives up (QUERY_TIMEOUT_MS).
 */
export const SYNC_WAIT_ALARM_MS = 10_000;

export interface LockedQueue {
  id: number;
  /** The last position given out, as this transaction moves it. */
  head: number;
  /** The head as locked: what to compare to when writing it back. */
  lockedHead: number;
}

/** A sealer's output as a bytea column keeps it, and whether it is sealed (a sealer gives text back when nothing seals at rest). */
export function storedForm(v: Buffer | string): { bytes: Buffer; sealed: boolean } {
  return typeof v === 'string' ? { bytes: Buffer.from(v, 'utf8'), sealed: false } : { bytes: v, sealed: true };
}

/**
 * The PostgreSQL side of the cluster backend: one pool, and what every port's module shares over it —
 * transactions with retry and error classification, day partitions made on demand, queue rows locked in
 * a fixed order, the at-rest sealer, and the store's health.
 *
 * Durability: a promise resolves only after COMMIT returned, which with PostgreSQL's defaults
 * (synchronous_commit = on) means the WAL is flushed, and where synchronous_standby_names is set, that a
 * quorum of standbys has it too. Nothing is visible to other sessions before then.
 */
export class PgDatabase {
  readonly pool: pg.Pool;
  /** The tables' owner (the runtime pool itself without a migration URL): DDL, partitions, retention's drops. */
  private owner: Owner | null = null;
  sealer: ValueSealer = PLAIN;
  private readonly knownDays = new Set<number>();
  /**
   * Queue rows known to exist, by key. A row a transaction inserts is known only once it commits: known
   * before, another transaction of this process would skip the insert (which waits for the first to end)
   * and, not seeing the uncommitted row, leave that queue unlocked (a campaign's "queue … was not locked
   * before appending to it"); and a rollback would leave a row known that does not exist.
   */
  private readonly queueIds = new Map<string, number>();
  /** Channels known to be in archived_channels (likewise, known once the insert committed). */
  private readonly knownChannels = new Set<string>();
  /** What each open transaction learns that holds only if it commits, by its connection. */
  private readonly onCommit = new WeakMap<pg.PoolClient, Array<() => void>>();
  private state: BackendHealth = { state: 'ok' };
  private readonly healthListeners: Array<(h: BackendHealth) => void> = [];
  private readonly groupListeners: Array<(g: CommitGroup) => void> = [];
  private probe: Cancel | null = null;
  private writableCheck: Cancel | null = null;
  /** A writable check is waiting for its answer: the next tick does not stack another behind it. */
  private checking = false;
  /**
   * A probe is running: the next tick does not start another. A probe's COMMIT waiting for a standby that
   * does not acknowledge waits until the client gives up (35 s): probes every 2 s took every connection.
   */
  private probing = false;
  /** When each COMMIT sent and not yet answered was sent, by its transaction's attempt. */
  private readonly commitsSent = new Map<object, number>();
  /** BEGIN with this transaction's lock timeout (one round trip). */
  private readonly begin: string;
  /**
   * How long tx keeps running a transaction again after lock timeouts: a lock held by a session the server
   * ends for idling (a node cut off, frozen) is free again by then. Past it the write fails as unavailable
   * (503, tried again by its sender) without calling this store unavailable: the wait was another's.
   */
  private readonly lockWaitBudgetMs: number;
  private closed = false;
  /** Why this store refuses every query for good (a newer build migrated the data while this node ran), or null. */
  private refused: StoreError | null = null;

  private constructor(readonly options: PostgresOptions) {
    // A statement that waits 30 s is given up (a stuck lock, a failing-over server): the write is answered
    // 503 and tried again by its sender, instead of holding a request for ever. See openPool for the rest.
    this.pool = openPool({
      url: options.url,
      max: options.poolSize ?? 10,
      applicationName: 'opendip',
      ...(options.queryTimeoutMs === undefined ? {} : { queryTimeoutMs: options.queryTimeoutMs }),
      ...(options.idleInTransactionMs === undefined ? {} : { idleInTransactionMs: options.idleInTransactionMs }),
    });
    // Only inside tx: applying a changed schema sets its own (applySchema), and so do the partition and
    // retention statements.
    // The session's pid comes back with BEGIN, in the same round trip, for a COMMIT whose answer is lost
    // (settleInDoubt ends that session): the client's own processID is a pooler's key behind PgBouncer.
    // And the stored data's generation (one primary-key read): a newer build may have migrated it since this
    // node started, and no transaction of this one writes beside it (newerGenerationStop).
    this.begin = `BEGIN; SET LOCAL lock_timeout = ${Math.max(1, Math.round(options.lockTimeoutMs ?? LOCK_TIMEOUT_MS))}; SELECT pg_backend_pid() AS pid, now()::text AS began, (SELECT generation FROM dip_schema_generation WHERE schema_name = current_schema()) AS generation`;
    this.lockWaitBudgetMs = (options.idleInTransactionMs ?? IDLE_IN_TRANSACTION_MS) + 2 * (options.lockTimeoutMs ?? LOCK_TIMEOUT_MS);
  }

  static async open(options: PostgresOptions): Promise<PgDatabase> {
    const d = new PgDatabase(options);
    try {
      const owner = (d.owner = await openOwner(d.pool, options.migrationUrl, 'opendip-owner'));
      // Before anything is applied: an older schema's DDL laid over a newer one's data is how a downgrade
      // would start misreading it.
      const why = unreadableGeneration(await storedGeneration(owner.pool), 'the PostgreSQL database');
      if (why !== null) throw new StoreError('permanent', why, SCHEMA_GENERATION);
      await applySchema(owner.pool, LOCKS.schema, owner.withGrants(`${SCHEMA}\n${mpanIndexDdl(options.mpanIndex === true)}`));
      await d.pool.query(SEED);
      const today = dayOf(options.clock.now());
      await d.ensureDays([today - 1, today, today + 1, today + 2]);
    } catch (err) {
      await d.owner?.close().catch(() => {});
      await d.pool.end().catch(() => {});
      throw classifyPgError(err);
    }
    d.startCheckingWritable();
    return d;
  }

  get url(): string {
    return this.options.url;
  }

  private get syncWaitAlarmMs(): number {
    return this.options.syncWaitAlarmMs ?? SYNC_WAIT_ALARM_MS;
  }

  /** Connections as the tables' owner, for what only it may do: day partitions made and dropped. */
  get ownerPool(): pg.Pool {
    return this.owner?.pool ?? this.pool;
  }

  /**
   * Records that the stored data is now of `generation` (src/adapters/schema-generation.ts): the owner's to
   * write. Read first: once recorded, a start writes nothing (a node may start on a server that takes no
   * writes yet, and say so by its health).
   */
  async raiseGeneration(generation: number): Promise<void> {
    try {
      if (((await storedGeneration(this.ownerPool)) ?? 1) >= generation) return;
      await raiseGeneration(this.ownerPool, generation, this.options.clock.now());
    } catch (err) {
      throw classifyPgError(err);
    }
  }

  useSealer(sealer: ValueSealer): void {
    this.sealer = sealer;
  }

  /** An outbound copy as stored: compressed and sealed (bound to its message) when encryption at rest is on, else UTF-8. */
  sealText(plain: string, transactionId: string): { bytes: Buffer; sealed: boolean } {
    return storedForm(sealOutbound(plain, transactionId, this.sealer));
  }

  /** The outbound copy of message `transactionId`, from its stored form. */
  reveal(bytes: Buffer, sealed: boolean, transactionId: string): string {
    return sealed ? this.sealer.open(bytes, 'outbound', transactionId).toString('utf8') : bytes.toString('utf8');
  }

  /**
   * One statement outside any transaction: reads only. A statement whose session an operator ended is
   * run once more (below), which only a read may be; a write goes through tx.
   */
  async query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    if (this.refused) throw this.refused;
    for (let attempt = 1; ; attempt++) {
      try {
        const { rows } = await this.pool.query<R>(text, values);
        return rows;
      } catch (err) {
        // Its session ended by an operator (57P01: pg_terminate_backend), the statement rolled back with
        // it: run once more on a new connection, as tx() does, rather than call a server that is up
        // unavailable (the writable check and every read did, until the next probe).
        if (attempt === 1 && (err as { code?: unknown } | undefined)?.code === '57P01') continue;
        const e = classifyPgError(err);
        this.outcome(e);
        throw e;
      }
    }
  }

  /**
   * Runs `fn` in one transaction. A serialization failure or deadlock runs it again (a few times) before
   * failing; every failure leaves as a classified StoreError, and the outcome moves the store's health.
   * `fn` may run more than once: it must only write through the client.
   *
   * A COMMIT whose answer is lost may have committed. With `isCommitted` (whether a row `fn` wrote exists,
   * read on another connection), tx finds out (settleInDoubt) and returns `fn`'s result if it did (and,
   * where the server waits for synchronous standbys, they are shown to have it), or fails as unavailable,
   * nothing written, if it did not; without it, or when it cannot be known, it fails with code
   * COMMIT_IN_DOUBT, so that nobody is told "nothing was stored" of what may have been, nor "accepted" of
   * what only the primary holds.
   */
  async tx<T>(fn: (c: pg.PoolClient) => Promise<T>, days: Iterable<number> = [], isCommitted?: (c: pg.PoolClient) => Promise<boolean>): Promise<T> {
    if (this.closed) throw new StoreError('unavailable', 'the store is closing', 'CLOSED');
    if (this.refused) throw this.refused;
    const started = this.options.clock.now();
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient | undefined;
      let committing = false;
      let result: T | undefined;
      let wrote = false;
      /** The server session (its pid, and when this transaction began there), once BEGIN has answered. */
      let session: { pid: number; began: string } | undefined;
      /** What this attempt learns that holds once it commits (afterCommit). */
      const learnt: Array<() => void> = [];
      try {
        await this.ensureDays(days);
        client = await this.pool.connect();
        this.onCommit.set(client, learnt);
        // Several statements in one query: node-postgres answers with one result each (its types say one).
        const began = (await client.query(this.begin)) as unknown as Array<pg.QueryResult<{ pid: number; began: string; generation: number | null }>>;
        const opened = began.at(-1)?.rows[0];
        session = opened;
        const newer = newerGenerationStop(opened?.generation ?? undefined, 'the PostgreSQL database');
        if (newer !== null) throw newer;
        result = await fn(client);
        // While writes fail, only a transaction that wrote says they succeed again: one that only read (an
        // append of duplicates, a lookup) commits on a read-only standby and on a full disk alike, and
        // called the store healthy while every write was refused. Asked only then: no cost otherwise.
        wrote = this.state.state === 'ok' || (await client.query<{ wrote: boolean }>('SELECT txid_current_if_assigned() IS NOT NULL AS wrote')).rows[0]!.wrote;
        committing = true;
        this.commitsSent.set(learnt, this.options.clock.now());
        await client.query('COMMIT');
        this.commitsSent.delete(learnt);
        this.onCommit.delete(client);
        client.release();
        for (const l of learnt) l();
        if (wrote) this.outcome(null);
        return result;
      } catch (err) {
        this.commitsSent.delete(learnt);
        // A session an operator ended (pg_terminate_backend) before its COMMIT was sent: rolled back, and
        // the server is up. Run once more on a new connection rather than call the store unavailable (a
        // campaign's terminate of every session made each node answer 503 and fail its health until its
        // next probe). Not after COMMIT was sent (it may have committed), nor twice (a server shutting
        // down ends the new session too, or refuses it: that is unavailable).
        const endedByOperator = client !== undefined && !committing && attempt === 1 && endedByAdministrator(client, err);
        let broken = false;
        if (client) {
          // A connection that failed mid-transaction is not handed out again; one whose query went
          // unanswered is dropped at once (a ROLLBACK would wait behind that query for as long again).
          broken =
            isReadTimeout(err) ||
            (await client.query('ROLLBACK').then(
              () => false,
              () => true,
            ));
          this.onCommit.delete(client);
          client.release(broken ? (err as Error) : undefined);
        }
        if (endedByOperator) continue;
        // In doubt only if the connection broke with it: a COMMIT the server answered with an error (57014,
        // cancelled) on a session that then rolled back did not commit, and that session, back in the
        // pool, may already carry another transaction that settling would end.
        if (committing && broken && commitInDoubt(err)) {
          const settled = isCommitted ? await settleInDoubt(this.pool, session, isCommitted) : NOT_KNOWN;
          if (settled === true) {
            for (const l of learnt) l();
            // As on the happy path: a transaction that wrote nothing (every message a duplicate) proves
            // nothing about writes, though it committed.
            if (wrote) this.outcome(null);
            return result as T;
          }
          if (settled !== false) {
            const e = new StoreError('unavailable', `PostgreSQL: the answer to COMMIT was lost (${(err as Error).message}); ${settled}`, COMMIT_IN_DOUBT, { cause: err });
            this.outcome(e);
            throw e;
          }
        }
        if (isRetryable(err) && attempt < 5) continue;
        if (isLockTimeout(err) && this.options.clock.now() - started < this.lockWaitBudgetMs) continue;
        const e = classifyPgError(err);
        this.outcome(e);
        throw e;
      }
    }
  }

  /**
   * Fails as unavailable, code COMMIT_IN_DOUBT, unless what this transaction found already committed (a
   * resend's duplicates) is on as many synchronous standbys as the server waits for. A transaction that
   * writes nothing commits without waiting for them, so its "already accepted" would otherwise speak for a
   * commit the primary alone holds (a session ended while it waited for them), which a failover loses.
   */
  async confirmOnStandbys(c: pg.PoolClient): Promise<void> {
    const unshown = await unconfirmed(c);
    if (unshown !== null) throw new StoreError('unavailable', `PostgreSQL: what is resent is stored on the primary, but ${unshown}`, COMMIT_IN_DOUBT);
  }

  /** Makes sure the day partitions exist (cached: a day is checked once per process). */
  async ensureDays(days: Iterable<number>): Promise<void> {
    const missing = [...new Set(days)].filter((d) => !this.knownDays.has(d));
    if (missing.length === 0) return;
    await withConnection(this.ownerPool, (client) => createDays(client, missing));
    for (const d of missing) this.knownDays.add(d);
  }

  /** The day's partitions were dropped: a write for it (a clock set back) creates them again. */
  forgetDay(day: number): void {
    this.knownDays.delete(day);
  }

  /**
   * Locks the queues' rows for the rest of the transaction, creating those that do not exist yet, always
   * in the same order (keys, then ids), so two transactions extending the same queues cannot deadlock.
   * Positions taken from the returned heads are consecutive: no other writer can move a head until this
   * transaction ends.
   */
  async lockQueues(c: pg.PoolClient, refs: Iterable<QueueRef>): Promise<Map<string, LockedQueue>> {
    const unique = new Map<string, QueueRef>();
    for (const r of refs) unique.set(queueKey(r), r);
    const out = new Map<string, LockedQueue>();
    if (unique.size === 0) return out;
    const sorted = [...unique.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const recipients = sorted.map(([, r]) => r.recipientDipId);
    const channels = sorted.map(([, r]) => r.channel);
    // Rows this transaction makes: the others were committed before (the insert waits for a concurrent one).
    const made = new Set<string>();
    if (sorted.some(([k]) => !this.queueIds.has(k))) {
      const { rows } = await c.query<{ recipient: string; channel: string }>(
        `INSERT INTO queues (recipient_dip_id, channel)
         SELECT r, ch FROM unnest($1::text[], $2::text[]) AS t(r, ch) ORDER BY r, ch ON CONFLICT DO NOTHING
         RETURNING recipient_dip_id AS recipient, channel`,
        [recipients, channels],
      );
      for (const r of rows) made.add(queueKey({ recipientDipId: r.recipient, channel: r.channel }));
    }
    const { rows } = await c.query<{ id: number; recipient: string; channel: string; head: number }>(
      `SELECT id, recipient_dip_id AS recipient, channel, head FROM queues
        WHERE (recipient_dip_id, channel) IN (SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY id FOR UPDATE`,
      [recipients, channels],
    );
    for (const r of rows) {
      const k = queueKey({ recipientDipId: r.recipient, channel: r.channel });
      if (made.has(k)) this.afterCommit(c, () => this.queueIds.set(k, r.id));
      else this.queueIds.set(k, r.id);
      out.set(k, { id: r.id, head: r.head, lockedHead: r.head });
    }
    return out;
  }

  /** Writes back the heads a transaction moved (after lockQueues). */
  async saveHeads(c: pg.PoolClient, locked: Map<string, LockedQueue>): Promise<void> {
    const moved = [...locked.values()].filter((q) => q.head !== q.lockedHead);
    if (moved.length === 0) return;
    await c.query('UPDATE queues q SET head = t.head FROM unnest($1::int[], $2::bigint[]) AS t(id, head) WHERE q.id = t.id', [
      moved.map((q) => q.id),
      moved.map((q) => q.head),
    ]);
  }

  /** Records that messages were archived on these channels (what retention goes through). */
  async noteChannels(c: pg.PoolClient, channels: string[]): Promise<void> {
    const fresh = channels.filter((ch) => !this.knownChannels.has(ch));
    if (fresh.length === 0) return;
    const { rows } = await c.query<{ channel: string }>('INSERT INTO archived_channels (channel) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING channel', [fresh]);
    const made = new Set(rows.map((r) => r.channel));
    for (const ch of fresh) {
      if (made.has(ch)) this.afterCommit(c, () => this.knownChannels.add(ch));
      else this.knownChannels.add(ch);
    }
  }

  /** Runs `learnt` once the transaction on `c` has committed (never, when it fails). */
  private afterCommit(c: pg.PoolClient, learnt: () => void): void {
    this.onCommit.get(c)?.push(learnt);
  }

  /** The queue's id, if it exists (ids never change: cached). */
  async queueId(q: QueueRef, c?: pg.PoolClient): Promise<number | undefined> {
    const k = queueKey(q);
    const known = this.queueIds.get(k);
    if (known !== undefined) return known;
    const text = 'SELECT id FROM queues WHERE recipient_dip_id = $1 AND channel = $2';
    const rows = c ? (await c.query<{ id: number }>(text, [q.recipientDipId, q.channel])).rows : await this.query<{ id: number }>(text, [q.recipientDipId, q.channel]);
    const id = rows[0]?.id;
    // Inside a transaction the row may be its own, not yet committed.
    if (id !== undefined) {
      if (c) this.afterCommit(c, () => this.queueIds.set(k, id));
      else this.queueIds.set(k, id);
    }
    return id;
  }

  health(): BackendHealth {
    return this.state;
  }

  onHealthChange(listener: (h: BackendHealth) => void): void {
    this.healthListeners.push(listener);
  }

  onGroupCommit(listener: (g: CommitGroup) => void): void {
    this.groupListeners.push(listener);
  }

  /** A group of appends committed (message log): metrics. */
  groupCommitted(group: CommitGroup): void {
    for (const l of this.groupListeners) l(group);
  }

  private outcome(error: StoreError | null): void {
    if (this.refused) return; // for good
    if (error?.kind === 'fatal') return this.refuse(error);
    if (error !== null && error.kind !== 'unavailable') return; // a permanent error concerns one write, not the store
    if (error !== null && isLockTimeout(error.cause)) return; // another session's lock: this store still takes writes
    const next: BackendHealth = error === null ? { state: 'ok' } : { state: 'unavailable', reason: error.message, code: error.code };
    // Still unavailable, for another cause (a server that refused connections now takes them read-only, or
    // is out of space): said as it is now, not as it was first, on /admin/health, in the alarm and the log.
    // The same cause (SQLSTATE) keeps its first words: the writable check's "a standby in recovery" says
    // more than the probe's "cannot execute LOCK TABLE in a read-only transaction" that follows it.
    // Except that the server's own answer to why it takes no writes replaces a write's "cannot execute …".
    const now = this.state;
    const named = (h: BackendHealth) => h.state === 'unavailable' && h.reason.startsWith(NOT_WRITABLE);
    if (next.state === now.state && (next.state === 'ok' || (now.state === 'unavailable' && now.code === next.code && (named(now) || !named(next))))) return;
    this.state = next;
    if (next.state === 'unavailable') {
      this.stopCheckingWritable();
      this.startProbing();
    } else {
      this.stopProbing();
      this.startCheckingWritable();
    }
    for (const l of this.healthListeners) l(next);
  }

  /**
   * Refuses every query from now on with `error` (fatal: health says so, the node reports not ready and `dip
   * serve` exits), and stops the checks: the data is of a generation this build would misread or write
   * beside in the old shape. Transactions already running finish.
   */
  private refuse(error: StoreError): void {
    this.refused = error;
    this.stopCheckingWritable();
    this.stopProbing();
    this.state = { state: 'fatal', reason: error.message };
    for (const l of this.healthListeners) l(this.state);
  }

  /**
   * While the server cannot take writes, a write every two seconds finds out when it can again, so
   * delivery and ingest resume by themselves even if nobody writes meanwhile. It is the size of a large
   * batch (PROBE_BYTES), as the SQLite store's is, and emptied by TRUNCATE (new, empty files) rather than
   * DELETE (whose freed pages the next probe would reuse): a one-row probe fits in a page the table
   * already has on a disk too full for any real batch, and would call the store healthy while every
   * submission is refused.
   */
  private startProbing(): void {
    if (this.probe || this.closed) return;
    this.probe = this.options.clock.every(2_000, () => {
      if (this.probing) return;
      this.probing = true;
      this.tx(async (c) => {
        // Why the server takes no writes, asked first: a store made unavailable by a write that met a
        // standby, or by a read its failover cut off, says so (pg_is_in_recovery()) as the check would have;
        // and commits still waiting for a standby that does not acknowledge, rather than one more.
        const why = await whyNotWritable((text, values) => c.query<WritableRow>(text, values).then((r) => r.rows), this.syncWaitAlarmMs);
        if (why !== null) throw why;
        // The lock TRUNCATE needs, taken first: every node probes while a shared server refuses writes,
        // and two probes each holding the INSERT's lock while waiting for TRUNCATE's would deadlock (40P01).
        await c.query('LOCK TABLE health_probe IN ACCESS EXCLUSIVE MODE');
        await c.query("INSERT INTO health_probe (at, pad) VALUES ($1, decode(repeat('00', $2), 'hex'))", [this.options.clock.now(), PROBE_BYTES]);
        await c.query('TRUNCATE health_probe');
      })
        .catch(() => {})
        .finally(() => (this.probing = false));
    });
  }

  private stopProbing(): void {
    this.probe?.();
    this.probe = null;
  }

  /**
   * While healthy, the server is asked every WRITABLE_CHECK_MS whether it would take a write, in one
   * read-only round trip: otherwise a node whose connections land on a read-only server (a standby after
   * a failover, a primary set to default_transaction_read_only) said ok on /ready, /health and in its
   * alarms until a participant's submission met 25006 and got a 503. A server that will not take writes
   * makes the store unavailable as that failed write would, so the probe above takes over and decides
   * when it is healthy again; nothing is written while healthy.
   */
  private startCheckingWritable(): void {
    if (this.writableCheck || this.closed) return;
    this.writableCheck = this.options.clock.every(this.options.writableCheckMs ?? WRITABLE_CHECK_MS, () => {
      // A busy pool is asked over a connection of its own when a COMMIT has waited long: every connection
      // waiting for a standby that does not acknowledge is when the check matters most.
      const apart = this.poolBusy();
      if (this.checking || (apart && !this.commitWaitedPast(this.syncWaitAlarmMs))) return;
      this.checking = true;
      this.checkWritable(apart)
        .catch(() => {}) // a failed query already moved health (query)
        .finally(() => (this.checking = false));
    });
  }

  /**
   * Every connection in use and none to spare: a node this busy is ingesting or delivering, whose writes
   * meet a read-only server themselves. A check would only queue behind them, and one that waited past
   * the pool's connection timeout (5 s) would call a merely busy store unavailable.
   */
  private poolBusy(): boolean {
    return this.pool.waitingCount > 0 || (this.pool.idleCount === 0 && this.pool.totalCount >= (this.pool.options.max ?? 10));
  }

  /** Whether a COMMIT sent by this store has gone unanswered for `ms` or more. */
  private commitWaitedPast(ms: number): boolean {
    const now = this.options.clock.now();
    for (const sent of this.commitsSent.values()) if (now - sent >= ms) return true;
    return false;
  }

  /**
   * The writable check over a connection of its own, outside the busy pool (closed at once): a check
   * that cannot connect says nothing (the writes in the pool meet whatever it is themselves).
   */
  private async whyNotWritableApart(): Promise<StoreError | null> {
    const client = new pg.Client(this.pool.options);
    client.on('error', () => {});
    try {
      await client.connect();
      return await whyNotWritable((text, values) => client.query<WritableRow>(text, values).then((r) => r.rows), this.syncWaitAlarmMs);
    } catch {
      return null;
    } finally {
      await client.end().catch(() => {});
    }
  }

  private stopCheckingWritable(): void {
    this.writableCheck?.();
    this.writableCheck = null;
  }

  /** Asks the server (one connection of the pool, as a write would take) whether it takes writes. */
  private async checkWritable(apart: boolean): Promise<void> {
    const why = apart ? await this.whyNotWritableApart() : await whyNotWritable((text, values) => this.query<WritableRow>(text, values), this.syncWaitAlarmMs);
    if (this.closed || this.state.state !== 'ok') return;
    // Fatal when the generation read in the same round trip is newer (a newer build migrated the store): an
    // idle node stops too, not only at its next write. outcome then refuses everything.
    if (why !== null) this.outcome(why);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopCheckingWritable();
    this.stopProbing();
    await this.owner?.close();
    await this.pool.end();
  }
}

const NOT_WRITABLE = 'PostgreSQL: the server takes no writes: ';
interface WritableRow {
  recovery: boolean;
  readOnly: string;
  /** The stored data's generation (null: none recorded), read with the rest: a newer build may have migrated it since this node started. */
  generation: number | null;
  /** How long the oldest COMMIT of this application has waited for the synchronous standbys (ms), null when none waits. */
  syncWaitMs: number | null;
  syncNames: string;
  /** The standbys streaming, named with their sync_state; null when none does. */
  standbys: string | null;
}

/**
 * Why the server would refuse a write or hold it (one read-only round trip), or null if it would take it:
 * a standby in recovery and read-only sessions are 25006 (read_only_sql_transaction, what the write this
 * forestalls would have met); a COMMIT of this application that has waited `syncWaitMs` or more for the
 * synchronous standbys is SYNC_STANDBY_WAIT (its session's wait_event SyncRep): until a standby
 * acknowledges, no write is answered, and none may be answered as accepted.
 */
async function whyNotWritable(query: (text: string, values: unknown[]) => Promise<WritableRow[]>, syncWaitMs: number): Promise<StoreError | null> {
  const rows = await query(
    `SELECT pg_is_in_recovery() AS recovery, current_setting('transaction_read_only') AS "readOnly",
            (SELECT generation FROM dip_schema_generation WHERE schema_name = current_schema()) AS generation,
            (SELECT floor(extract(epoch FROM now() - min(query_start)) * 1000)::bigint FROM pg_stat_activity
              WHERE wait_event = 'SyncRep' AND datname = current_database() AND application_name = current_setting('application_name')) AS "syncWaitMs",
            current_setting('synchronous_standby_names') AS "syncNames",
            (SELECT string_agg(application_name || ' (' || coalesce(sync_state, 'state not readable without pg_read_all_stats') || ')', ', ') FROM pg_stat_replication) AS standbys`,
    [],
  );
  const row = rows[0];
  if (!row) return null;
  const newer = newerGenerationStop(row.generation ?? undefined, 'the PostgreSQL database');
  if (newer !== null) return newer;
  if (row.recovery) return notWritable('it is a standby in recovery (pg_is_in_recovery())');
  if (row.readOnly === 'on') return notWritable('its sessions are read-only (transaction_read_only is on)');
  if (row.syncWaitMs !== null && row.syncWaitMs >= syncWaitMs) {
    const why = `the standby does not acknowledge: a COMMIT has waited ${Math.round(row.syncWaitMs / 1000)} s for synchronous replication (synchronous_standby_names '${row.syncNames}'; standbys streaming: ${row.standbys ?? 'none'}); nothing is answered as accepted until a standby has it`;
    return new StoreError('unavailable', `${NOT_WRITABLE}${why}`, SYNC_STANDBY_WAIT);
  }
  return null;
}

/** 25006, read_only_sql_transaction: what the write this forestalls would have met. */
const notWritable = (why: string) => new StoreError('unavailable', `${NOT_WRITABLE}${why}`, '25006');

/** The store's health code while COMMITs wait for synchronous standbys that do not acknowledge. */
export const SYNC_STANDBY_WAIT = 'SYNC_STANDBY_WAIT';

/** Rows the store writes must exist when it reads them; a missing one means damaged data. */
export function damaged(what: string): StoreError {
  return new StoreError('permanent', `damaged database: ${what}`, 'MISSING_ROW');
}
