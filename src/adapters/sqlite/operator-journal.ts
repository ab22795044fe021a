import type { JournalEntry, JournalQuery, OperatorJournal } from '../../ports/operator-journal.js';
import type { SqliteDatabase } from './database.js';

interface Row {
  id: number;
  at: number;
  actor: string;
  action: string;
  target: string;
  before: string | null;
  after: string | null;
  status: number | null;
}

const parse = (text: string | null): unknown => (text === null ? null : (JSON.parse(text) as unknown));

/** The insert of a journal entry, for a write that journals within its own transaction (SqliteRegistry.setApiKeyHash). */
export const JOURNAL_INSERT = 'INSERT INTO operator_journal (at, actor, action, target, before, after, status) VALUES (?, ?, ?, ?, ?, ?, ?)';

/** An entry's values, in JOURNAL_INSERT's order. */
export function journalValues(e: Omit<JournalEntry, 'id'>): [number, string, string, string, string, string, number | null] {
  return [e.at, e.actor, e.action, e.target, JSON.stringify(e.before ?? null), JSON.stringify(e.after ?? null), e.status];
}

/** The operator journal in the SQLite file: one insert per act, written through the group commit. */
export class SqliteOperatorJournal implements OperatorJournal {
  private readonly insert;

  constructor(private readonly d: SqliteDatabase) {
    this.insert = d.db.prepare(JOURNAL_INSERT);
  }

  append(e: Omit<JournalEntry, 'id'>): Promise<number> {
    return this.d.write(() => Number(this.insert.run(...journalValues(e)).lastInsertRowid));
  }

  async entries(q: JournalQuery): Promise<JournalEntry[]> {
    const where: string[] = [];
    const values: Array<string | number> = [];
    const add = (clause: string, value: string | number | undefined) => {
      if (value === undefined) return;
      where.push(clause);
      values.push(value);
    };
    add('actor = ?', q.actor);
    add('action = ?', q.action);
    add('target = ?', q.target);
    add('id < ?', q.beforeId);
    add('at >= ?', q.fromMs);
    add('at < ?', q.toMs);
    const sql = `SELECT id, at, actor, action, target, before, after, status FROM operator_journal ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return this.d.db
      .prepare<Array<string | number>, Row>(sql)
      .all(...values, q.limit)
      .map((r) => ({ ...r, before: parse(r.before), after: parse(r.after) }));
  }
}
