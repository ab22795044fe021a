import { StoreError } from '../ports/errors.js';

/**
 * The stored data's generation: a number both stores keep (PostgreSQL's dip_schema_generation, SQLite's
 * schema_generation), raised only by a migration that leaves data an older build cannot read. A build
 * knows the newest generation it writes and the oldest it can still read (and bring up); it refuses to
 * start on a store of any other, before it touches the schema, rather than serve wrong answers from data
 * it misreads (an older node looking MPANs up in clear against keyed hashes finds no appointment at all).
 *
 * A store without the record is generation 1 (everything before the gate, hashed MPANs or not: a build
 * from before the gate writes none, and this one raises it when it first writes keyed hashes).
 *
 * Additive changes (a column, an index) move no generation: the older builds read past them.
 */
export const GENERATION = {
  /** The newest generation this build writes (3: portal accounts keyed by realm and name). */
  writes: 3,
  /** The oldest this build reads, and migrates from. */
  readsFrom: 1,
} as const;

/** 2: the MPAN lookup's rows are keyed by the at-rest sealer's keyed hash (MpanStore.indexStoredMpans). */
export const KEYED_MPANS = 2;

/**
 * 3: portal accounts and pending enrolments keyed by realm and name (2026-12-05). A build of generation 2
 * creates an account with ON CONFLICT (username), which names no key any more, and reads a name that is
 * both an operator's and a user's as one account. Raised with the move on both engines (PostgreSQL: in the
 * schema's transaction; SQLite: on every open, read first), on a new store too. It implies generation 2:
 * generations are one line, and a build that reads 3 reads keyed MPANs.
 */
export const PORTAL_REALMS = 3;

/**
 * Why a node already running must stop, or null: the generation recorded is newer than this build writes
 * (a newer build migrated the store since this node started). Asked where a write begins (SQLite: each
 * group's transaction; PostgreSQL: each transaction's BEGIN, and the idle node's writable check), in the
 * same round trip, so no write lands beside a newer generation's data. A running node never meets an older
 * one: generations are never lowered.
 */
export function newerGenerationStop(stored: number | undefined, where: string): StoreError | null {
  if ((stored ?? 1) <= GENERATION.writes) return null;
  return new StoreError('fatal', `a newer OpenDIP migrated the store while this node ran: ${unreadableGeneration(stored, where)} This node stops taking requests and writes nothing more.`, SCHEMA_GENERATION);
}

/** The StoreError code of a store of a generation this build does not read. */
export const SCHEMA_GENERATION = 'SCHEMA_GENERATION';

/** Why this build may not open a store of `stored` (undefined: no record, generation 1), or null if it may. */
export function unreadableGeneration(stored: number | undefined, where: string): string | null {
  const g = stored ?? 1;
  if (g > GENERATION.writes) {
    return (
      `${where} holds data of schema generation ${g}, written by a newer OpenDIP; this build reads generations ${GENERATION.readsFrom} to ${GENERATION.writes} ` +
      'and would misread it. Start the newer build on this node (every node of a cluster runs the same one), or restore the backup taken before the upgrade (docs/cluster.md, "Upgrading").'
    );
  }
  if (g < GENERATION.readsFrom) {
    return `${where} holds data of schema generation ${g}, older than this build reads (from ${GENERATION.readsFrom}). Open it first with a release that reads generation ${g} (docs/cluster.md, "Upgrading").`;
  }
  return null;
}
