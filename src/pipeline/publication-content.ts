import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import { parse as parseSync } from 'csv-parse/sync';
import { StringDecoder } from 'node:string_decoder';
import { stringify } from 'csv-stringify/sync';
import type { Compression } from '../ports/publications.js';

/**
 * What a download may do with a publication's bytes besides handing them over as stored: decompress them
 * (the published REP payloads are base64 of zlib-compressed JSON) and, for tabular formats, keep only some
 * rows (by field values, e.g. a GSP group or an MPID) and some columns (by name). Everything streams: memory
 * stays flat however large the publication.
 */

/** Rows whose `field` is one of `values`; several conditions must all hold. */
export interface RowFilter {
  where: Array<{ field: string; values: ReadonlySet<string> }>;
  /** Columns (fields) to keep, in this order; null: all. */
  columns: string[] | null;
}

/** The filter cannot apply to this publication (an unknown column, a format that is not tabular). */
export class FilterError extends Error {}

export const TABULAR_FORMATS = ['csv', 'jsonl'] as const;
export type TabularFormat = (typeof TABULAR_FORMATS)[number];

export function tabularFormat(format: string): TabularFormat | null {
  const f = format.toLowerCase();
  if (f === 'csv') return 'csv';
  if (f === 'jsonl' || f === 'ndjson' || f === 'json-lines') return 'jsonl';
  return null;
}

/** base64 text (line breaks and spaces allowed) to bytes, across chunk boundaries. */
class Base64Decode extends Transform {
  private carry = '';

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const text = this.carry + chunk.toString('latin1').replace(/\s+/g, '');
    const whole = text.length - (text.length % 4);
    this.carry = text.slice(whole);
    done(null, Buffer.from(text.slice(0, whole), 'base64'));
  }

  override _flush(done: TransformCallback): void {
    done(null, this.carry.length > 0 ? Buffer.from(this.carry, 'base64') : undefined);
  }
}

/** An error of zlib's (Z_DATA_ERROR, Z_BUF_ERROR…): the bytes are not in the compression they were declared in, or are cut short. */
export function isDecompressionError(err: unknown): err is Error & { code: string } {
  const code: unknown = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('Z_');
}

/**
 * The plain bytes of a stored payload (a zlib error, isDecompressionError, when they are not in
 * `compression`). Joined with `pipeline`, not `pipe`: a failed read of the stored bytes (removed by
 * retention meanwhile, the object store lost, a chunk that does not open) reaches the reader of the
 * result as its error, and destroying the result closes the stored bytes' reader. With `pipe` the error was
 * on a stream nobody listened to (the process exited) and a reader that stopped left the file open.
 */
export function decoded(compression: Compression, stored: AsyncIterable<Buffer>): Readable {
  const source = Readable.from(stored, { objectMode: false });
  const settled = (): void => undefined; // errors reach the returned stream's reader; nothing else to do
  switch (compression) {
    case 'none':
      return source;
    case 'gzip':
      return pipeline(source, createGunzip(), settled);
    case 'zlib':
      return pipeline(source, createInflate(), settled);
    case 'zlib-base64':
      return pipeline(source, new Base64Decode(), createInflate(), settled);
  }
}

/** Output is gathered into pieces of about this size: one write per row would cost more than the filtering. */
const PIECE = 64 * 1024;

function matches(get: (field: string) => string | undefined, filter: RowFilter): boolean {
  return filter.where.every((w) => {
    const v = get(w.field);
    return v !== undefined && w.values.has(v);
  });
}

/**
 * The rows of a record (without its line ending) that is not read in place: split on commas when it has
 * no quotes (a carriage return inside it is a character of its field), else parsed by csv-parse. That can
 * be several rows: a quote inside an unquoted field (`5" pipe`) leaves the quotes unbalanced, so the
 * cutting joins the lines after it into one record, and csv-parse (relaxed) reads them apart again.
 */
function parsedRows(record: string, n: number): string[][] {
  if (!record.includes('"')) return [record.split(',')];
  try {
    const rows: string[][] = parseSync(record, { relax_column_count: true, relax_quotes: true });
    return rows.length > 0 ? rows : [[]];
  } catch (e) {
    throw new FilterError(`record ${n} of the CSV (counting the header as 1) cannot be read: ${(e as Error).message}`);
  }
}

/**
 * A record (a CSV record, a JSON line) longer than about this is refused: the longest settlement rows are
 * under a kilobyte, and what makes a record this long is a CSV quote that is never closed or a file without
 * line breaks, which would otherwise be held whole. Checked on what is left at the end of each piece, so a
 * record up to this plus one piece (1 MiB) can still pass.
 */
const MAX_RECORD_CHARS = 1024 * 1024;

