import type { Appointment, AppointmentChange } from '../domain/mpan-lookup.js';
import { LruMap } from '../domain/lru-map.js';
import type { MpanStore } from '../ports/mpan.js';

/**
 * The MPAN lookup as ingest uses it: a bounded in-memory cache (most recently used MPANs) over the
 * durable store, so routing a message costs a map lookup, not a query. Changes go to the store first,
 * then drop the MPANs they touched from the cache.
 */
export class MpanDirectory {
  private readonly cache: LruMap<string, readonly Appointment[]>;

  constructor(
    private readonly store: MpanStore,
    maxEntries = 500_000,
  ) {
    this.cache = new LruMap(maxEntries);
  }

  async history(mpan: string): Promise<readonly Appointment[]> {
    const hit = this.cache.get(mpan);
    if (hit) return hit;
    const loaded = await this.store.mpanHistory(mpan);
    this.cache.set(mpan, loaded);
    return loaded;
  }

  async apply(changes: AppointmentChange[]): Promise<void> {
    if (changes.length === 0) return;
    await this.store.applyAppointments(changes);
    for (const c of changes) this.cache.delete(c.mpan);
  }

  /** After changes made elsewhere (the CLI's bulk load, another process). */
  invalidate(): void {
    this.cache.clear();
  }
}
