import type { MaintenanceNotice } from '../domain/maintenance.js';
import type { MaintenanceEvent } from './alarms.js';

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

/** One address an act's announcement goes to, with what it is sent, kept until it is sent (MaintenanceOutbox). */
export type MaintenanceSend = {
  /** `<notice>@<version>#<n>`: unique per act and address. */
  id: string;
  noticeId: string;
  /** When it may be claimed: the act's time, then the end of a claim's lease (a node that died sending it). */
  dueAt: number;
  /** Named in the log line of a failed send (the subscription, or the participant whose administrators are told). */
  who: Record<string, string>;
} & MaintenanceMessage;

/** What one address of an announcement is sent: an e-mail, or a webhook call. */
export type MaintenanceMessage = { kind: 'email'; to: string; subject: string; text: string } | { kind: 'webhook'; url: string; event: MaintenanceEvent };

/**
 * The maintenance announcements not yet sent, in the store every node shares: recorded with the act, so
 * that a node that stops or dies part-way through leaves the rest to any node (src/pipeline/maintenance.ts).
 * Each send is claimed by one conditional write before it is sent (as a saved report's e-mail:
 * SavedReports.claimDue), so in a cluster one node sends it.
 */
export interface MaintenanceOutbox {
  /** Records an act's sends (idempotent by ID: one recorded already is kept as it is). */
  add(sends: readonly MaintenanceSend[]): Promise<void>;
  /** Sends due at `now`, oldest first, at most `limit`. */
  due(now: number, limit: number): Promise<MaintenanceSend[]>;
  /** Claims `id` if it is still due at `dueAt` (nobody claimed it since), moving it to `leaseUntil`; true when this caller has it. */
  claim(id: string, dueAt: number, leaseUntil: number): Promise<boolean>;
  /** Removes a send once it was made (or failed for good: logged). */
  done(id: string): Promise<void>;
}