/** The input as text, piece by piece: UTF-8 decoded across the pieces' boundaries, a leading BOM dropped. */
async function* textPieces(input: AsyncIterable<Buffer>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let first = true;
  for await (const chunk of input) {
    let text = decoder.write(chunk);
    if (first && text.length > 0) {
      if (text.startsWith('\uFEFF')) text = text.slice(1);
      first = false;
    }
    yield text;
  }
  const tail = decoder.end();
  if (tail !== '') yield tail;
}

/** The header's columns the filter reads: where each condition looks, and what each output row keeps. */
interface CsvPlan {
  where: Array<{ at: number; values: ReadonlySet<string> }>;
  /** Column positions to write, in order (every column of the header when the filter names none). */
  keep: number[];
  /** The filter names no columns: a record with as many fields as the header is written as it is. */
  whole: boolean;
  /** The highest position either reads: a record is scanned no further than its end. */
  last: number;
}

function csvPlan(header: string[], filter: RowFilter): CsvPlan {
  const position = new Map(header.map((name, i) => [name, i]));
  const named = [...filter.where.map((w) => w.field), ...(filter.columns ?? [])];
  const unknown = named.filter((f) => !position.has(f));
  if (unknown.length > 0) throw new FilterError(`the CSV header has no column ${unknown.map((u) => `'${u}'`).join(', ')}; it has ${header.join(', ')}`);
  const twice = [...new Set(named.filter((f) => header.indexOf(f) !== header.lastIndexOf(f)))];
  if (twice.length > 0) throw new FilterError(`the CSV header names ${twice.map((u) => `'${u}'`).join(', ')} more than once: which column is meant is not clear`);
  const where = filter.where.map((w) => ({ at: position.get(w.field)!, values: w.values }));
  const keep = filter.columns === null ? header.map((_, i) => i) : filter.columns.map((c) => position.get(c)!);
  return { where, keep, whole: filter.columns === null, last: Math.max(0, ...where.map((w) => w.at), ...keep) };
}

/**
 * The rows (and columns) of a CSV publication that the filter keeps, header first. A column the filter
 * names that the header lacks is refused (FilterError) before the first byte.
 *
 * Records are cut at newlines outside quoted fields. A record without quotes (the common case) is read in
 * place: the commas up to the last column the filter reads are found in the piece's text, the conditions
 * compare those fields alone, and a record that is not kept costs no allocation that outlives it. A record
 * with quotes is parsed by csv-parse, and one with quotes or a carriage return inside is written by
 * csv-stringify (which quotes what needs it).
 * Nothing is gathered per piece: a list of every record of a 1 MB piece lived long enough to be promoted
 * to the old generation, and the download's resident memory grew by 140–256 MB of such garbage for a
 * 200 MB file (csv-parse's streaming parser over every row had been the whole cost before that: 16 MB in
 * 8 s on the shared 2-core machine).
 */
