import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { PgOnboardingApplications } from '../src/adapters/postgres/onboarding.js';
import { SqliteOnboardingApplications } from '../src/adapters/sqlite/onboarding.js';
import { onboardingContract } from './contract/onboarding.contract.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

onboardingContract('SQLite', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-onboarding-')), 'onboarding.db');
  return { store: new SqliteOnboardingApplications(file), reopen: async () => new SqliteOnboardingApplications(file) };
});

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase('opendip_onboarding');
});
afterAll(async () => {
  await database?.drop();
});

onboardingContract('PostgreSQL', async () => {
  const url = await database.freshSchema();
  return { store: await PgOnboardingApplications.open(url), reopen: () => PgOnboardingApplications.open(url) };
});
