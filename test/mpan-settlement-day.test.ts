/**
 * Spec 5.5.14: late, defaulted and rejected consumption goes to whoever was responsible on its settlement
 * day, not on the day it arrives; and the DIP maintains the lookup's MDR slot from the registration
 * service's messages, as it does the supplier, data service and metering service slots.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { exampleMessage, submittable } from '../src/catalogue/examples.js';
import { addressingDate, changesFromMessage } from '../src/domain/mpan-lookup.js';
import { DEFAULT_ADDRESSING_DATES, DEFAULT_MPAN_FEEDS, channelRouting } from '../src/pipeline/channels.js';
import { mpanCore } from '../src/sim/messages.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;
const catalogue = Catalogue.load();
const day = (d: string) => Date.parse(`${d}T00:00:00Z`);

/** The catalogue's example of an event, as `senderDipId` would submit it about `mpan`. */
function example(id: string, event: string, o: { environment?: string; senderDipId?: string; senderRole?: string; mpan?: string; distributor?: string; suffix?: string } = {}): Json {
  const who = o.senderDipId ? { senderDipId: o.senderDipId, senderRole: o.senderRole!, primaryRecipients: [], now: new Date(), uniqueSuffix: o.suffix ?? 'x1' } : undefined;
  const m = submittable(exampleMessage(catalogue.schema(id)!, event), o.environment ?? 'DEV', who) as Json;
  if (o.mpan) m.payload.CommonBlock.M0.MPANCore = o.mpan;
  if (o.distributor) m.payload.CommonBlock.M0.distributorDIPID = o.distributor;
  return m;
}

describe('settlement-day addressing and the MDR slot (pure)', () => {
  it('addresses defaulted (IF-013), rejected (IF-014), late (IF-021) and MDR-retrieved (IF-064) consumption by its settlement day', () => {
    // Before: IF-021 only, so IF-013 and IF-014 went to whoever was responsible on the day they arrived.
    expect(Object.keys(DEFAULT_ADDRESSING_DATES).sort()).toEqual(['IF-013', 'IF-014', 'IF-021', 'IF-064']);
    for (const [id, path] of Object.entries(DEFAULT_ADDRESSING_DATES)) {
      const def = catalogue.channel(id)!;
      // Only channels routed by MPAN lookup have anything to address by date.
      expect(def.routingModes, id).toContain('secondary');
      expect(channelRouting(def, undefined, 1).addressingDatePath, id).toBe(path);
      // The path names the settlement day in the published schema, for every event code of the channel.
      for (const event of def.eventCodes) {
        const m = example(id, event);
        expect(addressingDate(m as { payload: unknown }, path, 42), `${id} [${event}]`).toBe(Date.parse('2026-01-31T00:00:00+00:00'));
      }
    }
  });

  it('reads the MDR the registration service assigns (B019, B066, B092) and the MDR end (B083)', () => {
    const mpan = mpanCore('mdr-pure');
    const from = '2026-11-10T00:00:00+00:00';
    const sdsOutcome = example('IF-035', 'SDS-MDROutcome', { mpan, distributor: '3000000001' });
    sdsOutcome.payload.CustomBlock.B092 = { assignedMDRDIPID: '7000000001', assignedMDRMPID: 'MDRA', assignedMDREffectiveFromDate: from };
    // Before: only the distributor (M0) was read; the MDR slot was never maintained from messages.
    expect(changesFromMessage(sdsOutcome as never)).toEqual([
      { kind: 'appoint', mpan, slot: 'LDSO', dipId: '3000000001', fromMs: 0, toMs: null },
      { kind: 'appoint', mpan, slot: 'MDR', dipId: '7000000001', fromMs: day('2026-11-10'), toMs: null },
    ]);
    const dccOutcome = example('IF-035', 'DCC-MDROutcome', { mpan });
    dccOutcome.payload.CustomBlock.B066 = { ...dccOutcome.payload.CustomBlock.B066, assignedMDRDIPID: '7000000002', assignedMDREffectiveFromDate: from, responseCode: 'A' };
    expect(changesFromMessage(dccOutcome as never)).toContainEqual({ kind: 'appoint', mpan, slot: 'MDR', dipId: '7000000002', fromMs: day('2026-11-10'), toMs: null });
    const active = example('IF-036', 'DSAppActive', { mpan });
    active.payload.CustomBlock.B019 = { assignedMDRDIPID: '7000000003', assignedMDRMPID: 'MDRC', assignedMDREffectiveFromDate: from };
    expect(changesFromMessage(active as never)).toContainEqual({ kind: 'appoint', mpan, slot: 'MDR', dipId: '7000000003', fromMs: day('2026-11-10'), toMs: null });
    const stop = example('IF-063', 'MDRStop', { mpan });
    stop.payload.CustomBlock.B083 = { assignedMDRDIPID: '7000000001', assignedMDRMPID: 'MDRA', assignedMDREffectiveToDate: '2026-11-20T23:59:59+00:00' };
    expect(changesFromMessage(stop as never)).toContainEqual({ kind: 'end', mpan, slot: 'MDR', dipId: '7000000001', toMs: Date.parse('2026-11-20T23:59:59Z') });
  });

  it('takes no MDR from an outcome the registration service rejected or let lapse (DI-979 R or L)', () => {
    const mpan = mpanCore('mdr-rejected');
    for (const code of ['R', 'L']) {
      const sds = example('IF-035', 'SDS-MDROutcome', { mpan });
      sds.payload.CustomBlock.B099 = { responseCode: code, responseMessages: ['REG1081'] };
      expect(changesFromMessage(sds as never).filter((c) => c.slot === 'MDR'), `B099 ${code}`).toEqual([]);
      const dcc = example('IF-035', 'DCC-MDROutcome', { mpan });
      dcc.payload.CustomBlock.B066.responseCode = code;
      expect(changesFromMessage(dcc as never).filter((c) => c.slot === 'MDR'), `B066 ${code}`).toEqual([]);
    }
  });

  it('feeds the lookup from the registration service, not from the SDS-to-MDR requests (IF-061 to IF-063)', () => {
    // The registration service's MDR outcomes and appointments ride on IF-035 and IF-036, already feeds.
    // IF-061..063 come from a data service or an MDR: as feeds, any SDS could name any MDR (and, through
    // M0, any distributor) for any MPAN, and the DIP would send that MPAN's registration data there.
    expect(['IF-035', 'IF-036'].every((id) => DEFAULT_MPAN_FEEDS.has(id))).toBe(true);
    expect(['IF-061', 'IF-062', 'IF-063'].some((id) => DEFAULT_MPAN_FEEDS.has(id))).toBe(false);
  });
});

