import type { MessageLog } from '../ports/store.js';
import type { Logger } from './logger.js';

export interface RetentionSettings {
  /** How long a channel's messages stay in the archive (replay, audit) once no queue waits for them. */
  archiveRetentionMs: (channel: string) => number;
  attemptsRetentionMs: number;
  intervalMs: number;
  batchSize: number;
}

/**
 * Purges the archive past its retention, a small batch per write transaction with a yield between
 * batches, so ingest's group commits keep flowing while a large backlog is worked off.
 */
export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | null = null;

  constructor(
    private readonly log: Pick<MessageLog, 'purgeArchive' | 'purgeAttempts' | 'archivedChannels'>,
    private readonly settings: RetentionSettings,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      void this.runOnce().catch((err: unknown) => this.logger.error({ err }, 'archive purge failed'));
    }, this.settings.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** One pass over every channel; returns how many messages were purged. Overlapping calls share a pass. */
  runOnce(now = Date.now()): Promise<number> {
    this.running ??= this.pass(now).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(now: number): Promise<number> {
    let total = 0;
    for (const channel of await this.log.archivedChannels()) {
      const before = now - this.settings.archiveRetentionMs(channel);
      for (;;) {
        const n = await this.log.purgeArchive(channel, before, this.settings.batchSize);
        total += n;
        if (n < this.settings.batchSize) break;
        await new Promise((r) => setImmediate(r));
      }
    }
    while ((await this.log.purgeAttempts(now - this.settings.attemptsRetentionMs, this.settings.batchSize)) === this.settings.batchSize) {
      await new Promise((r) => setImmediate(r));
    }
    if (total > 0) this.logger.info({ purged: total }, 'archive purged past retention');
    return total;
  }
}
