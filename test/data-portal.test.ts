/**
 * The data portal (spec 5.9, issue 12 item 2) over the participant listener's mutual TLS: every interface
 * and event code with its fields, data items, roles and flows; the data dictionary; search; the JSON API
 * behind the pages; and pages under a Content-Security-Policy that allows no script at all.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { BUSINESS_FLOWS } from '../src/catalogue/business-flows.js';
import { agentFor, startHostileDip, type HostileDip } from './hostile/helpers.js';
import { cliRuns } from './helpers/cli-budget.js';

type Json = Record<string, any>;

describe('the data portal', () => {
  let h: HostileDip;
  const get = async (path: string) => {
    const res = await agentFor(h.t, h.sds).request({ origin: h.t.dip.url, path, method: 'GET' });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as unknown };
  };
  beforeAll(async () => {
    h = await startHostileDip();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('lists every interface of the catalogue, as HTML under a script-free CSP and as JSON', async () => {
    const catalogue = Catalogue.load();
    const index = await get('/catalogue');
    expect(index.status).toBe(200);
    expect(index.headers['content-type']).toContain('text/html');
    const csp = String(index.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/script-src/);
    expect(index.text).not.toContain('<script');
    expect(index.text).toContain('<html lang="en">');
    for (const c of catalogue.channels()) expect(index.text).toContain(`/catalogue/interfaces/${c.interfaceId}"`);
    const api = (await get('/catalogue/api/interfaces')).json() as Json[];
    expect(api.map((c) => c.interfaceId).sort()).toEqual(catalogue.channels().map((c) => c.interfaceId).sort());
    const css = await get('/catalogue/style.css');
    expect(css.status).toBe(200);
    expect(css.headers['content-type']).toContain('text/css');
  });

  it('shows each interface: event codes, blocks, fields with their data items, types and patterns, roles and flows', async () => {
    const page = await get('/catalogue/interfaces/if-021');
    expect(page.status).toBe(200);
    expect(page.text).toContain('IF-021: UTC Settlement Period Consumption Data');
    expect(page.text).toContain('Event code [ActivePower]');
    expect(page.text).toContain('POST /validate/IF-021/ActivePower');
    expect(page.text).toContain('<code class="req">senderUniqueReference</code>');
    expect(page.text).toMatch(/pattern \^S-/); // the sender unique reference's published pattern
    expect(page.text).toContain('href="/catalogue/flows#settlement-consumption"');
    const v = (await get('/catalogue/api/interfaces/IF-021')).json() as Json;
    expect(v.senderRoles.length).toBeGreaterThan(0);
    expect(v.receiverRoles.length).toBeGreaterThan(0);
    const s1 = (v.events[0].blocks as Json[]).find((b) => b.block === 'S1')!;
    expect(s1).toMatchObject({ part: 'CommonBlock', required: true });
    expect((s1.fields as Json[]).find((f) => f.name === 'senderUniqueReference')).toMatchObject({ required: true, definition: 'DT-995-SenderUniqueReference', type: 'string' });
    const custom = (v.events[0].blocks as Json[]).filter((b) => b.part === 'CustomBlock');
    expect(custom.length).toBeGreaterThan(0);
    // Every field's data item or type is in the dictionary, and every interface page renders.
    const dictionary = new Set(((await get('/catalogue/api/data-items')).json() as Json[]).map((d) => d.code));
    const walk = (fields: Json[]): Json[] => fields.flatMap((f) => [f, ...walk(f.fields ?? [])]);
    for (const c of Catalogue.load().channels()) {
      const view = (await get(`/catalogue/api/interfaces/${c.interfaceId}`)).json() as Json;
      expect(view.events.map((e: Json) => e.eventCode)).toEqual(c.eventCodes);
      for (const f of walk((view.events as Json[]).flatMap((e) => (e.blocks as Json[]).flatMap((b) => b.fields as Json[])))) {
        if (f.definition) expect(dictionary, `${c.interfaceId} ${f.name}`).toContain(/^(D[IT]-\d+[A-Z]?)/.exec(f.definition)![1]);
      }
      expect((await get(`/catalogue/interfaces/${c.interfaceId}`)).status).toBe(200);
    }
    expect((await get('/catalogue/interfaces/IF-999')).status).toBe(404);
    expect((await get('/catalogue/api/interfaces/IF-999')).status).toBe(404);
  });

  it('shows an example message per interface and event code, and the DIP\'s own validator accepts every one', async () => {
    const catalogue = Catalogue.load();
    let examples = 0;
    for (const c of catalogue.channels()) {
      const view = (await get(`/catalogue/api/interfaces/${c.interfaceId}`)).json() as Json;
      for (const e of view.events as Json[]) {
        const result = catalogue.validate(c.interfaceId, e.example);
        expect(result.ok ? [] : result.errors, `${c.interfaceId} [${e.eventCode}]`).toEqual([]);
        expect(result.ok && result.eventCode, `${c.interfaceId} [${e.eventCode}]`).toBe(e.eventCode);
        examples += 1;
      }
    }
    expect(examples).toBe(catalogue.channels().reduce((n, c) => n + c.eventCodes.length, 0));
    // On the page, escaped, under its event code; and over the wire the validation endpoint says 201.
    const page = await get('/catalogue/interfaces/IF-021');
    expect(page.text).toContain('<h3 id="example-ReactivePower">Example message</h3>');
    expect(page.text).toContain('&#34;eventCode&#34;: &#34;[ReactivePower]&#34;');
    const view = (await get('/catalogue/api/interfaces/IF-021')).json() as Json;
    const example = structuredClone(view.events[0].example) as Json;
    // As the data service that sends IF-021 would send it: its own DIP ID and role in S1, its recipient in A0.
    Object.assign(example.payload.CommonBlock.S1, { senderDIPID: h.sds.dipId, senderRoleID: 'SDS' });
    example.payload.CommonBlock.A0.primaryRecipients = [h.sup.dipId];
    const answer = await h.sds.client.call('POST', `/validate/IF-021/${view.events[0].eventCode}`, JSON.stringify([example]));
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  });

  it("serves examples a participant of this DIP can send once it puts in its own IDs: this DIP's environment tag, no D0, no connection provider", async () => {
    const dev = (await get('/catalogue/api/interfaces/IF-031')).json() as Json;
    for (const e of dev.events as Json[]) {
      const common = e.example.payload.CommonBlock;
      expect(common.S1, e.eventCode).toMatchObject({ environmentTag: 'DEV', DIPConnectionProviderID: null });
      expect(common.D0, e.eventCode).toBeUndefined();
      expect([common.A0.secondaryRecipients, common.A0.always], e.eventCode).toEqual([[], []]);
    }
    expect((await get('/catalogue/interfaces/IF-031')).text).toContain('&#34;environmentTag&#34;: &#34;DEV&#34;');
    // The tester's case: the supplier sends the portal's IF-031 [MSApp] to a registration service.
    const regs = await h.t.participant('6000000001', ['REGS']);
    const example = structuredClone((dev.events as Json[]).find((e) => e.eventCode === 'MSApp')!.example) as Json;
    Object.assign(example.payload.CommonBlock.S1, { senderDIPID: h.sup.dipId, senderRoleID: 'SUP', senderUniqueReference: `S-IF-031-${h.sup.dipId}-SUP-20260131-p${process.pid}` });
    example.payload.CommonBlock.A0.primaryRecipients = [regs.dipId];
    const body = JSON.stringify([example]);
    const dry = await h.sup.client.call('POST', '/validate/IF-031/MSApp', body);
    expect(dry.status, JSON.stringify(dry.body)).toBe(201);
    const sent = await h.sup.client.call('POST', '/dip-channel/IF-031', body);
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
  });

  it('`dip example` builds a message of any channel that this DIP accepts as it is', cliRuns(2), async () => {
    const regs = await h.t.participant('6000000002', ['REGS']);
    const dataDir = mkdtempSync(join(tmpdir(), 'dip-example-'));
    const example = (...args: string[]) =>
      new Promise<string>((done, fail) =>
        execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'example', ...args], { env: { ...process.env, DIP_DATA_DIR: dataDir, DIP_ENV: 'DEV' } }, (err, stdout, stderr) =>
          err ? fail(new Error(`${err.message}: ${stderr}`)) : done(stdout),
        ),
      );
    const body = await example('IF-031', '--event', 'DSApp', '--sender', h.sup.dipId, '--to', regs.dipId);
    const [message] = JSON.parse(body) as Json[];
    expect(message!.payload.CommonBlock.S0.eventCode).toBe('[DSApp]');
    expect(message!.payload.CommonBlock.S1).toMatchObject({ environmentTag: 'DEV', senderDIPID: h.sup.dipId, senderRoleID: 'SUP', DIPConnectionProviderID: null });
    const sent = await h.sup.client.call('POST', '/dip-channel/IF-031', body);
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    // Each run makes a new reference: the same command again is a new message, not a duplicate.
    expect((await h.sup.client.call('POST', '/dip-channel/IF-031', await example('IF-031', '--event', 'DSApp', '--sender', h.sup.dipId, '--to', regs.dipId))).status).toBe(201);
    await expect(example('IF-999', '--sender', h.sup.dipId)).rejects.toThrow(/IF-999 is not a channel/);
  });

  it('has the data dictionary with each data item’s type and constraints, and the interfaces using it', async () => {
    const page = await get('/catalogue/data-items');
    expect(page.status).toBe(200);
    expect(page.text).toContain('id="DI-015"');
    const items = (await get('/catalogue/api/data-items')).json() as Json[];
    expect(items.find((d) => d.code === 'DI-015')).toMatchObject({ kind: 'data item', title: 'Connection Type Indicator', constraints: [expect.stringContaining('exactly 1 characters'), expect.stringContaining('"W"')] });
    expect(items.find((d) => d.code === 'DT-002')!.interfaces).toContain('IF-021');
  });

  it('links interfaces in business flows', async () => {
    const page = await get('/catalogue/flows');
    expect(page.status).toBe(200);
    const flows = (await get('/catalogue/api/flows')).json() as Json[];
    expect(flows).toHaveLength(BUSINESS_FLOWS.length);
    const ids = new Set(Catalogue.load().channels().map((c) => c.interfaceId));
    for (const f of flows) for (const s of f.steps) expect(ids, `${f.id}: ${s.interfaceId}`).toContain(s.interfaceId);
    expect(page.text).toContain('href="/catalogue/interfaces/IF-031"');
  });

  it('searches interfaces, event codes, roles, fields and data items; every word must match', async () => {
    const byEvent = (await get('/catalogue/api/search?q=activepower')).json() as Json;
    expect(byEvent.interfaces.map((c: Json) => c.interfaceId)).toContain('IF-021');
    const byItem = (await get('/catalogue/api/search?q=connection%20type')).json() as Json;
    expect(byItem.dataItems.map((d: Json) => d.code)).toContain('DI-015');
    const none = (await get('/catalogue/api/search?q=activepower%20zzzz')).json() as Json;
    expect(none.interfaces).toEqual([]);
    const html = await get('/catalogue?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E');
    expect(html.status).toBe(200);
    expect(html.text).not.toContain('<script>');
    expect(html.text).toContain('&#60;script&#62;');
    expect(html.text).toContain('0 interface(s)');
  });
});
