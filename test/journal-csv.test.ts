import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTokenFile } from '../src/api/admin.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';

/**
 * GET /admin/journal?format=csv (README "Operator accounts"): the same entries as the JSON, with the same
 * filters, as CSV an auditor opens in a spreadsheet: before and after as JSON in one cell each, and a cell
 * that starts like a formula written as text (the reports' CSV rule, src/pipeline/reports.ts toCsv).
 */
describe('the operator journal as CSV', () => {
  let td: TestDip;
  let bearer: string;
  const get = async (path: string) => {
    const res = await request(`http://127.0.0.1:${td.dip.adminPort}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
    return { status: res.statusCode, type: String(res.headers['content-type']), disposition: String(res.headers['content-disposition']), text: await res.body.text() };
  };

  beforeAll(async () => {
    td = await startTestDip();
    bearer = readFileSync(adminTokenFile(td.config.dataDir), 'utf8').trim();
    const at = Date.parse('2026-12-01T10:00:00Z');
    const journal = td.dip.backend.journal;
    await journal.append({ at, actor: 'operator:alice', action: 'participant.suspend', target: '1000000001', before: { suspended: null }, after: { reason: 'late, "again", twice\nnew line' }, status: 200 });
    // Text a spreadsheet would run: an actor, a target and an action as a hostile feed or name could make them.
    await journal.append({ at: at + 60_000, actor: '@SUM(1+1)', action: '+cmd', target: '=HYPERLINK("http://evil.example","x")', before: null, after: { note: '=1+1' }, status: null });
    await journal.append({ at: at + 120_000, actor: 'operator:bob', action: 'channel.pause', target: 'IF-021', before: { state: 'active' }, after: { state: 'paused' }, status: 200 });
  });
  afterAll(async () => td?.close());

  it('answers the entries the JSON answers, as an attachment, formula-safe, before and after as JSON cells', async () => {
    const from = '2026-12-01T10:00:00.000Z';
    const to = '2026-12-01T10:02:00.000Z';
    const csv = await get(`/admin/journal?format=csv&from=${from}&to=${to}`);
    expect(csv.status).toBe(200);
    expect(csv.type).toBe('text/csv; charset=utf-8');
    expect(csv.disposition).toBe('attachment; filename="journal.csv"');
    const rows = parse<Record<string, string>>(csv.text, { columns: true });
    expect(Object.keys(rows[0]!)).toEqual(['id', 'at', 'actor', 'action', 'target', 'before', 'after', 'status']);
    // Newest first, the period's two (to is exclusive), as the JSON lists them.
    const json = JSON.parse((await get(`/admin/journal?from=${from}&to=${to}`)).text) as Array<{ id: number; before: unknown; after: unknown }>;
    expect(rows.map((r) => Number(r.id))).toEqual(json.map((e) => e.id));
    expect(rows).toHaveLength(2);
    const [hostile, suspended] = rows;
    expect(hostile).toMatchObject({ actor: "'@SUM(1+1)", action: "'+cmd", target: `'=HYPERLINK("http://evil.example","x")`, before: '', after: '{"note":"=1+1"}', status: '' });
    expect(JSON.parse(suspended!.after!)).toEqual({ reason: 'late, "again", twice\nnew line' });
    expect(JSON.parse(suspended!.before!)).toEqual(json[1]!.before);
    expect(suspended).toMatchObject({ at: '2026-12-01T10:00:00.000Z', actor: 'operator:alice', action: 'participant.suspend', target: '1000000001', status: '200' });
  });

  it('takes the same filters as the JSON, and writes the header when nothing matches', async () => {
    const one = parse<Record<string, string>>((await get('/admin/journal?format=csv&actor=operator:bob')).text, { columns: true });
    expect(one.map((r) => r.target)).toEqual(['IF-021']);
    const none = await get('/admin/journal?format=csv&action=nothing.such');
    expect(none.text).toBe('id,at,actor,action,target,before,after,status\r\n');
    expect((await get('/admin/journal?format=xml')).status).toBe(400);
  });
});
