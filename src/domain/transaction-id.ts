import { randomBytes } from 'node:crypto';
import { yyyymmdd } from './time.js';

const DAY_MS = 86_400_000;
const LOW_SPAN = 2 ** 36;

/**
 * DIP transaction IDs follow the published example T-IF-006-0123456789-SUP-20220401-1234CC0123456789:
 * kind, interface, sender DIP ID, sender role, receipt date, 16 hex characters. Replayed copies carry the
 * 'R' prefix (spec 5.5.11: "with a replay prefix") so downstream systems can tell them apart without
 * parsing D0.
 *
 * The 16 characters are time-ordered: 7 hex digits of the millisecond of the (UTC) receipt day, then 9 of a
 * 36-bit value, random at the first ID of a millisecond and counted up for the next ones. The archive keeps
 * a unique index on the transaction ID; with 16 random characters every insert landed on a random page of
 * it, so each message dirtied (and wrote to the WAL, then checkpointed) a page of its own and the cost per
 * message grew with the archive. Time-ordered, inserts append to the right-hand edge of each sender's
 * subtree (measured on a 5-million-row archive: about half the insert cost; BENCHMARKS.md, issue 9).
 * Uniqueness: one generator (thread) never repeats an ID (counted within a millisecond); two generators
 * collide only if they stamp the same sender, role and interface in the same millisecond from overlapping
 * 36-bit ranges, about as unlikely as 64 random bits over a day.
 */
export function newTransactionId(
  interfaceId: string,
  senderDipId: string,
  senderRole: string,
  at: Date,
  replay = false,
): string {
  return `${replay ? 'R' : 'T'}-${interfaceId}-${senderDipId}-${senderRole}-${yyyymmdd(at)}-${orderedHex(at)}`;
}

/** Workflow correlation IDs follow the published example CI-20220401-1234567890123abce123092. */
export function newCorrelationId(at: Date): string {
  return `CI-${yyyymmdd(at)}-${randomHex(8)}${randomHex(4)}`;
}

let lastMs = -1;
let lastLow = 0;
function orderedHex(at: Date): string {
  const ms = ((at.getTime() % DAY_MS) + DAY_MS) % DAY_MS;
  const low = ms === lastMs && lastLow + 1 < LOW_SPAN ? lastLow + 1 : Math.floor(randomUint(5) / 16);
  lastMs = ms;
  lastLow = low;
  return (ms.toString(16).padStart(7, '0') + low.toString(16).padStart(9, '0')).toUpperCase();
}

// Random bytes are drawn in blocks: one syscall per few hundred IDs instead of one per ID (hot path).
let pool = Buffer.alloc(0);
let offset = 0;
function take(bytes: number): number {
  if (offset + bytes > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  offset += bytes;
  return offset - bytes;
}

/** `bytes` (≤ 6) random bytes as an unsigned integer. */
function randomUint(bytes: number): number {
  const at = take(bytes); // before reading `pool`: taking may draw a new block
  return pool.readUIntBE(at, bytes);
}

/** 2 × `bytes` random hex characters, upper case. */
function randomHex(bytes: number): string {
  const at = take(bytes);
  return pool.toString('hex', at, at + bytes).toUpperCase();
}

const REPLAY_PREFIX = 'R-';
/** DT-011N-CorrelationID's maxLength. */
const CORRELATION_ID_MAX = 60;

/**
 * A replayed copy's correlation ID: the original's with the reply prefix (cut to the published length,
 * the original wrapper beside it keeps the whole), or null when the original had none.
 */
export function replayCorrelationId(original: unknown): string | null {
  if (typeof original !== 'string' || original.length === 0) return null;
  return `${REPLAY_PREFIX}${original}`.slice(0, CORRELATION_ID_MAX);
}
