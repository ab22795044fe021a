import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { batchBody, EncodedCopies } from '../src/pipeline/delivery-body.js';

const joined = (copies: string[]) => Buffer.from(`[${copies.join(',')}]`, 'utf8');

describe('batchBody', () => {
  it('is byte for byte the joined copies, multi-byte characters included', () => {
    const copies = ['{"a":1}', '{"name":"Zoë – £5 ✓"}', '{"emoji":"😀"}', '{}'];
    for (let n = 0; n <= copies.length; n++) {
      const some = copies.slice(0, n);
      expect(batchBody(some.map((c) => Buffer.from(c, 'utf8'))).equals(joined(some))).toBe(true);
    }
  });
});

describe('EncodedCopies', () => {
  it('encodes a message once for every recipient that gets the same copy', () => {
    const encoded = new EncodedCopies();
    const copy = '{"payload":"x"}';
    const first = encoded.bytes(7, copy);
    // An equal string that is another object (read again from the store) finds the same bytes.
    expect(encoded.bytes(7, JSON.stringify(JSON.parse(copy)))).toBe(first);
    expect(first.toString('utf8')).toBe(copy);
  });

  it('encodes afresh a copy that differs for its recipient (obfuscated, encrypted)', () => {
    const encoded = new EncodedCopies();
    encoded.bytes(7, '{"secret":"shown"}');
    expect(encoded.bytes(7, '{"secret":null}').toString('utf8')).toBe('{"secret":null}');
    expect(encoded.bytes(7, '{"secret":"shown"}').toString('utf8')).toBe('{"secret":"shown"}');
  });

  it('keeps at most its byte limit, dropping the oldest', () => {
    const encoded = new EncodedCopies(10);
    const a = encoded.bytes(1, '"aaaa"'); // 6 bytes
    expect(encoded.bytes(1, '"aaaa"')).toBe(a);
    encoded.bytes(2, '"bbbb"'); // 12 bytes kept: message 1 goes
    expect(encoded.bytes(1, '"aaaa"')).not.toBe(a);
  });
});

describe('EncodedCopies.body', () => {
  const hashOf = (b: Buffer) => createHash('sha256').update(b).digest('base64');

  it('makes and hashes a body once for every recipient whose call carries the same copies', () => {
    const encoded = new EncodedCopies();
    const parts = [encoded.bytes(1, '{"a":1}'), encoded.bytes(2, '{"b":"Zoë"}')];
    const first = encoded.body([1, 2], parts);
    expect(first.body.equals(joined(['{"a":1}', '{"b":"Zoë"}']))).toBe(true);
    expect(first.hash).toBe(hashOf(first.body));
    // Another recipient's call: the same copies' bytes (bytes() gives the kept ones), the same body and hash.
    expect(encoded.body([1, 2], [encoded.bytes(1, '{"a":1}'), encoded.bytes(2, '{"b":"Zoë"}')])).toBe(first);
  });

  it('makes its own body for a call whose copies differ (another cut, a copy made for its recipient)', () => {
    const encoded = new EncodedCopies();
    const shared = encoded.body([1, 2], [encoded.bytes(1, '{"a":1}'), encoded.bytes(2, '{"secret":"shown"}')]);
    // The same messages, one copy obfuscated for this recipient: the bytes differ, so does the body.
    const own = encoded.body([1, 2], [encoded.bytes(1, '{"a":1}'), encoded.bytes(2, '{"secret":null}')]);
    expect(own.body.equals(joined(['{"a":1}', '{"secret":null}']))).toBe(true);
    expect(own.hash).toBe(hashOf(own.body));
    expect(own.hash).not.toBe(shared.hash);
    const shorter = encoded.body([1], [encoded.bytes(1, '{"a":1}')]);
    expect(shorter.body.equals(joined(['{"a":1}']))).toBe(true);
    expect(shorter.hash).toBe(hashOf(shorter.body));
  });

  it('keeps at most its byte limit of bodies, dropping the oldest, and never one larger than it', () => {
    const encoded = new EncodedCopies(1 << 20, 20);
    const a = encoded.bytes(1, '"aaaa"');
    const b = encoded.bytes(2, '"bbbb"');
    const first = encoded.body([1], [a]); // 8 bytes
    expect(encoded.body([1], [a])).toBe(first);
    encoded.body([2], [b]); // 16 kept
    encoded.body([1, 2], [a, b]); // 15 more: the oldest go
    expect(encoded.body([1], [a])).not.toBe(first);
    const big = encoded.bytes(3, `"${'x'.repeat(30)}"`);
    const once = encoded.body([3], [big]);
    expect(encoded.body([3], [big])).not.toBe(once);
    expect(encoded.body([3], [big]).hash).toBe(once.hash);
  });
});
