import type { Archive } from '../ports/archive.js';
import type { Cancel, Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { RequeueJobs } from '../ports/requeue-jobs.js';

export interface RetentionSettings {
  /** How long a channel's messages stay in the archive (replay, audit) once no queue waits for them. */
  archiveRetentionMs: (channel: string) => number;
  attemptsRetentionMs: number;
  intervalMs: number;
  batchSize: number;
}

/**
 * Purges the archive past its retention, a small batch per write transaction with a yield between
 * batches, so ingest's group commits keep flowing while a large backlog is worked off; and, with the
 * delivery journal, the finished requeue jobs.
 */
export class Retention {
  private cancel: Cancel | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private readonly archive: Pick<Archive, 'purgeArchive' | 'purgeDays' | 'purgeAttempts' | 'archivedChannels'>,
    private readonly settings: RetentionSettings,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly requeueJobs: Pick<RequeueJobs, 'purgeFinished'>,
  ) {}

  start(): void {
    this.cancel = this.clock.every(this.settings.intervalMs, () => {
      void this.runOnce().catch((err: unknown) => this.logger.error({ err }, 'archive purge failed'));
    });
  }

  async stop(): Promise<void> {
    this.cancel?.();
    await this.running;
  }

  /** One pass over every channel; returns how many messages were purged. Overlapping calls share a pass. */
  runOnce(): Promise<number> {
    this.running ??= this.pass(this.clock.now()).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(now: number): Promise<number> {
    let total = 0;
    const channels = await this.archive.archivedChannels();
    // Days past every channel's retention go whole where the engine partitions by day; what is left
    // (channels kept for less than the longest) is purged row by row.
    if (channels.length > 0) total += await this.archive.purgeDays(now - Math.max(...channels.map((c) => this.settings.archiveRetentionMs(c))));
    for (const channel of channels) {
      const before = now - this.settings.archiveRetentionMs(channel);
      total += await this.drain((limit) => this.archive.purgeArchive(channel, before, limit));
    }
    // The delivery journal is the audit of every channel's messages: kept as long as the longest kept channel.
    const attemptsKeptMs = Math.max(this.settings.attemptsRetentionMs, ...channels.map((c) => this.settings.archiveRetentionMs(c)));
    await this.drain((limit) => this.archive.purgeAttempts(now - attemptsKeptMs, limit));
    // Finished requeue jobs go with the journal of the deliveries they made: past it, the archived messages
    // a failed job had left to requeue (all older than the job) are purged too. Who asked for each is kept
    // apart and longer (the activity log; an operator's resume, the operator journal). A running job
    // stays however old.
    const jobs = await this.drain((limit) => this.requeueJobs.purgeFinished(now - attemptsKeptMs, limit));
    if (jobs > 0) this.logger.info({ purged: jobs }, 'finished requeue jobs purged past retention');
    if (total > 0) this.logger.info({ purged: total }, 'archive purged past retention');
    return total;
  }

  /** Runs a purge batch after batch, yielding between them, until one comes back short; answers the total. */
  private async drain(purge: (limit: number) => Promise<number>): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await purge(this.settings.batchSize);
      total += n;
      if (n < this.settings.batchSize) return total;
      await new Promise((r) => setImmediate(r));
    }
  }
}
