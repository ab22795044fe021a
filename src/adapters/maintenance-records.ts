import type { MaintenanceNotice } from '../domain/maintenance.js';
import type { MaintenanceNotices } from '../ports/maintenance.js';
import type { RegistryStore, StoredRecord } from '../ports/registry.js';

const KIND = 'maintenance';
const notice = (r: StoredRecord): MaintenanceNotice => ({ ...(r.doc as MaintenanceNotice), id: r.key, version: r.version });

/**
 * Maintenance notices in the registry's versioned records (the same tables on SQLite and PostgreSQL):
 * each amendment is a version, and the registry's change feed tells every node of a cluster at once,
 * as for channel settings. One adapter serves both engines because the records already do.
 */
export class RecordMaintenanceNotices implements MaintenanceNotices {
  constructor(private readonly store: Pick<RegistryStore, 'putRecord' | 'records' | 'recordHistory'>) {}

  async put(n: MaintenanceNotice): Promise<void> {
    await this.store.putRecord({ kind: KIND, key: n.id, doc: n, at: n.changedAt, by: n.changedBy }, n.version - 1);
  }

  async list(): Promise<MaintenanceNotice[]> {
    return (await this.store.records(KIND)).map(notice).sort((a, b) => a.publishedAt - b.publishedAt || a.id.localeCompare(b.id));
  }

  async history(id: string): Promise<MaintenanceNotice[]> {
    return (await this.store.recordHistory(KIND, id)).map(notice);
  }
}
