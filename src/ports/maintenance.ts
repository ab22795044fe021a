import type { MaintenanceNotice } from '../domain/maintenance.js';

/**
 * Maintenance notices as kept: every publication, amendment and withdrawal is a new version of the
 * notice, older versions stay (what participants were told, and when).
 */
export interface MaintenanceNotices {
  /**
   * Stores `notice` as its version `notice.version`; refuses with RecordConflictError (ports/registry.ts)
   * when the latest stored version is not `notice.version - 1` (for version 1: when the ID is taken).
   */
  put(notice: MaintenanceNotice): Promise<void>;
  /** The latest version of every notice, in order of publication. */
  list(): Promise<MaintenanceNotice[]>;
  /** Every version of one notice, oldest first (empty when unknown). */
  history(id: string): Promise<MaintenanceNotice[]>;
}
