import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import pg from 'pg';

/** The PostgreSQL server tests use: the service on these machines (.ci/run starts it), or DIP_TEST_POSTGRES_URL. */
export const POSTGRES_URL = process.env.DIP_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  /** A URL for a fresh schema of its own in this database (one per test: each starts empty), owned by `owner` if named. */
  freshSchema(owner?: string): Promise<string>;
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
    async freshSchema(owner?: string) {
      const schema = `t${++n}`;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE SCHEMA ${schema}${owner ? ` AUTHORIZATION ${owner}` : ''}`);
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

export interface TestRole {
  name: string;
  /** `url` (a database's or a schema's) as this role. */
  as(url: string): string;
  /** Drops the role: after the test databases it holds privileges in are dropped. */
  drop(): Promise<void>;
}

/** A login role of its own on the test server (roles belong to the server, not to a database), without a password (the test server trusts local logins). */
export async function createTestRole(prefix: string): Promise<TestRole> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: POSTGRES_URL });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE ROLE ${name} LOGIN`);
  return {
    name,
    as(url) {
      const u = new URL(url);
      u.username = name;
      u.password = '';
      return u.toString();
    },
    drop: () => admin(`DROP ROLE IF EXISTS ${name}`),
  };
}

/** One statement over a connection of the test's own (behind the store's back): its rows. */
export async function queryOnce<R extends pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(sql, values)).rows;
  } finally {
    await c.end();
  }
}

/** The backend contract's hooks that reach behind the store at `url`: a message's row deleted, as damage would; the MPAN lookup as stored. */
export function behindTheStore(url: string): { loseMessage: (messageId: number) => Promise<void>; storedMpans: () => Promise<string[]> } {
  return {
    loseMessage: async (messageId) => void (await queryOnce(url, 'DELETE FROM messages WHERE id = $1', [messageId])),
    storedMpans: async () => (await queryOnce<{ mpan: string }>(url, 'SELECT mpan FROM mpan_appointments')).map((r) => r.mpan),
  };
}
