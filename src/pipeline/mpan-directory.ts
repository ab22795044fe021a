import type { Appointment, AppointmentChange } from '../domain/mpan-lookup.js';
import type { MpanStore } from '../ports/mpan.js';

/**
 * The MPAN lookup as ingest uses it: a bounded in-memory cache (most recently used MPANs) over the
 * durable store, so routing a message costs a map lookup, not a query. Changes go to the store first,
 * then drop the MPANs they touched from the cache.
 */
export class MpanDirectory {
  private readonly cache = new Map<string, readonly Appointment[]>();

  constructor(
    private readonly store: MpanStore,
    private readonly maxEntries = 500_000,
  ) {}

  async history(mpan: string): Promise<readonly Appointment[]> {
    const hit = this.cache.get(mpan);
    if (hit) {
      this.cache.delete(mpan);
      this.cache.set(mpan, hit);
      return hit;
    }
    const loaded = await this.store.mpanHistory(mpan);
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
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
