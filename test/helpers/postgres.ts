import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import pg from 'pg';

/** The PostgreSQL server tests use: the service on these machines (.ci/run starts it), or DIP_TEST_POSTGRES_URL. */
export const POSTGRES_URL = process.env.DIP_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  /** A URL for a fresh schema of its own in this database (one per test: each starts empty). */
  freshSchema(): Promise<string>;
  /** The URL of the database itself (its public schema). */
  url: string;
  drop(): Promise<void>;
}

const withDatabase = (url: string, database: string, schema?: string): string => {
  const u = new URL(url);
  u.pathname = `/${database}`;
  if (schema) u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
};

/** A database of its own for one test file (dropped after it), with a schema per test. */
export async function createTestDatabase(prefix = 'opendip_test'): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(POSTGRES_URL, name);
  let n = 0;
  return {
    name,
    url,
    async freshSchema() {
      const schema = `t${++n}`;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE SCHEMA ${schema}`);
      } finally {
        await c.end();
      }
      return withDatabase(POSTGRES_URL, name, schema);
    },
    async drop() {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A database of its own for the calling describe (made before its tests, dropped after): its fresh schemas' URLs. */
export function databaseForDescribe(): { freshSchema(): Promise<string> } {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });
  return { freshSchema: () => db!.freshSchema() };
}
