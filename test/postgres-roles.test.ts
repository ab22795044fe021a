/**
 * A runtime role apart from the tables' owner (storage.postgres.migrationUrl, src/adapters/postgres/roles.ts):
 * the owner makes the schema and grants the runtime role what the DIP uses; connected as the runtime role,
 * nothing can purge an audit log (the owner could disable its guard or drop it), and the DIP works whole,
 * retention's partition drops included (only a partitioned table's owner may detach a partition).
 */

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { PgActivityLog } from '../src/adapters/postgres/activity-log.js';
import { PgAlarmSubscriptions } from '../src/adapters/postgres/alarm-subscriptions.js';
import { PgOnboardingApplications } from '../src/adapters/postgres/onboarding.js';
import { openPostgresBackend, type PostgresBackend } from '../src/adapters/postgres/index.js';
import { PgDatabase } from '../src/adapters/postgres/database.js';
import { dayOf, partitionName } from '../src/adapters/postgres/partitions.js';
import { chainEntries } from '../src/domain/activity.js';
import { GENESIS_HASH } from '../src/domain/activity.js';
import { activityLogContract } from './contract/activity-log.contract.js';
import { alarmSubscriptionsContract, rowBeforeThresholds, TABLE_BEFORE_THRESHOLDS } from './contract/alarm-subscriptions.contract.js';
import { backendContract } from './contract/backend.contract.js';
import { onboardingContract } from './contract/onboarding.contract.js';
import { batch, mds, message, sup } from './contract/fixtures.js';
import { reportCountsContract } from './contract/report-counts.contract.js';
import { FakeClock } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { behindTheStore, createTestDatabase, createTestRole, queryOnce, type TestDatabase, type TestRole } from './helpers/postgres.js';

let db: TestDatabase;
let owner: TestRole;
let runtime: TestRole;
beforeAll(async () => {
  db = await createTestDatabase('opendip_roles');
  owner = await createTestRole('opendip_owner');
  runtime = await createTestRole('opendip_runtime');
});
afterAll(async () => {
  // The database first: the roles hold privileges and objects in it.
  await db?.drop();
  await runtime?.drop();
  await owner?.drop();
});

/** A fresh schema the owner role owns: its URL as the test's superuser, as the owner, and as the runtime role. */
async function split(): Promise<{ admin: string; migrationUrl: string; url: string }> {
  const admin = await db.freshSchema(owner.name);
  return { admin, migrationUrl: owner.as(admin), url: runtime.as(admin) };
}

const openSplit = (u: { url: string; migrationUrl: string }) => openPostgresBackend({ url: u.url, migrationUrl: u.migrationUrl, clock: systemClock });

backendContract('PostgreSQL as a runtime role', async () => {
  const u = await split();
  const open = () => openSplit(u);
  return { backend: await open(), reopen: open, serverCommit: true, ...behindTheStore(u.admin) };
});

reportCountsContract('PostgreSQL as a runtime role', async () => {
  const u = await split();
  const open = () => openSplit(u);
  return { backend: await open(), reopen: open, serverCommit: true, loseMessage: behindTheStore(u.admin).loseMessage };
});

alarmSubscriptionsContract('PostgreSQL as a runtime role', async () => {
  const u = await split();
  const open = () => PgAlarmSubscriptions.open(u.url, u.migrationUrl);
  return {
    store: await open(),
    reopen: open,
    // The table of before, made by the owner: the runtime role then reads and writes the column the owner adds.
    beforeThresholds: async (old) => {
      const v = await split();
      await queryOnce(v.migrationUrl, TABLE_BEFORE_THRESHOLDS);
      await queryOnce(v.migrationUrl, 'INSERT INTO alarm_subscriptions VALUES ($1, $2, $3, $4, $5, $6)', rowBeforeThresholds(old));
      return PgAlarmSubscriptions.open(v.url, v.migrationUrl);
    },
  };
});

// Its create locks the table (SHARE ROW EXCLUSIVE: UPDATE or DELETE needed) and forgets rows: the runtime role's grants cover it.
onboardingContract('PostgreSQL as a runtime role', async () => {
  const u = await split();
  const open = () => PgOnboardingApplications.open(u.url, u.migrationUrl);
  return { store: await open(), reopen: open };
});