describe('settlement-day addressing and the MDR slot on a running DIP', () => {
  let t: TestDip;
  const ids = { regs: '6000000001', mds: '4000000001', oldSup: '1000000001', newSup: '1000000002', oldDs: '2000000001', newDs: '2000000002', ldso: '3000000001', mdr: '7000000001' };
  const p: Record<string, TestParticipant> = {};
  const calls: Record<string, Array<{ messages: unknown[] }>> = {};
  const refsAt = (key: string, channel: string) =>
    calls[key]!.flatMap((c) => c.messages as Json[])
      .filter((m) => m.payload.CommonBlock.S0.interfaceID === channel)
      .map((m) => m.payload.CommonBlock.S1.senderUniqueReference as string);
  const mpan = mpanCore('settlement-day');
  let admin: ReturnType<typeof adminApi>;

  beforeAll(async () => {
    t = await startTestDip();
    const roles = { regs: 'REGS', mds: 'MDS', oldSup: 'SUP', newSup: 'SUP', oldDs: 'SDS', newDs: 'SDS', ldso: 'LDSO', mdr: 'MDR' } as const;
    for (const [key, role] of Object.entries(roles)) {
      p[key] = await t.participant(ids[key as keyof typeof ids], [role]);
      const r = await t.receiver();
      calls[key] = r.calls;
      // Only the roles that receive on a channel may register for it; the others' 403s are expected.
      for (const ch of ['IF-013', 'IF-014', 'IF-024']) await p[key].client.setWebhook(ch, ids[key as keyof typeof ids], { callbackURL: `${r.url}${ch}` });
    }
    admin = adminApi(t);
    // A change of supplier and of data service on 10 November.
    const load = await admin('POST', '/admin/mpan/changes', [
      { mpan, slot: 'SUP', dipId: ids.oldSup, effectiveFrom: '2020-01-01T00:00:00Z' },
      { mpan, slot: 'SUP', dipId: ids.newSup, effectiveFrom: '2026-11-10T00:00:00Z' },
      { mpan, slot: 'DS', dipId: ids.oldDs, effectiveFrom: '2020-01-01T00:00:00Z' },
      { mpan, slot: 'DS', dipId: ids.newDs, effectiveFrom: '2026-11-10T00:00:00Z' },
      { mpan, slot: 'LDSO', dipId: ids.ldso, effectiveFrom: '2000-01-01T00:00:00Z' },
    ]);
    expect(load.status).toBe(200);
  });
  afterAll(async () => {
    await t?.close();
  });

  const consumption = (id: 'IF-013' | 'IF-014', event: string, settlementDay: string, suffix: string): Json => {
    const m = example(id, event, { environment: t.config.environment, senderDipId: ids.mds, senderRole: 'MDS', mpan, distributor: ids.ldso, suffix });
    const periods = id === 'IF-013' ? m.payload.CustomBlock.B920List[0].settlementDayConsumptionPeriods : m.payload.CustomBlock.B900.settlementDayConsumptionPeriods;
    periods[0].settlementDay.settlementDayDate = settlementDay;
    return m;
  };

  it('sends rejected (IF-014) and defaulted (IF-013) consumption for a day before the change to the parties of that day', async () => {
    // Before: both went to the new supplier and data service (addressed by the time of receipt), which
    // thereby got the old parties' consumption.
    for (const [id, event] of [['IF-014', 'ActivePowerRejected'], ['IF-013', 'ActivePowerDefaulted']] as const) {
      const late = consumption(id, event, '2026-11-05T00:00:00+00:00', `${id.slice(3)}late`);
      const after = consumption(id, event, '2026-11-15T00:00:00+00:00', `${id.slice(3)}after`);
      const answer = await p.mds!.client.submit(id, [late, after]);
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      const [lateRef, afterRef] = [late, after].map((m) => m.payload.CommonBlock.S1.senderUniqueReference as string);
      await waitFor(() => refsAt('oldSup', id).length + refsAt('newSup', id).length === 2 && refsAt('oldDs', id).length + refsAt('newDs', id).length === 2, 20_000, `${id} copies`);
      expect(refsAt('oldSup', id), id).toEqual([lateRef]);
      expect(refsAt('oldDs', id), id).toEqual([lateRef]);
      expect(refsAt('newSup', id), id).toEqual([afterRef]);
      expect(refsAt('newDs', id), id).toEqual([afterRef]);
    }
  });

  it('learns the MDR the registration service assigns (IF-035 SDS-MDROutcome) and routes to it by MPAN', async () => {
    const outcome = example('IF-035', 'SDS-MDROutcome', { environment: t.config.environment, senderDipId: ids.regs, senderRole: 'REGS', mpan, distributor: ids.ldso, suffix: 'mdrout' });
    outcome.payload.CommonBlock.A0.primaryRecipients = [ids.newDs];
    outcome.payload.CustomBlock.B092 = { assignedMDRDIPID: ids.mdr, assignedMDRMPID: 'MDRA', assignedMDREffectiveFromDate: '2026-11-10T00:00:00+00:00' };
    const sent = await p.regs!.client.submit('IF-035', [outcome]);
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    // Before: the lookup never held an MDR for the MPAN.
    let history: Json[] = [];
    await waitFor(async () => (history = (await admin('GET', `/admin/mpan/${mpan}`)).body as Json[]).some((a) => a.slot === 'MDR'), 20_000, 'the lookup to learn the MDR');
    expect(history.filter((a) => a.slot === 'MDR')).toEqual([{ slot: 'MDR', dipId: ids.mdr, effectiveFrom: '2026-11-10T00:00:00.000Z', effectiveTo: null }]);
    // A supplier's advisory to the data service and MDR (IF-024), addressed by the DIP: the MDR gets it.
    const advisory = example('IF-024', 'SN-Vacant', { environment: t.config.environment, senderDipId: ids.newSup, senderRole: 'SUP', mpan, distributor: ids.ldso, suffix: 'vacant' });
    const a = await p.newSup!.client.submit('IF-024', [advisory]);
    expect(a.status, JSON.stringify(a.body)).toBe(201);
    await waitFor(() => refsAt('mdr', 'IF-024').length === 1 && refsAt('newDs', 'IF-024').length === 1, 20_000, 'IF-024 at the MDR and the data service');
  });
});
