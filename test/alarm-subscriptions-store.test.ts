import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { PgAlarmSubscriptions } from '../src/adapters/postgres/alarm-subscriptions.js';
import { SqliteAlarmSubscriptions } from '../src/adapters/sqlite/alarm-subscriptions.js';
import Database from 'better-sqlite3';
import { alarmSubscriptionsContract, rowBeforeThresholds, TABLE_BEFORE_THRESHOLDS } from './contract/alarm-subscriptions.contract.js';
import { createTestDatabase, queryOnce, type TestDatabase } from './helpers/postgres.js';

alarmSubscriptionsContract('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-alarms-'));
  const file = join(dir, 'alarms.db');
  return {
    store: new SqliteAlarmSubscriptions(file),
    reopen: async () => new SqliteAlarmSubscriptions(file),
    beforeThresholds: async (old) => {
      const earlier = join(dir, 'earlier.db');
      const db = new Database(earlier);
      db.exec(TABLE_BEFORE_THRESHOLDS);
      db.prepare('INSERT INTO alarm_subscriptions VALUES (?, ?, ?, ?, ?, ?)').run(...rowBeforeThresholds(old));
      db.close();
      return new SqliteAlarmSubscriptions(earlier);
    },
  };
});

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase('opendip_alarms');
});
afterAll(async () => {
  await database?.drop();
});

alarmSubscriptionsContract('PostgreSQL', async () => {
  const url = await database.freshSchema();
  return {
    store: await PgAlarmSubscriptions.open(url),
    reopen: () => PgAlarmSubscriptions.open(url),
    beforeThresholds: async (old) => {
      const earlier = await database.freshSchema();
      await queryOnce(earlier, TABLE_BEFORE_THRESHOLDS);
      await queryOnce(earlier, 'INSERT INTO alarm_subscriptions VALUES ($1, $2, $3, $4, $5, $6)', rowBeforeThresholds(old));
      return PgAlarmSubscriptions.open(earlier);
    },
  };
});
