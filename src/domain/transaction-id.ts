import { randomBytes } from 'node:crypto';
import { yyyymmdd } from './time.js';

/**
 * DIP transaction IDs follow the published example T-IF-006-0123456789-SUP-20220401-1234CC0123456789:
 * kind, interface, sender DIP ID, sender role, receipt date, 16 hex characters of randomness.
 * Replayed copies carry the 'R' prefix (spec 5.5.11: "with a replay prefix") so downstream systems
 * can tell them apart without parsing D0.
 */
export function newTransactionId(
  interfaceId: string,
  senderDipId: string,
  senderRole: string,
  at: Date,
  replay = false,
): string {
  return `${replay ? 'R' : 'T'}-${interfaceId}-${senderDipId}-${senderRole}-${yyyymmdd(at)}-${uniqueHex()}`;
}

/** Workflow correlation IDs follow the published example CI-20220401-1234567890123abce123092. */
export function newCorrelationId(at: Date): string {
  return `CI-${yyyymmdd(at)}-${uniqueHex()}${uniqueHex().slice(0, 8)}`;
}

// Random bytes are drawn in blocks: one syscall per 512 IDs instead of one per ID (hot path).
let pool = Buffer.alloc(0);
let offset = 0;
function uniqueHex(): string {
  if (offset + 8 > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + 8).toUpperCase();
  offset += 8;
  return hex;
}
