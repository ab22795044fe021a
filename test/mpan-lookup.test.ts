import { Readable } from 'node:stream';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLoadFile } from '../src/cli/mpan-load.js';
import { addressingDate, applyChange, changesFromMessage, holderAt, secondaryRecipients, type Appointment } from '../src/domain/mpan-lookup.js';
import { LeftOutLog } from '../src/pipeline/left-out-log.js';
import { buildIF021, mpanCore } from '../src/sim/messages.js';
import { buildIF001ChangeOfSupplier, buildIF036DataServiceActive } from '../src/sim/registration.js';
import { FakeClock, ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;
const day = (d: string) => Date.parse(`${d}T00:00:00Z`);

describe('MPAN lookup history (pure)', () => {
  const mpan = '1200000000009';
  it('an appointment closes the previous holder the moment before it starts, and keeps history', () => {
    let h: Appointment[] = [];
    h = applyChange(h, { kind: 'appoint', mpan, slot: 'SUP', dipId: 'OLD', fromMs: day('2020-01-01'), toMs: null });
    h = applyChange(h, { kind: 'appoint', mpan, slot: 'SUP', dipId: 'NEW', fromMs: day('2026-11-10'), toMs: null });
    expect(holderAt(h, 'SUP', day('2026-11-09'))).toBe('OLD');
    expect(holderAt(h, 'SUP', day('2026-11-10'))).toBe('NEW');
    expect(holderAt(h, 'SUP', day('2019-12-31'))).toBeUndefined();
    // Arriving out of order: an appointment between two known ones slots in.
    h = applyChange(h, { kind: 'appoint', mpan, slot: 'SUP', dipId: 'MID', fromMs: day('2024-01-01'), toMs: null });
    expect([holderAt(h, 'SUP', day('2023-06-01')), holderAt(h, 'SUP', day('2025-06-01')), holderAt(h, 'SUP', day('2026-12-01'))]).toEqual(['OLD', 'MID', 'NEW']);
    // The same change twice changes nothing.
    expect(applyChange(h, { kind: 'appoint', mpan, slot: 'SUP', dipId: 'MID', fromMs: day('2024-01-01'), toMs: null })).toEqual(h);
  });

  it('an end closes only the named holder', () => {
    let h = applyChange([], { kind: 'appoint', mpan, slot: 'DS', dipId: 'DS1', fromMs: day('2020-01-01'), toMs: null });
    h = applyChange(h, { kind: 'end', mpan, slot: 'DS', dipId: 'OTHER', toMs: day('2025-01-01') });
    expect(holderAt(h, 'DS', day('2026-01-01'))).toBe('DS1');
    h = applyChange(h, { kind: 'end', mpan, slot: 'DS', dipId: 'DS1', toMs: day('2025-01-01') });
    expect(holderAt(h, 'DS', day('2026-01-01'))).toBeUndefined();
    expect(holderAt(h, 'DS', day('2024-01-01'))).toBe('DS1');
  });

  it('secondary routing picks the holders whose roles receive on the channel', () => {
    let h: Appointment[] = [];
    h = applyChange(h, { kind: 'appoint', mpan, slot: 'SUP', dipId: 'S1', fromMs: 0, toMs: null });
    h = applyChange(h, { kind: 'appoint', mpan, slot: 'LDSO', dipId: 'L1', fromMs: 0, toMs: null });
    h = applyChange(h, { kind: 'appoint', mpan, slot: 'DS', dipId: 'D1', fromMs: 0, toMs: null });
    const roles: Record<string, string[]> = { S1: ['SUP'], L1: ['LDSO'], D1: ['SDS'] };
    expect(secondaryRecipients(['LSS', 'MDS', 'LDSO', 'SUP'], h, day('2026-01-01'), (id) => roles[id]).recipients).toEqual(['S1', 'L1']);
    expect(secondaryRecipients(['SDS', 'SUP'], h, day('2026-01-01'), (id) => roles[id]).recipients).toEqual(['S1', 'D1']);
    // A holder no longer registered in a receiving role is not sent to.
    expect(secondaryRecipients(['SUP'], h, day('2026-01-01'), () => ['MDS']).recipients).toEqual([]);
  });

  it('reads changes of supplier and appointments from registration messages, and IF-021 addressing dates', () => {
    const mpanId = mpanCore(7);
    const cos = buildIF001ChangeOfSupplier({ senderDipId: '6000000001', mpan: mpanId, distributorDipId: '3000000001', incomingSupplierDipId: '1000000002', outgoingSupplierDipId: '1000000001', effectiveFrom: new Date('2026-11-10T00:00:00Z') });
    expect(changesFromMessage(cos as never)).toEqual([
      { kind: 'appoint', mpan: mpanId, slot: 'LDSO', dipId: '3000000001', fromMs: 0, toMs: null },
      { kind: 'appoint', mpan: mpanId, slot: 'SUP', dipId: '1000000002', fromMs: day('2026-11-10'), toMs: null },
      { kind: 'end', mpan: mpanId, slot: 'SUP', dipId: '1000000001', toMs: day('2026-11-10') - 1000 },
    ]);
    const ds = buildIF036DataServiceActive({ senderDipId: '6000000001', mpan: mpanId, distributorDipId: '3000000001', supplierDipId: '1000000002', dataServiceDipId: '2000000002', effectiveFrom: new Date('2026-11-10T00:00:00Z') });
    expect(changesFromMessage(ds as never)).toContainEqual({ kind: 'appoint', mpan: mpanId, slot: 'DS', dipId: '2000000002', fromMs: day('2026-11-10'), toMs: null });
    const if021 = buildIF021({ senderDipId: '2000000001', senderRole: 'SDS', settlementDate: '2026-11-05' });
    expect(addressingDate(if021, 'CustomBlock.B900.settlementDayConsumptionPeriods[0].settlementDay.settlementDayDate', 42)).toBe(day('2026-11-05'));
    expect(addressingDate(if021, 'CustomBlock.nothing', 42)).toBe(42);
  });

  it('streams the bulk format in batches and names the bad line', async () => {
    const csv = ['mpan,slot,dip_id,effective_from,effective_to', ...Array.from({ length: 12 }, (_, i) => `${mpanCore(i)},SUP,1000000001,2020-01-01T00:00:00Z,`)].join('\n');
    const batches: number[] = [];
    for await (const b of readLoadFile(Readable.from([csv]), 5)) batches.push(b.length);
    expect(batches).toEqual([5, 5, 2]);
    const bad = 'mpan,slot,dip_id,effective_from,effective_to\n1200000000009,XX,1,2020-01-01,';
    await expect(async () => {
      for await (const _ of readLoadFile(Readable.from([bad]))) void _;
    }).rejects.toThrow(/line 2: slot 'XX'/);
  });
});

describe("the operators' warning of an unreached holder (MSG1033/MSG1034)", () => {
  it('is one line per (channel, holder, code) in a batch, counting its messages, and then throttled per key', async () => {
    const clock = new FakeClock();
    const lines: Array<Record<string, unknown>> = [];
    const log = new LeftOutLog(clock, { info() {}, error() {}, warn: (obj: object) => void lines.push(obj as Record<string, unknown>) });
    const u = (transactionId: string, holder: string, slot: string, code: string) => ({ transactionId, holder, slot, code });
    log.unreached('IF-021', [u('T1', 'H1', 'SUP', 'MSG1033'), u('T2', 'H1', 'LDSO', 'MSG1033'), u('T3', 'H1', 'SUP', 'MSG1034'), u('T4', 'H2', 'SUP', 'MSG1033')]);
    expect(lines).toEqual([
      { channel: 'IF-021', holder: 'H1', slot: 'SUP', code: 'MSG1033', messages: 2, transactionId: 'T1' },
      { channel: 'IF-021', holder: 'H1', slot: 'SUP', code: 'MSG1034', messages: 1, transactionId: 'T3' },
      { channel: 'IF-021', holder: 'H2', slot: 'SUP', code: 'MSG1033', messages: 1, transactionId: 'T4' },
    ]);
    // The same holder and code on another channel is its own; on the same channel it waits for the interval.
    log.unreached('IF-022', [u('T5', 'H1', 'SUP', 'MSG1033')]);
    log.unreached('IF-021', [u('T6', 'H1', 'SUP', 'MSG1033')]);
    expect(lines.map((l) => [l.channel, l.holder, l.code, l.messages])).toEqual([
      ['IF-021', 'H1', 'MSG1033', 2],
      ['IF-021', 'H1', 'MSG1034', 1],
      ['IF-021', 'H2', 'MSG1033', 1],
      ['IF-022', 'H1', 'MSG1033', 1],
    ]);
    await clock.advance(10 * 60_000);
    log.unreached('IF-021', [u('T7', 'H1', 'SUP', 'MSG1033')]);
    expect(lines[4]).toEqual({ channel: 'IF-021', holder: 'H1', slot: 'SUP', code: 'MSG1033', messages: 2, transactionId: 'T7' });
  });
});

/** Loads lookup entries through the operator API, as `dip mpan load` does; answers the operator token. */
async function loadLookup(t: TestDip, changes: Array<{ mpan: string; slot: string; dipId: string; effectiveFrom: string }>): Promise<string> {
  const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
  const load = await request(`http://127.0.0.1:${t.dip.adminPort}/admin/mpan/changes`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(changes),
  });
  expect(load.statusCode).toBe(200);
  return token;
}

