import type { Logger } from './ports/logger.js';

/**
 * Services started in order and stopped in reverse, also when start-up fails half way: each start
 * registers how to undo it, so a failure stops exactly what was started and nothing leaks (ports,
 * timers, file handles).
 */
export class Lifecycle {
  private readonly stops: Array<{ name: string; stop: () => unknown }> = [];
  private readonly beginnings: Array<{ name: string; begin: () => void }> = [];
  private stopping: Promise<void> | null = null;

  constructor(private readonly logger: Logger) {}

  /** Registers what undoes a step that has just succeeded. */
  started(name: string, stop: () => unknown): void {
    this.stops.push({ name, stop });
  }

  /**
   * Registers what must happen at once when the stop begins, before anything stops: the one stopping
   * signal every listener sees together (each refuses new requests from then on and its drain's time
   * runs), so they drain side by side while the rest stops, and a stop takes one drain, not one per listener.
   */
  onStopping(name: string, begin: () => void): void {
    this.beginnings.push({ name, begin });
  }

  /**
   * Tells everything registered with onStopping, then stops everything started, newest first; a failing
   * step is logged and the rest still stop. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const { name, begin } of this.beginnings) {
        try {
          begin();
        } catch (err) {
          this.logger.error({ err, service: name }, 'could not begin to stop');
        }
      }
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
