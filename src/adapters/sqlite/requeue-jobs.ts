import type { RequeueJob, RequeueJobs } from '../../ports/requeue-jobs.js';
import type { Statement } from 'better-sqlite3';
import type { SqliteDatabase } from './database.js';

interface JobRow {
  id: string;
  recipient: string;
  channel: string;
  filter: string;
  upToSeq: number;
  cursor: number;
  requeued: number;
  state: RequeueJob['state'];
  error: string | null;
  createdAt: number;
  updatedAt: number;
}

const COLUMNS = `id, recipient_dip_id AS recipient, channel, filter, up_to_seq AS upToSeq, cursor, requeued, state, error,
                 created_at AS createdAt, updated_at AS updatedAt`;

const toJob = (r: JobRow): RequeueJob => ({
  id: r.id,
  queue: { recipientDipId: r.recipient, channel: r.channel },
  filter: JSON.parse(r.filter) as RequeueJob['filter'],
  upToSeq: r.upToSeq,
  cursor: r.cursor,
  requeued: r.requeued,
  state: r.state,
  error: r.error,
  createdAt: r.createdAt,
  updatedAt: r.updatedAt,
});

export class SqliteRequeueJobs implements RequeueJobs {
  private readonly s;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      insert: db.prepare(
        `INSERT INTO requeue_jobs (id, recipient_dip_id, channel, filter, up_to_seq, cursor, requeued, state, error, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      byId: db.prepare<[string], JobRow>(`SELECT ${COLUMNS} FROM requeue_jobs WHERE id = ?`),
      open: db.prepare<[], JobRow>(`SELECT ${COLUMNS} FROM requeue_jobs WHERE state = 'running' ORDER BY created_at`),
      finish: db.prepare("UPDATE requeue_jobs SET state = ?, error = ?, updated_at = ? WHERE id = ? AND state = 'running'"),
      resume: db.prepare("UPDATE requeue_jobs SET state = 'running', error = NULL, updated_at = ? WHERE id = ? AND state = 'failed'"),
      // created_at too (never after updated_at, so the same rows): a range on an index of created_at.
      purge: db.prepare(
        "DELETE FROM requeue_jobs WHERE id IN (SELECT id FROM requeue_jobs WHERE state IN ('done', 'failed') AND created_at < ? AND updated_at < ? LIMIT ?)",
      ),
    };
  }

  /**
   * One statement per filter, each on its own index (recipient's or state's, then created_at): SQLite
   * plans a statement once, so `? IS NULL OR recipient_dip_id = ?` would scan the table for every filter.
   */
  private readonly lists = new Map<string, Statement<Array<string | number>, JobRow>>();

  private list(recipient: boolean, state: boolean): Statement<Array<string | number>, JobRow> {
    const key = `${recipient}/${state}`;
    let statement = this.lists.get(key);
    if (!statement) {
      const where = [...(recipient ? ['recipient_dip_id = ?'] : []), ...(state ? ['state = ?'] : [])];
      statement = this.d.db.prepare<Array<string | number>, JobRow>(
        `SELECT ${COLUMNS} FROM requeue_jobs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id LIMIT ?`,
      );
      this.lists.set(key, statement);
    }
    return statement;
  }

  async createJob(j: RequeueJob): Promise<void> {
    await this.d.write(() =>
      this.s.insert.run(j.id, j.queue.recipientDipId, j.queue.channel, JSON.stringify(j.filter), j.upToSeq, j.cursor, j.requeued, j.state, j.error, j.createdAt, j.updatedAt),
    );
  }

  async job(id: string): Promise<RequeueJob | undefined> {
    const row = this.s.byId.get(id);
    return row && toJob(row);
  }

  async openJobs(): Promise<RequeueJob[]> {
    return this.s.open.all().map(toJob);
  }

  async finishJob(id: string, state: 'done' | 'failed', error: string | null, at: number): Promise<void> {
    await this.d.write(() => this.s.finish.run(state, error, at, id));
  }

  async resumeJob(id: string, at: number): Promise<boolean> {
    return this.d.write(() => this.s.resume.run(at, id).changes === 1);
  }

  async jobs(q: { recipientDipId?: string; state?: RequeueJob['state']; limit: number }): Promise<RequeueJob[]> {
    const params = [...(q.recipientDipId !== undefined ? [q.recipientDipId] : []), ...(q.state !== undefined ? [q.state] : []), q.limit];
    return this.list(q.recipientDipId !== undefined, q.state !== undefined).all(...params).map(toJob);
  }

  async purgeFinished(beforeMs: number, limit: number): Promise<number> {
    return this.d.write(() => this.s.purge.run(beforeMs, beforeMs, limit).changes);
  }
}
