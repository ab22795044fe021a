/** What a guard refuses: a row changed, a row deleted, or a table emptied whole (TRUNCATE fires no row trigger). */
export type GuardedOperation = 'UPDATE' | 'DELETE' | 'TRUNCATE';

/**
 * DDL that makes an audit log's tables append-only (spec 5.8.1: audit logs "cannot be accidentally or
 * maliciously purged"): a trigger function `fn` refusing with "the <log> is append-only: …", and one
 * trigger per table and operation, named `<table>_no_<operation>`. Idempotent, so applySchema can apply it
 * at every start: a database made before gets the guards then. The tables' owner could still drop a guard;
 * these stop a mistake or a purge through any connection, and a runtime role apart from the owner
 * (roles.ts) can neither drop them nor delete (it holds INSERT and SELECT on these tables).
 */
export function appendOnlyGuards(fn: string, log: string, guards: ReadonlyArray<{ table: string; refuse: readonly GuardedOperation[] }>): string {
  const triggers = guards.flatMap(({ table, refuse }) =>
    refuse.map((op) => {
      const name = `${table}_no_${op.toLowerCase()}`;
      return `DROP TRIGGER IF EXISTS ${name} ON ${table};
CREATE TRIGGER ${name} BEFORE ${op} ON ${table} FOR EACH ${op === 'TRUNCATE' ? 'STATEMENT' : 'ROW'} EXECUTE FUNCTION ${fn}();`;
    }),
  );
  return `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  IF TG_OP = 'UPDATE' THEN RAISE EXCEPTION 'the ${log} is append-only: its records cannot be changed' USING ERRCODE = 'insufficient_privilege'; END IF;
  RAISE EXCEPTION 'the ${log} is append-only: its records cannot be deleted (% refused, spec 5.8.1)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
${triggers.join('\n')}
`;
}
