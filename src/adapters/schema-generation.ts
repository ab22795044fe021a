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
  /** The newest generation this build writes (2: the MPAN lookup keyed by the at-rest index hash). */
  writes: 2,
  /** The oldest this build reads, and migrates from. */
  readsFrom: 1,
} as const;

/** 2: the MPAN lookup's rows are keyed by the at-rest sealer's keyed hash (MpanStore.indexStoredMpans). */
export const KEYED_MPANS = 2;

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
