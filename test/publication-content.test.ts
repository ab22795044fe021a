import { Readable } from 'node:stream';
import { deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decoded, filterRows, FilterError, parseRowFilter } from '../src/pipeline/publication-content.js';

const csv = '\uFEFFid,group,note\r\n1,_A,plain\n2,_B,"a, ""quoted""\nnote"\n3,_A,"x"\n4,_C,last';

async function run(pieces: Buffer[], where: string | string[] | undefined, columns?: string): Promise<string> {
  const filter = parseRowFilter(where, columns);
  if (!filter || 'error' in filter) throw new Error('bad filter');
  const out: Buffer[] = [];
  for await (const b of filterRows('csv', Readable.from(pieces), filter)) out.push(b);
  return Buffer.concat(out).toString();
}

describe('publication content: CSV records, filters and decompression', () => {
  it('cuts records at newlines outside quotes, wherever the input is split', async () => {
    const bytes = Buffer.from(csv);
    const whole = await run([bytes], 'group:_A,_B');
    expect(whole).toBe('id,group,note\n1,_A,plain\n2,_B,"a, ""quoted""\nnote"\n3,_A,x\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(await run([bytes.subarray(0, cut), bytes.subarray(cut)], 'group:_A,_B')).toBe(whole);
    }
    expect(await run([bytes], 'group:_C', 'note,id')).toBe('note,id\nlast,4\n');
  });

  it('refuses a column the header lacks, and reads filters from the query string', async () => {
    await expect(run([Buffer.from(csv)], 'region:_A')).rejects.toBeInstanceOf(FilterError);
    expect(parseRowFilter('nocolon', undefined)).toEqual({ error: expect.stringContaining('field:value') });
    expect(parseRowFilter(undefined, undefined)).toBeNull();
  });

  it('decompresses gzip, zlib and base64 of zlib (the published REP form) across chunk boundaries', async () => {
    const plain = Buffer.from('{"a":1}\n'.repeat(1000));
    const b64 = Buffer.from(deflateSync(plain).toString('base64').replace(/(.{76})/g, '$1\n'));
    const pieces = (b: Buffer) => [b.subarray(0, 7), b.subarray(7, 30), b.subarray(30)];
    for (const [kind, stored] of [['gzip', gzipSync(plain)], ['zlib', deflateSync(plain)], ['zlib-base64', b64]] as const) {
      const out: Buffer[] = [];
      for await (const b of decoded(kind, Readable.from(pieces(stored)))) out.push(b as Buffer);
      expect(Buffer.concat(out).equals(plain)).toBe(true);
    }
  });
});