activityLogContract('PostgreSQL as a runtime role', async () => {
  const u = await split();
  const store = await PgActivityLog.open(u.url, u.migrationUrl);
  // What only the owner can do (disable a guard, to damage a record as an attacker holding its role would),
  // and the purges the guards themselves refuse even it.
  const asOwner = (sql: string, values: unknown[] = []) => queryOnce(u.migrationUrl, sql, values);
  const unguarded = async (trigger: string, sql: string, values: unknown[]) => {
    await asOwner(`ALTER TABLE activity_log DISABLE TRIGGER ${trigger}`);
    await asOwner(sql, values);
  };
  return {
    store,
    changeBody: (chain, seq, body) => unguarded('activity_log_no_update', 'UPDATE activity_log SET response_body = $1 WHERE chain = $2 AND seq = $3', [body, chain, seq]),
    deleteRecord: (chain, seq) => unguarded('activity_log_no_delete', 'DELETE FROM activity_log WHERE chain = $1 AND seq = $2', [chain, seq]),
    purges: {
      'DELETE of all': () => asOwner('DELETE FROM activity_log'),
      TRUNCATE: () => asOwner('TRUNCATE activity_log'),
      'DELETE of a chain (its recorded head)': () => asOwner("DELETE FROM activity_chains WHERE chain = 'node-a'"),
    },
    close: () => store.close(),
  };
});

