import { statSync } from 'node:fs';
import type { Cancel, Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';

/** What a KeyFileWatcher watches, and how it reads what it finds. */
export interface KeyFiles<T> {
  /** The files whose replacement means new keys: one stat each per poll while nothing changed. */
  files: readonly string[];
  /**
   * The keys the files hold now, or null to keep the ones in force: the same keys, or ones refused (the
   * reader said why in the log). Throws when the files are unreadable or the keys unusable.
   */
  read(inForce: T): T | null;
  /** Names the keys in the line logged when `read` throws ("new <what> is unusable"). */
  what: string;
}

/**
 * Key material a running DIP holds in memory, replaced without a restart when an operator command or a
 * renewal replaces its files (the signing key, the pattern 2 encryption key, the TLS server certificate).
 * It polls the files on the clock it is given; only when one was replaced does it read them, and only
 * when they hold other, usable keys does it switch and tell its listeners (the other processes of the DIP
 * are told to switch too). Unusable files keep the keys in force and are logged once, not every poll.
 */
export class KeyFileWatcher<T> {
  private held: T;
  private changeKey: string | undefined;
  private cancel: Cancel | undefined;
  private readonly listeners: Array<(keys: T) => void> = [];

  constructor(
    private readonly source: KeyFiles<T>,
    initial: T,
    private readonly scheduler: Pick<Clock, 'every'>,
    private readonly logger: Logger,
  ) {
    this.held = initial;
    this.changeKey = this.fileKey();
  }

  /** The keys in force (never hold on to them: they change on rotation). */
  inForce(): T {
    return this.held;
  }

  start(pollMs: number): void {
    this.cancel = this.scheduler.every(pollMs, () => this.reload());
  }

  stop(): void {
    this.cancel?.();
    this.cancel = undefined;
  }

  /** Called after the keys in force were replaced. */
  onChange(listener: (keys: T) => void): void {
    this.listeners.push(listener);
  }

  /** Switches to the keys on disk if a file changed since the last look and they are usable. */
  reload(): void {
    const key = this.fileKey();
    if (key === undefined || key === this.changeKey) return;
    // Remembered even when the keys are refused below: the same broken files are not logged every poll.
    this.changeKey = key;
    let next: T | null;
    try {
      next = this.source.read(this.held);
    } catch (err) {
      this.logger.error({ err, files: this.source.files }, `new ${this.source.what} is unusable; keeping the one in force`);
      return;
    }
    if (next === null) return;
    this.held = next;
    for (const l of this.listeners) l(next);
  }

  /** Changes with every replacement: rename gives a new inode even within one mtime tick. Undefined while a file is missing. */
  private fileKey(): string | undefined {
    const keys: string[] = [];
    for (const file of this.source.files) {
      try {
        const s = statSync(file);
        keys.push(`${s.ino}:${s.mtimeMs}:${s.size}`);
      } catch {
        return undefined;
      }
    }
    return keys.join('|');
  }
}
