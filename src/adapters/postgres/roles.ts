import type pg from 'pg';
import { openPool } from './pool.js';
import { applySchema, buildIndexConcurrently, type ConcurrentIndex } from './schema.js';

/**
 * The two PostgreSQL roles of a cluster (storage.postgres.migrationUrl, docs/cluster.md "Roles"): the
 * owner of the tables, which makes and changes them, and a runtime role, which every query of the road
 * runs as. The audit logs' append-only triggers stop a DELETE, an UPDATE or a TRUNCATE from any role, but
 * a table's owner can disable a trigger or drop the table; the runtime role owns nothing, and on the audit
 * tables holds INSERT and SELECT only, so nothing that runs as it can purge them (spec 5.8.1).
 *
 * What only the owner may do stays on the owner's connection: applying the schema (with the grants below),
 * and making and dropping day partitions (PostgreSQL lets only a partitioned table's owner attach or
 * detach a partition; retention's DETACH … CONCURRENTLY cannot run inside a SECURITY DEFINER function, and
 * a plain DETACH would lock ingest out of every day while it waits).
 *
 * Without a migration URL both are the one role of `url`: the weaker mode, as before.
 */
export interface Owner {
  /** Connections as the tables' owner (the runtime pool itself in the weaker mode). */
  readonly pool: pg.Pool;
  /** A store's DDL followed by the runtime role's grants (the DDL alone in the weaker mode, so its digest is as before). */
  withGrants(ddl: string): string;
  close(): Promise<void>;
}

/**
 * The tables whose privileges are not the rest's DML, and what the runtime role holds on each instead: the
 * audit logs (append and read), a chain's recorded head (moved as records are added; anchor columns never),
 * the upgrade's own records (read: only the owner's migrations write them), and the health probe, which
 * empties its table by TRUNCATE (database.ts startProbing: new, empty files, not freed pages reused).
 */
const SPECIFIC: ReadonlyArray<readonly [table: string, privileges: string]> = [
  ['activity_log', 'SELECT, INSERT'],
  ['activity_chains', 'SELECT, INSERT, UPDATE (head_seq, head_hash)'],
  ['operator_journal', 'SELECT, INSERT'],
  ['dip_schema_digests', 'SELECT'],
  ['dip_schema_generation', 'SELECT'],
  ['health_probe', 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE'],
];

const literal = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/**
 * Grants for `role` on every table of the current schema that exists when they are applied (each store
 * appends them to its DDL, so whichever store is applied last covers the others' tables too): the DML the
 * code uses on the rest (never TRUNCATE, never ownership), the privileges above, the sequences'
 * next values. Partitions are reached through their parent, whose privileges are the ones checked.
 * Refuses when the runtime role owns a table or the schema, or is a member of their owner's role: it
 * would then hold the owner's rights (drop a table, disable a trigger), the very thing being separated.
 */
export function runtimeGrants(role: string): string {
  const specific = SPECIFIC.map(([t, p]) => `(${literal(t)}, ${literal(p)})`).join(', ');
  return `
DO $grants$
DECLARE
  runtime text := ${literal(role)};
  t text;
  p text;
BEGIN
  SELECT string_agg(c.relname, ', ' ORDER BY c.relname) INTO t FROM pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND pg_has_role(runtime, c.relowner, 'MEMBER');
  IF t IS NOT NULL THEN
    RAISE EXCEPTION 'the runtime role % owns tables of schema % (or is a member of their owner): %', runtime, current_schema(), t
      USING HINT = 'make the migration role own them: REASSIGN OWNED BY <old owner> TO <migration role> (docs/cluster.md, "Roles")';
  END IF;
  IF pg_has_role(runtime, (SELECT nspowner FROM pg_namespace WHERE oid = current_schema()::regnamespace), 'MEMBER') THEN
    RAISE EXCEPTION 'the runtime role % owns schema % (or is a member of its owner), and may drop any table in it', runtime, current_schema()
      USING HINT = 'ALTER SCHEMA ... OWNER TO <migration role> (docs/cluster.md, "Roles")';
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), runtime);
  FOR t IN SELECT c.relname FROM pg_class c
      WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        AND c.relname NOT IN (SELECT n.t FROM (VALUES ${specific}) AS n(t, p)) LOOP
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO %I', t, runtime);
  END LOOP;
  FOR t, p IN SELECT n.t, n.p FROM (VALUES ${specific}) AS n(t, p) WHERE to_regclass(format('%I.%I', current_schema(), n.t)) IS NOT NULL LOOP
    EXECUTE format('REVOKE ALL ON %I FROM %I', t, runtime);
    EXECUTE format('GRANT %s ON %I TO %I', p, t, runtime);
  END LOOP;
  EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', current_schema(), runtime);
END $grants$;
`;
}

/**
 * The owner's side of a store's pool `runtime`: a small pool of its own on `migrationUrl`, after checking
 * that both connections name the same database and search_path (else the grants would go to tables the
 * DIP never reads).
 * A migration URL of the runtime's own role is the weaker mode.
 */
export async function openOwner(runtime: pg.Pool, migrationUrl: string | undefined, applicationName: string): Promise<Owner> {
  if (migrationUrl === undefined) return { pool: runtime, withGrants: (ddl) => ddl, close: async () => {} };
  const pool = openPool({ url: migrationUrl, max: 2, applicationName });
  try {
    // The search_path, not current_schema(): that skips a schema the role may not use yet, as the runtime
    // role may not before its first grants.
    const who = async (p: pg.Pool) => (await p.query<{ role: string; place: string }>("SELECT current_user AS role, format('database %s, search_path %s', current_database(), current_setting('search_path')) AS place")).rows[0]!;
    const [owner, run] = await Promise.all([who(pool), who(runtime)]);
    if (owner.place !== run.place) {
      throw new Error(`storage.postgres: the migration URL leads to ${owner.place}, the runtime URL to ${run.place}: give both the same database and search_path`);
    }
    const grants = owner.role === run.role ? null : runtimeGrants(run.role);
    return { pool, withGrants: (ddl) => (grants === null ? ddl : `${ddl};\n${grants}`), close: () => pool.end() };
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }
}

/** Applies a small store's DDL as the owner (with the runtime's grants), then lets the owner's pool go: it needs no DDL after. */
export async function migrateStore(runtime: pg.Pool, migrationUrl: string | undefined, applicationName: string, lock: number, ddl: string, indexes: readonly ConcurrentIndex[] = [], onIndexWait?: (said: string) => void): Promise<void> {
  const owner = await openOwner(runtime, migrationUrl, applicationName);
  try {
    await applySchema(owner.pool, lock, owner.withGrants(ddl));
    for (const index of indexes) await buildIndexConcurrently(owner.pool, index, onIndexWait);
  } finally {
    await owner.close();
  }
}
