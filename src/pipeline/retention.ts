import type { Archive } from '../ports/archive.js';
import type { Cancel, Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';

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
  private cancel: Cancel | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private readonly archive: Pick<Archive, 'purgeArchive' | 'purgeDays' | 'purgeAttempts' | 'archivedChannels'>,
    private readonly settings: RetentionSettings,
    private readonly clock: Clock,
    private readonly logger: Logger,
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
      for (;;) {
        const n = await this.archive.purgeArchive(channel, before, this.settings.batchSize);
        total += n;
        if (n < this.settings.batchSize) break;
        await new Promise((r) => setImmediate(r));
      }
    }
    // The delivery journal is the audit of every channel's messages: kept as long as the longest kept channel.
    const attemptsKeptMs = Math.max(this.settings.attemptsRetentionMs, ...channels.map((c) => this.settings.archiveRetentionMs(c)));
    while ((await this.archive.purgeAttempts(now - attemptsKeptMs, this.settings.batchSize)) === this.settings.batchSize) {
      await new Promise((r) => setImmediate(r));
    }
    if (total > 0) this.logger.info({ purged: total }, 'archive purged past retention');
    return total;
  }
}
