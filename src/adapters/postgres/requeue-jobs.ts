import type { RequeueJob, RequeueJobs } from '../../ports/requeue-jobs.js';
import type { PgDatabase } from './database.js';

interface JobRow {
  id: string;
  recipient: string;
  channel: string;
  filter: RequeueJob['filter'];
  upToSeq: number;
  cursor: number;
  requeued: number;
  state: RequeueJob['state'];
  error: string | null;
  createdAt: number;
  updatedAt: number;
}

const COLUMNS = `id, recipient_dip_id AS recipient, channel, filter, up_to_seq AS "upToSeq", cursor, requeued, state, error,
                 created_at AS "createdAt", updated_at AS "updatedAt"`;

const toJob = ({ recipient, channel, ...r }: JobRow): RequeueJob => ({ ...r, queue: { recipientDipId: recipient, channel } });

export class PgRequeueJobs implements RequeueJobs {
  constructor(private readonly d: PgDatabase) {}

  async createJob(j: RequeueJob): Promise<void> {
    await this.d.tx((c) =>
      c.query(
        `INSERT INTO requeue_jobs (id, recipient_dip_id, channel, filter, up_to_seq, cursor, requeued, state, error, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [j.id, j.queue.recipientDipId, j.queue.channel, JSON.stringify(j.filter), j.upToSeq, j.cursor, j.requeued, j.state, j.error, j.createdAt, j.updatedAt],
      ),
    );
  }

  async job(id: string): Promise<RequeueJob | undefined> {
    const [row] = await this.d.query<JobRow>(`SELECT ${COLUMNS} FROM requeue_jobs WHERE id = $1`, [id]);
    return row && toJob(row);
  }

  async openJobs(): Promise<RequeueJob[]> {
    return (await this.d.query<JobRow>(`SELECT ${COLUMNS} FROM requeue_jobs WHERE state = 'running' ORDER BY created_at`)).map(toJob);
  }

  async finishJob(id: string, state: 'done' | 'failed', error: string | null, at: number): Promise<void> {
    await this.d.tx((c) => c.query("UPDATE requeue_jobs SET state = $1, error = $2, updated_at = $3 WHERE id = $4 AND state = 'running'", [state, error, at, id]));
  }

  async resumeJob(id: string, at: number): Promise<boolean> {
    const updated = await this.d.tx((c) => c.query("UPDATE requeue_jobs SET state = 'running', error = NULL, updated_at = $1 WHERE id = $2 AND state = 'failed'", [at, id]));
    return updated.rowCount === 1;
  }

  async jobs(q: { recipientDipId?: string; state?: RequeueJob['state']; limit: number }): Promise<RequeueJob[]> {
    // Only the conditions asked for, so that each filter is planned on its own index (recipient's or state's).
    const params: Array<string | number> = [];
    const where: string[] = [];
    if (q.recipientDipId !== undefined) where.push(`recipient_dip_id = $${params.push(q.recipientDipId)}`);
    if (q.state !== undefined) where.push(`state = $${params.push(q.state)}`);
    const rows = await this.d.query<JobRow>(
      `SELECT ${COLUMNS} FROM requeue_jobs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id LIMIT $${params.push(q.limit)}`,
      params,
    );
    return rows.map(toJob);
  }

  async purgeFinished(beforeMs: number, limit: number): Promise<number> {
    // created_at too (never after updated_at, so the same rows): a range on an index of created_at.
    const deleted = await this.d.tx((c) =>
      c.query("DELETE FROM requeue_jobs WHERE id IN (SELECT id FROM requeue_jobs WHERE state IN ('done', 'failed') AND created_at < $1 AND updated_at < $1 LIMIT $2)", [beforeMs, limit]),
    );
    return deleted.rowCount ?? 0;
  }
}
