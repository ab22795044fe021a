import { Readable } from 'node:stream';
import { deflateSync, gzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import fc from 'fast-check';
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

/**
 * What the filter means, written the slow, obvious way over the whole text: records end at newlines
 * outside quotes, lose one trailing carriage return, are split on commas (csv-parse when quoted, every row
 * it reads), and the kept rows are written by csv-stringify, as wide as the header or as the columns asked for.
 */
function model(text: string, where: string | undefined, columns: string | undefined): string {
  const records: string[][] = [];
  let start = 0;
  let odd = false;
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const cut = (end: number): void => {
    const line = body.slice(start, end).replace(/\r$/, '');
    const rows: string[][] = line.includes('"') ? parse(line, { relax_column_count: true, relax_quotes: true }) : [line.split(',')];
    records.push(...(rows.length > 0 ? rows : [[]]));
  };
  for (let i = 0; i < body.length; i++) {
    if (body[i] === '"') odd = !odd;
    else if (body[i] === '\n' && !odd) {
      cut(i);
      start = i + 1;
    }
  }
  if (body.slice(start).trim() !== '') cut(body.length);
  const [header, ...rows] = records;
  if (header === undefined) return '';
  const at = (name: string): number => header.indexOf(name);
  const keep = (columns?.split(',') ?? header).map(at);
  const [field, values] = where === undefined ? [null, []] : [at(where.slice(0, where.indexOf(':'))), where.slice(where.indexOf(':') + 1).split(',')];
  const kept = rows.filter((r) => field === null || values.includes(r[field] ?? '\u0000'));
  return stringify([header, ...kept].map((r) => keep.map((i) => r[i] ?? '')));
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

  it('keeps what the slow, obvious reading keeps, for any text, filter and cut (records read in place or parsed)', async () => {
    const token = fc.constantFrom('a', 'b', '_A', '_B', '', ' ', 'x y', 'é', ',', '"', '""', '\r', '\n');
    const field = fc.oneof(fc.array(fc.constantFrom('a', '_A', '_B', ''), { maxLength: 3 }).map((t) => t.join('')), token.map((t) => `"${t.replace(/"/g, '""')}"`), token);
    const csvText = fc.record({
      width: fc.integer({ min: 1, max: 4 }),
      rows: fc.array(fc.array(field, { maxLength: 6 }), { maxLength: 8 }),
      crlf: fc.boolean(),
      bom: fc.boolean(),
      finalNewline: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(csvText, fc.nat(), fc.nat(), fc.nat(), fc.option(fc.nat()), async (c, on, cut1, cut2, columns) => {
        const header = Array.from({ length: c.width }, (_, i) => `c${i}`);
        const text = `${c.bom ? '\uFEFF' : ''}${[header.join(','), ...c.rows.map((r) => r.join(','))].join(c.crlf ? '\r\n' : '\n')}${c.finalNewline ? '\n' : ''}`;
        const where = `c${on % c.width}:_A,a,,_B`;
        const cols = columns === null ? undefined : [`c${columns % c.width}`, `c${(columns >> 2) % c.width}`].join(',');
        const bytes = Buffer.from(text);
        const [a, b] = [cut1 % (bytes.length + 1), cut2 % (bytes.length + 1)].sort((x, y) => x - y) as [number, number];
        const filtered = run([bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)], where, cols);
        let expected: string;
        try {
          expected = model(text, where, cols);
        } catch {
          // The last record opens a quote it never closes: csv-parse cannot read it, the filter says so.
          await expect(filtered).rejects.toBeInstanceOf(FilterError);
          return;
        }
        expect(await filtered).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses a column the header lacks, a quote never closed, and reads filters from the query string', async () => {
    await expect(run([Buffer.from(csv)], 'region:_A')).rejects.toBeInstanceOf(FilterError);
    // A header longer than the first piece read: nothing is yielded before it is whole, so the first
    // piece the route awaits is the refusal (a 400), not an empty piece and then a cut 200.
    const split = parseRowFilter('region:_A', undefined);
    if (!split || 'error' in split) throw new Error('bad filter');
    const rows = filterRows('csv', Readable.from([Buffer.from('id,gr'), Buffer.from('oup,note\n1,_A,x\n')]), split);
    await expect(rows.next()).rejects.toBeInstanceOf(FilterError);
    // A stray quote would make the rest of the file one record: refused once that record passes 1 MiB.
    const unclosed = [Buffer.from('id,group\n1,"_A\n'), ...Array.from({ length: 40 }, () => Buffer.from('2,_B\n'.repeat(10_000)))];
    await expect(run(unclosed, 'group:_A')).rejects.toThrow(/record 2 of the CSV .* is longer than 1048576 characters: a quote in it is not closed/);
    await expect(run([Buffer.from('id,group\n1,_A\n2,"_A')], 'group:_A')).rejects.toThrow(/record 3 of the CSV .* cannot be read: Quote Not Closed/);
    // A column named twice is refused when the filter names it; without columns, each is kept in its place.
    await expect(run([Buffer.from('a,a,b\nx,y,z\n')], 'b:z', 'a')).rejects.toThrow(/names 'a' more than once/);
    expect(await run([Buffer.from('a,a,b\nx,y,z\nx,y,z,w\n')], 'b:z')).toBe('a,a,b\nx,y,z\nx,y,z\n');
    // A quote inside an unquoted field: the rows after it are still read, each on its own.
    expect(await run([Buffer.from('id,group\n1,5" pipe\n2,_A\n3,_A\n')], 'group:_A')).toBe('id,group\n2,_A\n3,_A\n');
    expect(parseRowFilter('nocolon', undefined)).toEqual({ error: expect.stringContaining('field:value') });
    expect(parseRowFilter(undefined, undefined)).toBeNull();
  });

  it('filters JSON lines cut anywhere (LF or CRLF, a BOM), and refuses a line past 1 MiB or one that is not an object', async () => {
    const jsonl = async (pieces: Buffer[], where: string | undefined, columns?: string): Promise<string> => {
      const filter = parseRowFilter(where, columns);
      if (!filter || 'error' in filter) throw new Error('bad filter');
      const out: Buffer[] = [];
      for await (const b of filterRows('jsonl', Readable.from(pieces), filter)) out.push(b);
      return Buffer.concat(out).toString();
    };
    const bytes = Buffer.from('\uFEFF{"id":1,"g":"_A"}\r\n\n{"id":2,"g":"_B","n":{"x":1}}\n{"id":3,"g":"_A","__proto__":"p"}');
    const whole = await jsonl([bytes], 'g:_A');
    expect(whole).toBe('{"id":1,"g":"_A"}\n{"id":3,"g":"_A","__proto__":"p"}\n');
    for (let cut = 1; cut < bytes.length; cut++) expect(await jsonl([bytes.subarray(0, cut), bytes.subarray(cut)], 'g:_A')).toBe(whole);
    expect(await jsonl([bytes], 'n:{"x":1}', 'id,__proto__')).toBe('{"id":2}\n');
    expect(await jsonl([bytes], undefined, 'id,__proto__')).toBe('{"id":1}\n{"id":2}\n{"id":3,"__proto__":"p"}\n');
    const endless = Array.from({ length: 40 }, () => Buffer.from(' '.repeat(30_000)));
    await expect(jsonl([Buffer.from('{"g":"_A"}\n{"g":'), ...endless], 'g:_A')).rejects.toThrow(/line 2 of the JSON lines is longer than 1048576 characters/);
    await expect(jsonl([Buffer.from('{"g":"_A"}\n[1]\n')], 'g:_A')).rejects.toThrow(/line 2 is not a JSON object/);
    await expect(jsonl([Buffer.from('{"g":"_A"}\n\n{"g"\n')], 'g:_A')).rejects.toThrow(/line 3 is not JSON/);
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

  it('gives a failed read of the stored bytes to the reader, and closes the stored bytes when the reader stops', async () => {
    const stored = gzipSync(Buffer.from('{"a":1}\n'.repeat(20_000)));
    for (const kind of ['gzip', 'zlib', 'zlib-base64', 'none'] as const) {
      // The bytes fail part-way (removed by retention meanwhile, the object store lost): the reader gets
      // the error. Before, the decompressor's source failed with nobody listening (the process exited).
      async function* failing(): AsyncGenerator<Buffer> {
        yield stored.subarray(0, 10);
        throw new Error('the stored bytes are gone');
      }
      const read = async () => {
        for await (const piece of decoded(kind, failing())) void piece;
      };
      await expect(read(), kind).rejects.toThrow(kind === 'none' ? 'the stored bytes are gone' : /the stored bytes are gone|unexpected end|incorrect header/);
    }
    // A reader that stops (a download cut off) closes the stored bytes' reader.
    let closed = false;
    async function* endless(): AsyncGenerator<Buffer> {
      try {
        for (;;) yield gzipSync(Buffer.from('{"a":1}\n'));
      } finally {
        closed = true;
      }
    }
    const out = decoded('gzip', endless());
    await new Promise((resolve) => out.once('data', resolve));
    out.destroy();
    for (let i = 0; i < 20 && !closed; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(true);
  });
});

describe('a filtered download answers before it has read the whole publication', () => {
  /** The first piece, then nothing until the test opens the gate: a large file the filter is still reading. */
  function gated(first: string, late: string): { input: Readable; open: () => void } {
    let open = (): void => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    async function* pieces(): AsyncGenerator<Buffer> {
      yield Buffer.from(first);
      await gate;
      yield Buffer.from(late);
    }
    return { input: Readable.from(pieces()), open: () => open() };
  }

  for (const [format, first, late, where, head] of [
    ['csv', 'id,group,note\n1,_B,x\n2,_C,y\n', '9,_A,late\n', 'group:_A', 'id,group,note\n'],
    ['jsonl', '{"id":1,"group":"_B"}\n', '{"id":9,"group":"_A"}\n', 'group:_A', ''],
  ] as const) {
    it(`${format}: the first piece (the header, and whatever rows it kept) comes once the first piece of input is read, not once a row matches`, async () => {
      const filter = parseRowFilter(where, undefined);
      if (!filter || 'error' in filter) throw new Error('bad filter');
      const { input, open } = gated(first, late);
      const rows = filterRows(format, input, filter);
      let answered: IteratorResult<Buffer> | null = null;
      void rows.next().then((r) => (answered = r));
      // Nothing matched yet, and the rest of the file has not come: the route can answer its headers now.
      for (let i = 0; i < 50 && answered === null; i++) await new Promise((r) => setImmediate(r));
      expect(answered).not.toBeNull();
      expect(answered!.done).toBe(false);
      expect(answered!.value.toString()).toBe(head);
      open();
      const rest: string[] = [];
      for (let next = await rows.next(); !next.done; next = await rows.next()) rest.push(next.value.toString());
      expect(rest.join('')).toBe(late);
    });
  }
});
