import type { QueueRef } from './queue-ref.js';

/** What a replay or requeue selects from a recipient's archive (the published MessageRequest). */
export interface ReplayFilter {
  fromMs: number;
  toMs: number;
  eventCode: string | null;
  mpan: string | null;
  transactionIds: string[] | null;
}

/**
 * A large requeue, worked off in the background page by page. Each page's copies and the job's progress
 * are written in one step (MessageLog.appendReplayCopies), so a restart resumes where it stopped and
 * never requeues a page twice.
 */
export interface RequeueJob {
  id: string;
  queue: QueueRef;
  filter: ReplayFilter;
  /** Only queue positions up to here are scanned: what the queue held when the job was made. */
  upToSeq: number;
  /** The last queue position scanned so far. */
  cursor: number;
  requeued: number;
  state: 'running' | 'done' | 'failed';
  error: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface RequeueJobs {
  createJob(job: RequeueJob): Promise<void>;
  job(id: string): Promise<RequeueJob | undefined>;
  /** Jobs still running (to resume after a restart). */
  openJobs(): Promise<RequeueJob[]>;
  finishJob(id: string, state: 'done' | 'failed', error: string | null, at: number): Promise<void>;
  /**
   * Sets a failed job running again from its cursor (its error cleared), and answers true; false when
   * the job is not failed (running, done or unknown), so two resumes of one job start it once. The
   * cursor and count are kept: a page's copies and the cursor past it were written together, so the
   * job goes on after the last page it wrote and requeues none twice.
   */
  resumeJob(id: string, at: number): Promise<boolean>;
  /** A recipient's jobs, newest first, or every recipient's when `recipientDipId` is absent. */
  jobs(query: { recipientDipId?: string; state?: RequeueJob['state']; limit: number }): Promise<RequeueJob[]>;
  /**
   * Deletes up to `limit` finished jobs (done or failed) made and last changed before `beforeMs`, and
   * answers how many (the retention sweep, src/pipeline/retention.ts). A running job is never deleted,
   * however old: it is still working, or waiting for its store or its recipient.
   */
  purgeFinished(beforeMs: number, limit: number): Promise<number>;
}

/** Progress of a requeue job, recorded with the page of copies it made. */
export interface JobProgress {
  jobId: string;
  /**
   * The cursor the page started after. The progress (and the page's copies with it) is refused unless
   * the job still stands there: when several nodes resume the same job, each page is requeued once.
   */
  from: number;
  cursor: number;
  added: number;
  at: number;
}
