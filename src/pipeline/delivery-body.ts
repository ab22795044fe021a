/** How many bytes of encoded copies are kept for the other recipients of the same messages. */
export const ENCODED_COPIES_BYTES = 16 * 1024 * 1024;

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

/**
 * The UTF-8 bytes of each message's copy, kept a while after it is first encoded: a message goes to
 * every recipient within moments, and on most channels every recipient's copy is the same string (no
 * field is hidden from any role, nothing is encrypted per recipient), so it is encoded once rather than
 * once per recipient. A copy that differs from the kept one (obfuscated, encrypted for its recipient) is
 * encoded afresh: the bytes always match the string asked for.
 */
export class EncodedCopies {
  /** By message id, oldest first. */
  private readonly kept = new Map<number, { copy: string; bytes: Buffer }>();
  private keptBytes = 0;

  constructor(private readonly maxBytes = ENCODED_COPIES_BYTES) {}

  bytes(messageId: number, copy: string): Buffer {
    const hit = this.kept.get(messageId);
    // The same string object (the store's recent-message cache) compares by reference; another equal one byte by byte.
    if (hit && hit.copy === copy) return hit.bytes;
    const bytes = Buffer.from(copy, 'utf8');
    if (hit) this.drop(messageId, hit.bytes);
    this.kept.set(messageId, { copy, bytes });
    this.keptBytes += bytes.length;
    for (const [id, oldest] of this.kept) {
      if (this.keptBytes <= this.maxBytes) break;
      this.drop(id, oldest.bytes);
    }
    return bytes;
  }

  private drop(id: number, bytes: Buffer): void {
    this.kept.delete(id);
    this.keptBytes -= bytes.length;
  }
}

/**
 * How many of the leading copies (their sizes in bytes as sent) a body of at most `maxBytes` carries: the
 * body `[copy,copy,…]` as batchBody makes it. At least one: a copy larger than the limit goes alone, as a
 * read of the queue gives it. The store's read budgets the copies as stored, but a pattern 2 copy is
 * re-encrypted for its recipient (a JWE: base64url, with a header and a wrapped key), larger than that;
 * recipients' maxPayloadSize is what they receive, so the copies made are counted again here.
 */
export function copiesWithin(sizes: readonly number[], maxBytes: number): number {
  let length = 1; // '['
  for (let i = 0; i < sizes.length; i++) {
    length += sizes[i]! + 1; // the copy, and ',' or ']'
    if (i > 0 && length > maxBytes) return i;
  }
  return sizes.length;
}

/**
 * A webhook call's body, `[copy,copy,…]`, from each copy's bytes: one copy into a buffer of the exact
 * size. (Joining the strings first and encoding the result costs ~4 times as much at 100+ messages a
 * call: a large string, then its whole encoding.)
 */
export function batchBody(copies: readonly Buffer[]): Buffer {
  if (copies.length === 0) return Buffer.from('[]');
  const parts: Buffer[] = new Array<Buffer>(copies.length * 2 + 1);
  parts[0] = OPEN;
  let length = 1 + copies.length;
  for (let i = 0; i < copies.length; i++) {
    parts[i * 2 + 1] = copies[i]!;
    parts[i * 2 + 2] = i === copies.length - 1 ? CLOSE : COMMA;
    length += copies[i]!.length;
  }
  return Buffer.concat(parts, length);
}
