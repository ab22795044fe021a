import type { SavedReport } from '../domain/saved-report.js';

export type { SavedReport };

/** Why a report was not saved: the owner has the most it may keep, or a report of that name already. */
export type SaveRefusal = 'full' | 'name-taken';

/**
 * Portal users' saved reports (src/domain/saved-report.ts), in the shared store: every node of a cluster
 * reads the same, and the claim of a due e-mail is one conditional write there, so exactly one node sends it.
 */
export interface SavedReports {
  /** Saves `r` unless its owner keeps `max` already or one of the same name (one transaction): null when saved. */
  create(r: SavedReport, max: number): Promise<SaveRefusal | null>;
  /** The owner's reports, oldest first. */
  list(owner: string): Promise<SavedReport[]>;
  /** The owner's report of that ID; undefined when it has none (another's is none of its). */
  get(owner: string, id: string): Promise<SavedReport | undefined>;
  /** Deletes the owner's report; false when it has none by that ID. */
  remove(owner: string, id: string): Promise<boolean>;
  /** Reports whose e-mail is due at `now` (nextDueAt at or before it), the longest due first. */
  due(now: number, limit: number): Promise<SavedReport[]>;
  /**
   * Moves a due report's next e-mail from `dueAt` on to `nextDueAt`, only if it is still due at `dueAt`
   * (one conditional write): true for the one caller that moved it, which sends it; every other node's
   * claim of the same e-mail finds it moved and sends nothing.
   */
  claimDue(id: string, dueAt: number, nextDueAt: number): Promise<boolean>;
}
