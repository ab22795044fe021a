import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { PgAlarmSubscriptions } from '../src/adapters/postgres/alarm-subscriptions.js';
import { SqliteAlarmSubscriptions } from '../src/adapters/sqlite/alarm-subscriptions.js';
import { alarmSubscriptionsContract } from './contract/alarm-subscriptions.contract.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

alarmSubscriptionsContract('SQLite', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-alarms-')), 'alarms.db');
  return { store: new SqliteAlarmSubscriptions(file), reopen: async () => new SqliteAlarmSubscriptions(file) };
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
  return { store: await PgAlarmSubscriptions.open(url), reopen: () => PgAlarmSubscriptions.open(url) };
});