async function* filterCsv(input: AsyncIterable<Buffer>, filter: RowFilter): AsyncGenerator<Buffer> {
  let plan: CsvPlan | null = null;
  // Where each field starts, up to plan.last + 1: reused for every record.
  let starts = new Int32Array(1);
  let records = 0;
  let out = '';

  /** One whole record, text[start, end) without its line ending; `plain`: no quote and no carriage return inside. */
  const take = (text: string, start: number, end: number, plain: boolean): void => {
    records += 1;
    if (plan === null || !plain) {
      const rows = plain ? [text.slice(start, end).split(',')] : parsedRows(text.slice(start, end), records);
      records += rows.length - 1;
      for (const row of rows) {
        if (plan === null) {
          plan = csvPlan(row, filter);
          starts = new Int32Array(plan.last + 2);
        } else if (!plan.where.every((w) => w.values.has(row[w.at] ?? '\u0000'))) continue;
        const { keep } = plan;
        out += stringify([keep.map((i) => row[i] ?? '')]);
      }
      return;
    }
    // Fields 0..found start at starts[i]; field i ends at the next field's start - 1, the last at `end`.
    starts[0] = start;
    let found = 0;
    for (let comma = text.indexOf(',', start); comma !== -1 && comma < end && found <= plan.last; comma = text.indexOf(',', comma + 1)) starts[++found] = comma + 1;
    const field = (i: number): string | undefined => (i > found ? undefined : text.slice(starts[i], i < found ? starts[i + 1]! - 1 : end));
    for (const w of plan.where) if (!w.values.has(field(w.at) ?? '\u0000')) return;
    // Every column asked for and the record as wide as the header: it is written as it came.
    if (plan.whole && found === plan.last) {
      out += `${text.slice(start, end)}\n`;
      return;
    }
    for (let k = 0; k < plan.keep.length; k++) out += `${k === 0 ? '' : ','}${field(plan.keep[k]!) ?? ''}`;
    out += '\n';
  };

  let rest = '';
  let first = true;
  for await (const piece of textPieces(input)) {
    const text = rest + piece;
    let start = 0;
    let odd = false;
    let special = false;
    // The next quote and carriage return at or after the scan (-1: none in this text): found once, not per line.
    let quote = text.indexOf('"');
    let cr = text.indexOf('\r');
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', nl + 1)) {
      // A record ends at a newline only where its quotes are balanced (RFC 4180 doubles quotes inside quotes).
      while (quote !== -1 && quote < nl) {
        odd = !odd;
        special = true;
        quote = text.indexOf('"', quote + 1);
      }
      if (odd) continue;
      const end = text.charCodeAt(nl - 1) === 13 && nl > start ? nl - 1 : nl;
      while (cr !== -1 && cr < end) {
        if (cr >= start) special = true;
        cr = text.indexOf('\r', cr + 1);
      }
      take(text, start, end, !special);
      start = nl + 1;
      special = false;
    }
    rest = text.slice(start);
    if (rest.length > MAX_RECORD_CHARS) throw new FilterError(`record ${records + 1} of the CSV (counting the header as 1) is longer than ${MAX_RECORD_CHARS} characters: a quote in it is not closed, or the file has no line breaks (LF) after it`);
    // The first piece goes at once (the header, with whatever rows it kept): the route answers once it
    // has it, and a rare value's rows may be gigabytes in, which the client would wait for without a status.
    // Not before the header is read, though: an unknown column must still be the route's 400, not a cut 200.
    if (out.length >= PIECE || (first && plan !== null)) {
      yield Buffer.from(out);
      out = '';
      first = false;
    }
  }
  const lastEnd = rest.endsWith('\r') ? rest.length - 1 : rest.length;
  if (rest.trim() !== '') take(rest, 0, lastEnd, !/["\r]/.test(rest.slice(0, lastEnd)));
  if (out.length > 0) yield Buffer.from(out);
}

/**
 * The lines of a JSON-lines publication that the filter keeps; fields compare as text (top level). Lines
 * end at LF or CRLF and are cut in each piece's text as it comes, like CSV records; one longer than
 * MAX_RECORD_CHARS is refused rather than held whole (a file without newlines would otherwise be read
 * into one string).
 */
async function* filterJsonLines(input: AsyncIterable<Buffer>, filter: RowFilter): AsyncGenerator<Buffer> {
  let out = '';
  let line = 0;
  const take = (text: string): void => {
    line += 1;
    if (text.trim() === '') return;
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (e) {
      throw new FilterError(`line ${line} is not JSON: ${(e as Error).message}`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new FilterError(`line ${line} is not a JSON object`);
    const fields = new Map<string, unknown>(Object.entries(row as Record<string, unknown>));
    const text_ = (f: string): string | undefined => {
      const v = fields.get(f);
      return v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v);
    };
    if (!matches(text_, filter)) return;
    out += `${filter.columns ? JSON.stringify(Object.fromEntries(filter.columns.filter((c) => fields.has(c)).map((c) => [c, fields.get(c)]))) : text}\n`;
  };
  let rest = '';
  let first = true;
  for await (const piece of textPieces(input)) {
    const text = rest + piece;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', nl + 1)) {
      take(text.slice(start, nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl));
      start = nl + 1;
    }
    rest = text.slice(start);
    if (rest.length > MAX_RECORD_CHARS) throw new FilterError(`line ${line + 1} of the JSON lines is longer than ${MAX_RECORD_CHARS} characters`);
    // The first piece goes at once, even empty, as for CSV (filterCsv).
    if (out.length >= PIECE || first) {
      yield Buffer.from(out);
      out = '';
      first = false;
    }
  }
  if (rest !== '') take(rest.endsWith('\r') ? rest.slice(0, -1) : rest);
  if (out.length > 0) yield Buffer.from(out);
}

export function filterRows(format: TabularFormat, input: Readable, filter: RowFilter): AsyncGenerator<Buffer> {
  return format === 'csv' ? filterCsv(input, filter) : filterJsonLines(input, filter);
}

/**
 * Parses `where` (field:value[,value…], repeatable) and `columns` (name,name…) from a query string.
 * Null when neither is given.
 */
export function parseRowFilter(where: string | string[] | undefined, columns: string | undefined): RowFilter | { error: string } | null {
  const conditions = where === undefined ? [] : Array.isArray(where) ? where : [where];
  if (conditions.length === 0 && columns === undefined) return null;
  const parsed: RowFilter['where'] = [];
  for (const c of conditions) {
    const colon = c.indexOf(':');
    if (colon <= 0) return { error: `where '${c}' is not field:value[,value…] (for example where=GSPGroupID:_A)` };
    parsed.push({ field: c.slice(0, colon), values: new Set(c.slice(colon + 1).split(',')) });
  }
  const names = columns === undefined ? null : columns.split(',').filter((n) => n.length > 0);
  if (names !== null && names.length === 0) return { error: 'columns names no column (for example columns=MPAN,GSPGroupID)' };
  return { where: parsed, columns: names };
}