describe('change of supplier end to end', () => {
  let t: TestDip;
  const ids = { regs: '6000000001', sds: '2000000001', oldSup: '1000000001', newSup: '1000000002', ldso: '3000000001', mds: '4000000001' };
  const p: Record<string, TestParticipant> = {};
  const calls: Record<string, Array<{ messages: unknown[] }>> = {};
  const got = (key: string) => calls[key]!.flatMap((c) => c.messages as Json[]);
  const mpan = mpanCore('cos-test');
  let admin: (method: 'GET' | 'POST', path: string, body?: unknown) => Promise<any>;

  beforeAll(async () => {
    t = await startTestDip({ channels: { 'IF-021': { obfuscation: { SUP: ['CustomBlock.B067'] } } } });
    for (const [key, role] of [['regs', 'REGS'], ['sds', 'SDS'], ['oldSup', 'SUP'], ['newSup', 'SUP'], ['ldso', 'LDSO'], ['mds', 'MDS']] as const) {
      p[key] = await t.participant(ids[key], [role]);
      const r = await t.receiver();
      calls[key] = r.calls;
      // Only the roles that receive on a channel may register for it; the others' 403s are expected.
      for (const ch of ['IF-001', 'IF-021']) await p[key].client.setWebhook(ch, ids[key], { callbackURL: `${r.url}${ch}` });
    }
    const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    admin = async (method, path, body) => {
      const res = await request(`http://127.0.0.1:${t.dip.adminPort}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return res.body.json();
    };
    // The initial load, as `dip mpan load` sends it: the old supplier, the distributor and the data service.
    await admin('POST', '/admin/mpan/changes', [
      { mpan, slot: 'SUP', dipId: ids.oldSup, effectiveFrom: '2020-01-01T00:00:00Z' },
      { mpan, slot: 'LDSO', dipId: ids.ldso, effectiveFrom: '2000-01-01T00:00:00Z' },
      { mpan, slot: 'DS', dipId: ids.sds, effectiveFrom: '2020-01-01T00:00:00Z' },
    ]);
  });
  afterAll(async () => {
    await t?.close();
  });

  const refsAt = (key: string, channel = 'IF-021') =>
    got(key).filter((m) => m.payload.CommonBlock.S0.interfaceID === channel).map((m) => m.payload.CommonBlock.S1.senderUniqueReference as string);

  it('routes IF-021 by MPAN to the supplier and distributor of its settlement day, before and after a change of supplier', async () => {
    const before = buildIF021({ senderDipId: ids.sds, senderRole: 'SDS', mpan, distributorDipId: ids.ldso, settlementDate: '2026-11-01', uniqueSuffix: 'before' });
    const a1 = await p.sds!.client.submit('IF-021', [before]);
    expect(a1.status).toBe(201);
    await waitFor(() => refsAt('oldSup').length === 1 && refsAt('ldso').length === 1 && refsAt('mds').length === 1, 5000, 'first IF-021');
    const delivered = got('oldSup').find((m) => m.payload.CommonBlock.S0.interfaceID === 'IF-021')!;
    expect(delivered.payload.CommonBlock.A0.secondaryRecipients).toEqual([ids.oldSup, ids.ldso]);

    // The registration service changes supplier from 10 November, and appoints the data service again.
    const cos = buildIF001ChangeOfSupplier({ senderDipId: ids.regs, mpan, distributorDipId: ids.ldso, incomingSupplierDipId: ids.newSup, outgoingSupplierDipId: ids.oldSup, effectiveFrom: new Date('2026-11-10T00:00:00Z'), primaryRecipients: [ids.newSup], uniqueSuffix: 'cos' });
    expect((await p.regs!.client.submit('IF-001', [cos])).status).toBe(201);
    const app = buildIF036DataServiceActive({ senderDipId: ids.regs, mpan, distributorDipId: ids.ldso, supplierDipId: ids.newSup, dataServiceDipId: ids.sds, effectiveFrom: new Date('2026-11-10T00:00:00Z'), primaryRecipients: [ids.sds], uniqueSuffix: 'dsapp' });
    expect((await p.regs!.client.submit('IF-036', [app])).status).toBe(201);
    await waitFor(() => refsAt('newSup', 'IF-001').length === 1, 5000, 'IF-001 at the new supplier');

    let history: Array<{ slot: string; dipId: string; effectiveFrom: string; effectiveTo: string | null }> = [];
    const poll = setInterval(() => void admin('GET', `/admin/mpan/${mpan}`).then((h) => (history = h)), 50);
    await waitFor(() => history.some((a) => a.slot === 'SUP' && a.dipId === ids.newSup), 5000, 'the lookup to learn the change').finally(() => clearInterval(poll));
    expect(history.filter((a) => a.slot === 'SUP')).toEqual([
      { slot: 'SUP', dipId: ids.oldSup, effectiveFrom: '2020-01-01T00:00:00.000Z', effectiveTo: '2026-11-09T23:59:59.000Z' },
      { slot: 'SUP', dipId: ids.newSup, effectiveFrom: '2026-11-10T00:00:00.000Z', effectiveTo: null },
    ]);

    // After the effective date: the new supplier. Late data for an earlier day: the old one.
    const after = buildIF021({ senderDipId: ids.sds, senderRole: 'SDS', mpan, distributorDipId: ids.ldso, settlementDate: '2026-11-15', uniqueSuffix: 'after' });
    const late = buildIF021({ senderDipId: ids.sds, senderRole: 'SDS', mpan, distributorDipId: ids.ldso, settlementDate: '2026-11-05', uniqueSuffix: 'late' });
    expect((await p.sds!.client.submit('IF-021', [after, late])).status).toBe(201);
    await waitFor(() => refsAt('newSup').length === 1 && refsAt('oldSup').length === 2 && refsAt('ldso').length === 3, 5000, 'routing after the change');
    expect(refsAt('newSup')).toEqual([after.payload.CommonBlock.S1.senderUniqueReference]);
    expect(refsAt('oldSup')).toEqual([before.payload.CommonBlock.S1.senderUniqueReference, late.payload.CommonBlock.S1.senderUniqueReference]);

    // Obfuscation: suppliers do not see B067; the distributor and MDS do.
    const supCopies = got('newSup').concat(got('oldSup')).filter((m) => m.payload.CommonBlock.S0.interfaceID === 'IF-021');
    expect(supCopies.every((m) => m.payload.CustomBlock.B067 === undefined)).toBe(true);
    const if021 = (key: string) => got(key).filter((m) => m.payload.CommonBlock.S0.interfaceID === 'IF-021');
    expect(if021('ldso')).toHaveLength(3);
    expect(if021('ldso').every((m) => m.payload.CustomBlock.B067 !== undefined)).toBe(true);
    expect(if021('mds').every((m) => m.payload.CustomBlock.B067 !== undefined)).toBe(true);
  });

  it('refuses IF-021 with MSG1038 when nobody is responsible for its MPAN and no one else would receive it', async () => {
    const t2 = await startTestDip();
    try {
      const sds = await t2.participant(ids.sds, ['SDS']);
      await t2.participant(ids.oldSup, ['SUP']);
      const item = buildIF021({ senderDipId: ids.sds, senderRole: 'SDS', mpan: mpanCore('nobody') });
      const answer = await sds.client.submit('IF-021', [item]);
      expect(answer.status).toBe(400);
      expect(answer.body.messageArray[0]!.message).toMatch(/^MSG1038/);
    } finally {
      await t2.close();
    }
  });

  it('refuses with MSG1033/MSG1034 naming the holder when the lookup names someone who cannot receive, not "nobody is responsible"', async () => {
    // The published codes for a secondary recipient that is not a participant, or holds no role that
    // receives: the sender (and the operator it calls) must learn that the lookup's entry is the problem.
    const t2 = await startTestDip();
    try {
      const sds = await t2.participant(ids.sds, ['SDS']);
      await t2.participant(ids.ldso, ['LDSO']);
      const unregistered = mpanCore('holder-unregistered');
      const wrongRole = mpanCore('holder-wrong-role');
      await loadLookup(t2, [
        { mpan: unregistered, slot: 'SUP', dipId: ids.newSup, effectiveFrom: '2020-01-01T00:00:00Z' },
        { mpan: wrongRole, slot: 'SUP', dipId: ids.ldso, effectiveFrom: '2020-01-01T00:00:00Z' },
      ]);
      const first = await sds.client.submit('IF-021', [buildIF021({ senderDipId: ids.sds, senderRole: 'SDS', mpan: unregistered })]);
      expect(first.status).toBe(400);
      expect(first.body.messageArray[0]).toMatchObject({
        message: 'MSG1033 - Secondary Recipient(s) DIP Participant ID Invalid',
        help: `item 0: M0.MPANCore ${unregistered}: the MPAN lookup names ${ids.newSup} as its SUP on the addressing date, which is not a registered DIP participant`,
      });
      const second = await sds.client.submit('IF-021', [buildIF021({ senderDipId: ids.sds, senderRole: 'SDS', mpan: wrongRole })]);
      expect(second.status).toBe(400);
      expect(second.body.messageArray[0]).toMatchObject({
        message: 'MSG1034 - Secondary Recipient(s) DIP Role ID Invalid',
        help: `item 0: M0.MPANCore ${wrongRole}: the MPAN lookup names ${ids.ldso} as its SUP on the addressing date, which holds LDSO, not SUP, the role receiving IF-021 in that capacity`,
      });
    } finally {
      await t2.close();
    }
  });

  it('accepts a message whose lookup names a holder who cannot receive beside one who can, telling the sender and the operator whom it left out', async () => {
    // The distributor receives; the supplier slot's holder is not a participant. The message goes to the
    // distributor, and the left-out holder is not silent: the 201's help names it with MSG1033, and
    // dip_mpan_holders_unreached_total counts it and a warning names it (before: 201 with help null,
    // nothing counted or logged).
    const warnings: Array<{ obj: Json; msg?: string }> = [];
    const logger = { info: () => {}, error: () => {}, warn: (obj: object, msg?: string) => void warnings.push({ obj, msg }) };
    const clock = new ShiftableClock();
    const t2 = await startTestDip({}, undefined, { logger, clock });
    try {
      const sds = await t2.participant(ids.sds, ['SDS']);
      const ldso = await t2.participant(ids.ldso, ['LDSO']);
      const r = await t2.receiver();
      await ldso.client.setWebhook('IF-021', ids.ldso, { callbackURL: `${r.url}IF-021` });
      const partly = mpanCore('holder-beside-others');
      const token = await loadLookup(t2, [
        { mpan: partly, slot: 'SUP', dipId: ids.newSup, effectiveFrom: '2020-01-01T00:00:00Z' },
        { mpan: partly, slot: 'LDSO', dipId: ids.ldso, effectiveFrom: '2000-01-01T00:00:00Z' },
      ]);
      const answer = await sds.client.submit('IF-021', [buildIF021({ senderDipId: ids.sds, senderRole: 'SDS', mpan: partly })]);
      expect(answer.status).toBe(201);
      expect(answer.body.messageArray).toHaveLength(1);
      expect(answer.body.messageArray[0]).toMatchObject({
        message: 'MSG0000 - Success',
        help: `accepted and routed to its other recipients; left out, with no copy: M0.MPANCore ${partly}: the MPAN lookup names ${ids.newSup} as its SUP on the addressing date, which is not a registered DIP participant (MSG1033)`,
      });
      await waitFor(() => r.calls.length === 1, 5000, 'the distributor\'s copy');
      const metrics = await (await fetch(`http://127.0.0.1:${t2.dip.adminPort}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
      expect(metrics).toContain('dip_mpan_holders_unreached_total{channel="IF-021",code="MSG1033"} 1');
      const warned = () => warnings.filter((w) => w.msg?.includes('MPAN lookup names a holder who cannot receive'));
      expect(warned().map((w) => w.obj)).toEqual([{ channel: 'IF-021', holder: ids.newSup, slot: 'SUP', code: 'MSG1033', messages: 1, transactionId: answer.body.messageArray[0]!.transactionID }]);
      // Logs carry no MPAN.
      expect(JSON.stringify(warned())).not.toContain(partly);
      // And the operator on call is told: the mpan-holder-unreached alarm names the holder, its slot and
      // code, with what to do (before: no alarm; the counter and the log line reached nobody).
      await t2.dip.alarms!.evaluate();
      const alarms = (await (await fetch(`http://127.0.0.1:${t2.dip.adminPort}/admin/alarms`, { headers: { authorization: `Bearer ${token}` } })).json()) as { alarms: Json[] };
      const alarm = alarms.alarms.find((a) => a.rule === 'mpan-holder-unreached');
      expect(alarm).toMatchObject({
        participant: null,
        summary: `holders the MPAN lookup names got no copy of accepted messages in the last 60 min: ${ids.newSup} as SUP on IF-021 (MSG1033, not a registered participant; 1 message)`,
        action: expect.stringMatching(/^register the participant \/ give it the role, or correct the MPAN lookup feed/),
      });
      expect(JSON.stringify(alarm)).not.toContain(partly);
      // A burst of batches leaving the same holder out is that one warning, not a line per batch (before: a
      // line per accepted batch, which at IF-021's volume buried the log), and ten minutes on one more line
      // says how many messages left it out since.
      const item = () => buildIF021({ senderDipId: ids.sds, senderRole: 'SDS', mpan: partly });
      for (let i = 0; i < 5; i++) expect((await sds.client.submit('IF-021', [item(), item()])).status).toBe(201);
      expect(warned(), 'one line for the burst').toHaveLength(1);
      clock.jump(10 * 60_000);
      expect((await sds.client.submit('IF-021', [item()])).status).toBe(201);
      expect(warned().map((w) => w.obj)).toEqual([expect.anything(), expect.objectContaining({ channel: 'IF-021', holder: ids.newSup, code: 'MSG1033', messages: 11 })]);
      expect(warned()[1]!.msg).toContain('11 message(s) in the last 10 min');
    } finally {
      await t2.close();
    }
  });
});
