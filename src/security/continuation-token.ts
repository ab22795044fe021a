import { createHmac, timingSafeEqual } from 'node:crypto';
import type { QueueRef } from '../ports/queue-ref.js';
import type { ReplayFilter } from '../ports/requeue-jobs.js';
import { keyFromFile } from './portal-session.js';

/** The header a 206 replay answer carries its token in, and the next page's request sends it back in (lower case, as Node reads headers). */
export const CONTINUATION_HEADER = 'x-continuation-token';

/** The published `ContinuationToken` header's syntax (`type: string, format: uuid`), any case (RFC 9562 4). */
export const UUID_SYNTAX = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The largest queue position a token carries (48 bits): far beyond any queue's length. */
const MAX_POSITION = 2 ** 48 - 1;

/** Where a publication listing goes on from: after this publication (newest first). */
export interface ListingPosition {
  publishedAt: number;
  id: string;
}

/** What a token read answers: the position it continues after, or why it is refused. */
export type TokenReading = { afterSeq: number } | { refused: 'not-a-uuid' | 'not-issued' };

/**
 * Replay continuation tokens in the published syntax: a UUID (RFC 9562 version 8, the layout left to the
 * implementation) that is stateless and authenticated, as the token it replaces was stateless.
 *
 *   bytes 0–5   the queue position the next page starts after (48 bits, in the clear: it is the
 *               recipient's own position in its own queue, nothing it could not learn otherwise)
 *   byte  6     version 8 (high nibble) and 4 bits of the MAC
 *   byte  7     8 bits of the MAC
 *   byte  8     variant 10 (high 2 bits) and 6 bits of the MAC
 *   bytes 9–15  56 bits of the MAC
 *
 * The MAC (HMAC-SHA256, cut to 74 bits) covers the position, the recipient, the channel and the request's
 * filters under a key in the data directory (`replay-token.key`, made on first use). So a token cannot be
 * made or altered without the key (a guess is right once in 2^74, and replay calls are rate-limited), is
 * refused for another recipient, channel or request body, and is accepted by every node of a cluster
 * sharing the data directory, with no table of issued tokens to keep or expire. Why not a stored
 * token→position map: it would need a shared table, written on every page and purged, for no gain.
 */
export class ContinuationTokens {
  constructor(private readonly key: Buffer) {}

  /** The tokens keyed by `file`, made on first use (readable by the DIP's account only). */
  static fromFile(file: string): ContinuationTokens {
    return new ContinuationTokens(keyFromFile(file));
  }

  issue(queue: QueueRef, filter: ReplayFilter, afterSeq: number): string {
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0 || afterSeq > MAX_POSITION) throw new Error(`queue position ${afterSeq} does not fit a continuation token`);
    const hex = this.bytes(queue, filter, afterSeq).toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /** The position a token continues after; refused when it is not a UUID, or not one issued for this queue and filter. */
  read(queue: QueueRef, filter: ReplayFilter, token: string): TokenReading {
    if (!UUID_SYNTAX.test(token)) return { refused: 'not-a-uuid' };
    const given = Buffer.from(token.replaceAll('-', ''), 'hex');
    const afterSeq = given.readUIntBE(0, 6);
    return timingSafeEqual(given, this.bytes(queue, filter, afterSeq)) ? { afterSeq } : { refused: 'not-issued' };
  }

  /**
   * A publication listing's token, under the same key: where the listing goes on from (the last publication
   * listed: its publishedAt and ID, in the clear) and a 128-bit MAC over it and `query` (the listing's filters
   * and caller). So a made-up or altered token is refused, and so is one sent with another query, rather
   * than answered with an empty or another listing's page.
   */
  issueListing(query: unknown, after: ListingPosition): string {
    return `${after.publishedAt}.${after.id}.${this.listingMac(query, after)}`;
  }

  /** Where a listing goes on from, or null when `token` is not one issued for `query`. */
  readListing(query: unknown, token: string): ListingPosition | null {
    const m = /^(\d{1,15})\.([\w-]{1,100})\.([\w-]{22})$/.exec(token);
    if (!m) return null;
    const after = { publishedAt: Number(m[1]), id: m[2]! };
    const given = Buffer.from(m[3]!);
    const expected = Buffer.from(this.listingMac(query, after));
    return given.length === expected.length && timingSafeEqual(given, expected) ? after : null;
  }

  private listingMac(query: unknown, after: ListingPosition): string {
    return createHmac('sha256', this.key).update(JSON.stringify(['opendip listing continuation 1', query, after.publishedAt, after.id])).digest().subarray(0, 16).toString('base64url');
  }

  private bytes(queue: QueueRef, filter: ReplayFilter, afterSeq: number): Buffer {
    const mac = createHmac('sha256', this.key)
      .update(JSON.stringify(['opendip replay continuation 1', queue.recipientDipId, queue.channel, filter, afterSeq]))
      .digest();
    const out = Buffer.alloc(16);
    out.writeUIntBE(afterSeq, 0, 6);
    out[6] = 0x80 | (mac[0]! & 0x0f);
    out[7] = mac[1]!;
    out[8] = 0x80 | (mac[2]! & 0x3f);
    mac.copy(out, 9, 3, 10);
    return out;
  }
}
