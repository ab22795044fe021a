import type { RequeueJob, RequeueJobs } from '../../ports/requeue-jobs.js';
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
      // NULL parameters match every recipient / state.
      list: db.prepare<[string | null, string | null, string | null, string | null, number], JobRow>(
        `SELECT ${COLUMNS} FROM requeue_jobs WHERE (? IS NULL OR recipient_dip_id = ?) AND (? IS NULL OR state = ?) ORDER BY created_at DESC, id LIMIT ?`,
      ),
    };
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
    const recipient = q.recipientDipId ?? null;
    const state = q.state ?? null;
    return this.s.list.all(recipient, recipient, state, state, q.limit).map(toJob);
  }
}
