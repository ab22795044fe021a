/**
 * What every administrative act leaves behind (spec 8.3): who (an operator's name, the central register,
 * a participant acting through self-service), what, on what, when, and the state before and after.
 * Append-only: nothing here updates or deletes an entry.
 */
export interface JournalEntry {
  id: number;
  /** Epoch ms. */
  at: number;
  /** `operator:<name>`, `register:<source>`, `participant:<DIP ID>`, `cli:<os user>` (a `dip` command outside the operator API) or `bootstrap`. */
  actor: string;
  /** e.g. `channel.pause`, `participant.rescind`, `POST /admin/dead-letters/requeue`. */
  action: string;
  /** What it acted on (a channel ID, a DIP ID, an operator's name); empty when nothing in particular. */
  target: string;
  before: unknown;
  after: unknown;
  /** The HTTP status the act was answered with (null for acts outside a request). */
  status: number | null;
}

export interface JournalQuery {
  actor?: string;
  action?: string;
  target?: string;
  /** Entries with an id below this (paging backwards). */
  beforeId?: number;
  /** Entries at or after this (epoch ms). */
  fromMs?: number;
  /** Entries before this (epoch ms). */
  toMs?: number;
  limit: number;
}

export interface OperatorJournal {
  append(entry: Omit<JournalEntry, 'id'>): Promise<number>;
  /** Newest first. */
  entries(query: JournalQuery): Promise<JournalEntry[]>;
}
