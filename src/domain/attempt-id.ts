/** `count` random bytes (node:crypto's randomBytes in production; fixed bytes in tests). */
export type RandomBytes = (count: number) => Uint8Array;

/** A delivery attempt ID as newAttemptId makes it: a UUID, version 7, lower case. */
export const ATTEMPT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const RANDOM_BYTES = 10;
const MAX_MS = 2 ** 48;

/**
 * The ID of one delivery attempt (a webhook call or a pull's acknowledgement), given when the attempt is
 * made: a UUIDv7 (RFC 9562 §5.7): the 48-bit Unix millisecond `atMs`, then 74 random bits.
 *
 * Why an ID: the journal's record of an attempt may be written more than once (a write whose answer was
 * lost is tried again, src/pipeline/attempt-journal.ts); the store keeps one row per ID, so a record
 * written twice is stored once. Why made at the call and not at the write: every try of the same record
 * must carry the same ID. Why version 7: the IDs of a day's attempts sort by time, so the store's unique
 * index grows at its right-hand edge instead of dirtying a random page per insert (as transaction IDs,
 * src/domain/transaction-id.ts). Attempts made in the same millisecond are not ordered among themselves
 * (no counter): the journal's own order is its row id, and uniqueness rests on the 74 random bits, which
 * collide with a chance of about n²/2^75 for n attempts in one millisecond.
 */
export function newAttemptId(atMs: number, random: RandomBytes): string {
  const ms = Math.floor(atMs);
  if (!Number.isSafeInteger(ms) || ms < 0 || ms >= MAX_MS) throw new RangeError(`an attempt ID needs a time from 0 to 2^48 ms, not ${atMs}`);
  const drawn = random(RANDOM_BYTES);
  if (drawn.length < RANDOM_BYTES) throw new RangeError(`an attempt ID needs ${RANDOM_BYTES} random bytes, got ${drawn.length}`);
  const bytes = new Uint8Array(16);
  let rest = ms;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  bytes.set(drawn.subarray(0, RANDOM_BYTES), 6);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f); // version 7
  bytes[8] = 0x80 | (bytes[8]! & 0x3f); // variant 10 (RFC 9562)
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The millisecond an attempt ID was made at (its first 48 bits). */
export function attemptIdTime(id: string): number {
  if (!ATTEMPT_ID.test(id)) throw new RangeError(`not an attempt ID: ${id}`);
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