describe('PostgreSQL: a runtime role apart from the owner of the tables', () => {
  const opened: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close();
  });
  const backend = async (u: { url: string; migrationUrl: string }): Promise<PostgresBackend> => {
    const b = await openSplit(u);
    opened.push(b);
    return b;
  };

  /** Neither a guard's refusal nor success: the server's own, because the role lacks the privilege or is not the owner. */
  const NOT_PERMITTED = /permission denied for (?:table|schema)|must be owner of (?:table|relation)/;

  it('cannot purge, change, unguard or drop the audit logs, and appends to and reads them', async () => {
    const u = await split();
    const b = await backend(u);
    const activity = await PgActivityLog.open(u.url, u.migrationUrl);
    opened.push(activity);
    // The DIP writes both logs as the runtime role.
    await b.journal.append({ at: 1, actor: 'op', action: 'test', target: 't', before: null, after: null, status: 200 });
    await activity.openChain('node-a', 1);
    const { records } = chainEntries('node-a', { seq: 0, hash: GENESIS_HASH }, [{ requestId: 'r', at: 2, listener: 'participant', caller: '1000000001', remote: '127.0.0.1', method: 'GET', url: '/x', status: 200, durationMs: 1, responseBody: null }]);
    await activity.append(records);
    expect(await activity.chainRecords('node-a', 0, 10)).toHaveLength(1);
    expect(await b.journal.entries({ limit: 10 })).toHaveLength(1);

    const attempts = {
      'DELETE FROM activity_log': 'DELETE FROM activity_log',
      'UPDATE activity_log': "UPDATE activity_log SET url = '/y'",
      'TRUNCATE activity_log': 'TRUNCATE activity_log',
      'DISABLE TRIGGER on activity_log': 'ALTER TABLE activity_log DISABLE TRIGGER activity_log_no_delete',
      'DISABLE TRIGGER ALL on activity_log': 'ALTER TABLE activity_log DISABLE TRIGGER ALL',
      'DROP TABLE activity_log': 'DROP TABLE activity_log',
      'DELETE FROM activity_chains': 'DELETE FROM activity_chains',
      "UPDATE of a chain's anchor": "UPDATE activity_chains SET anchor_seq = 1, anchor_hash = 'x'",
      'TRUNCATE activity_chains': 'TRUNCATE activity_chains',
      'DELETE FROM operator_journal': 'DELETE FROM operator_journal',
      'UPDATE operator_journal': "UPDATE operator_journal SET actor = 'someone else'",
      'TRUNCATE operator_journal': 'TRUNCATE operator_journal',
      'DISABLE TRIGGER on operator_journal': 'ALTER TABLE operator_journal DISABLE TRIGGER operator_journal_no_delete',
      'DROP TABLE operator_journal': 'DROP TABLE operator_journal',
      // Nor the upgrade's own records (a generation lowered would let an older build start).
      'UPDATE dip_schema_generation': 'UPDATE dip_schema_generation SET generation = 1',
      'DELETE FROM dip_schema_digests': 'DELETE FROM dip_schema_digests',
      // Nor anything else that only an owner may do.
      'TRUNCATE messages': 'TRUNCATE messages',
      'DROP TABLE messages': 'DROP TABLE messages',
    };
    for (const [what, sql] of Object.entries(attempts)) await expect(queryOnce(u.url, sql), what).rejects.toThrow(NOT_PERMITTED);
    expect(await activity.chainRecords('node-a', 0, 10)).toEqual(records);
    expect(await b.journal.entries({ limit: 10 })).toHaveLength(1);
  });

  it("makes and drops day partitions as the owner: retention drops whole days, which the runtime role may not", async () => {
    const u = await split();
    const b = await backend(u);
    const day = 86_400_000;
    const old = Date.now() - 40 * day;
    // Days long past: their partitions are made for these appends.
    await b.log.append(batch([message(['SUP0000001'], { receivedAt: old })]));
    await b.log.append(batch([message(['MDS0000001'], { receivedAt: old - day })]));
    await b.log.settle(sup, { upTo: 1 });
    await expect(queryOnce(u.url, `ALTER TABLE messages DETACH PARTITION ${partitionName('messages', dayOf(old))}`)).rejects.toThrow(NOT_PERMITTED);
    await b.archive.purgeDays(Date.now() - 28 * day);
    await b.archive.purgeAttempts(Date.now() - 28 * day, 100);
    const exists = async (d: number) => (await queryOnce<{ t: string | null }>(u.admin, 'SELECT to_regclass($1) AS t', [partitionName('messages', d)]))[0]!.t !== null;
    expect(await exists(dayOf(old))).toBe(false);
    expect(await exists(dayOf(old - day))).toBe(true);
    expect((await b.archive.findArchived({ ...mds, limit: 10 })).length).toBe(1);
  });

  it('finds by its probe, as the runtime role, that the server takes writes again (the probe empties its table by TRUNCATE)', async () => {
    const u = await split();
    const clock = new FakeClock();
    // One session: what it is told to be (read-only), every statement of the store meets.
    const store = await PgDatabase.open({ url: u.url, migrationUrl: u.migrationUrl, clock, poolSize: 1 });
    opened.push(store);
    const readOnly = (on: boolean) => store.query(`SET default_transaction_read_only = ${on ? 'on' : 'off'}`);
    await readOnly(true);
    await expect(store.tx((c) => c.query('INSERT INTO health_probe (at) VALUES (0)'))).rejects.toMatchObject({ kind: 'unavailable', code: '25006' });
    await readOnly(false);
    await clock.advance(2_000);
    await waitFor(() => store.health().state === 'ok', 10_000, 'the probe to find the server writable');
  });

  it('refuses to start when the runtime role owns the tables (one role before, the tables never handed to the migration role)', async () => {
    const u = await split();
    // The weaker mode: the owner role is the only one, and makes the tables.
    opened.push(await openPostgresBackend({ url: u.migrationUrl, clock: systemClock }));
    // Then made the runtime role, under a new migration role that does not own them (the superuser here).
    await expect(openPostgresBackend({ url: u.migrationUrl, migrationUrl: u.admin, clock: systemClock })).rejects.toThrow(/the runtime role opendip_owner_\w+ owns tables of schema t\d+/);
  });

  it('refuses a migration URL that leads to another schema than the runtime URL', async () => {
    const u = await split();
    const other = await split();
    await expect(openPostgresBackend({ url: u.url, migrationUrl: other.migrationUrl, clock: systemClock })).rejects.toThrow(/the migration URL leads to database opendip_roles_\w+, search_path t\d+, the runtime URL to database opendip_roles_\w+, search_path t\d+/);
  });
});
