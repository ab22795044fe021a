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

  /** Compiles every channel's validator now (tens of ms each), so that no first message waits for it. */
  warm(): void {
    for (const c of this.catalogue.channels()) this.catalogue.validate(c.interfaceId, {});
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private reload(): void {
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
    }
  }
}
