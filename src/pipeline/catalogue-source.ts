import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Catalogue } from '../catalogue/catalogue.js';
import type { Logger } from '../ports/logger.js';

/** Where `dip catalogue import` puts a newer API version for a running DIP to pick up. */
export const importedCatalogueFile = (dataDir: string): string => join(dataDir, 'catalogue.json');

/**
 * The catalogue in force: the one imported into the data directory if any, else the bundled 2.1.0.
 * A newer import is picked up while running (no restart); a broken file is logged and ignored.
 */
export class CatalogueSource {
  private catalogue: Catalogue;
  private mtimeMs = 0;
  private timer: NodeJS.Timeout | undefined;
  /** While the validators compile: how far along (the node is not ready meanwhile). */
  private warming: { done: number; total: number } | null = null;
  private stopped = false;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly dataDir: string,
    private readonly logger: Logger,
  ) {
    this.catalogue = Catalogue.load();
    this.reload();
  }

  current(): Catalogue {
    return this.catalogue;
  }

  start(pollMs: number): void {
    this.timer = setInterval(() => this.reload(), pollMs);
    this.timer.unref();
  }

  /**
   * Compiles every channel's validator (tens of ms each), so that no first message waits for it: one
   * channel at a time, the event loop free in between (`pause`), so the listeners answer meanwhile and
   * /ready says the catalogue is still loading until the last one is compiled.
   */
  async warm(pause: () => Promise<void> = () => new Promise((resolve) => setImmediate(resolve))): Promise<void> {
    const catalogue = this.catalogue;
    const channels = catalogue.channels();
    const progress = { done: 0, total: channels.length };
    this.warming = progress;
    try {
      for (const c of channels) {
        if (this.stopped) return;
        catalogue.validate(c.interfaceId, {});
        progress.done += 1;
        await pause();
      }
    } finally {
      if (this.warming === progress) this.warming = null;
    }
  }

  /** Why this node should not take messages yet (the catalogue still loading), or null when it may. */
  notReady(): string | null {
    const w = this.warming;
    return w ? `the interface catalogue is loading: ${w.done} of ${w.total} channels' validators compiled` : null;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Called after a newer import was loaded (delivery processes are told to load it too). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Loads the imported file if it changed since the last look (one stat otherwise). */
  reload(): void {
    const file = importedCatalogueFile(this.dataDir);
    let mtimeMs: number;
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- a fixed name in the operator's data folder
      mtimeMs = statSync(file).mtimeMs;
    } catch {
      return;
    }
    if (mtimeMs === this.mtimeMs) return;
    this.mtimeMs = mtimeMs;
    try {
      this.catalogue = Catalogue.fromFile(file);
      this.logger.info({ file, version: this.catalogue.version }, 'interface catalogue loaded');
    } catch (err) {
      this.logger.error({ file, err }, 'imported catalogue is unreadable; keeping the one in force');
      return;
    }
    for (const l of this.listeners) l();
  }
}
