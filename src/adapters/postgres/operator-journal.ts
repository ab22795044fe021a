import type { JournalEntry, JournalQuery, OperatorJournal } from '../../ports/operator-journal.js';
import type pg from 'pg';
import type { PgDatabase } from './database.js';

const INSERT = 'INSERT INTO operator_journal (at, actor, action, target, before, after, status) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id';
const values = (e: Omit<JournalEntry, 'id'>): unknown[] => [e.at, e.actor, e.action, e.target, JSON.stringify(e.before ?? null), JSON.stringify(e.after ?? null), e.status];

/** Appends an entry within a transaction of the caller's (PgRegistry.setApiKeyHash): it commits with the change it records. */
export async function appendJournalIn(c: pg.PoolClient, e: Omit<JournalEntry, 'id'>): Promise<void> {
  await c.query(INSERT, values(e));
}

/** The operator journal on PostgreSQL: one insert per act. */
export class PgOperatorJournal implements OperatorJournal {
  constructor(private readonly d: PgDatabase) {}

  async append(e: Omit<JournalEntry, 'id'>): Promise<number> {
    const rows = await this.d.query<{ id: string }>(INSERT, values(e));
    return Number(rows[0]?.id);
  }

  async entries(q: JournalQuery): Promise<JournalEntry[]> {
    const where: string[] = [];
    const values: Array<string | number> = [];
    const add = (column: string, op: string, value: string | number | undefined) => {
      if (value === undefined) return;
      values.push(value);
      where.push(`${column} ${op} $${values.length}`);
    };
    add('actor', '=', q.actor);
    add('action', '=', q.action);
    add('target', '=', q.target);
    add('id', '<', q.beforeId);
    add('at', '>=', q.fromMs);
    add('at', '<', q.toMs);
    values.push(q.limit);
    const rows = await this.d.query<Omit<JournalEntry, 'id'> & { id: string }>(
      `SELECT id, at, actor, action, target, before, after, status FROM operator_journal ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${values.length}`,
      values,
    );
    return rows.map((r) => ({ ...r, id: Number(r.id) }));
  }
}
