import type { Logger } from './ports/logger.js';

/**
 * Services started in order and stopped in reverse, also when start-up fails half way: each start
 * registers how to undo it, so a failure stops exactly what was started and nothing leaks (ports,
 * timers, file handles).
 */
export class Lifecycle {
  private readonly stops: Array<{ name: string; stop: () => unknown }> = [];
  private stopping: Promise<void> | null = null;

  constructor(private readonly logger: Logger) {}

  /** Registers what undoes a step that has just succeeded. */
  started(name: string, stop: () => unknown): void {
    this.stops.push({ name, stop });
  }

  /** Stops everything started, newest first; a failing stop is logged and the rest still stop. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const { name, stop } of this.stops.reverse()) {
        try {
          await stop();
        } catch (err) {
          this.logger.error({ err, service: name }, 'could not stop cleanly');
        }
      }
    })();
    return this.stopping;
  }
}
