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
