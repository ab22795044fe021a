import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { secondaryRecipients, type Appointment } from '../src/domain/mpan-lookup.js';
import { route } from '../src/domain/routing.js';
import { channelRouting } from '../src/pipeline/channels.js';
import { RecipientCopies } from '../src/pipeline/recipient-copy.js';
import { buildIF021, mpanCore } from '../src/sim/messages.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { directoryOf, person, routingHeader } from './helpers/routing.js';

type Json = Record<string, any>;

/**
 * Spec 5.5.6: fields a receiving role may not see are removed from its copy. A participant holding two
 * receiving roles (here a supplier that is also a distributor) was given the copy for whichever of them
 * saw more, whatever capacity the message reached it in: routed to it as the MPAN's distributor, it saw
 * what only suppliers may. The copy follows the capacity routing reached it in.
 */
const DUAL = '1000000001'; // SUP and LDSO
const SUP = '1000000002';
const SDS = '2000000001';
const MDS = '5000000001';
const rules = { LDSO: ['CustomBlock.B067'] };
const if021 = () => channelRouting(Catalogue.load().channel('IF-021')!, { obfuscation: rules }, 60_000);

const people = [person(DUAL, ['SUP', 'LDSO']), person(SUP, ['SUP']), person(SDS, ['SDS']), person(MDS, ['MDS'])];
const dir = directoryOf(people);
const header = (primaryRecipients: string[]) => routingHeader({ senderDipId: SDS, primaryRecipients, mpan: '1200000000001' });
const lookup = (history: Appointment[]) => ({ enabled: true, ...secondaryRecipients(if021().receiverRoles, history, 1, (id) => dir.participant(id)?.roles) });
const appointed = (slot: Appointment['slot'], dipId: string): Appointment => ({ mpan: '1200000000001', slot, dipId, fromMs: 0, toMs: null });

/** No certificate revoked, and a clock within every test certificate's validity: what is stripped is the question here. */
const NOT_REVOKED = { revoked: () => undefined, now: () => Date.parse('2026-12-05T12:00:00Z') };

describe('the capacity routing reaches each recipient in (pure)', () => {
  it('is the slot for an MPAN lookup, the always role for always routing, the receiving roles for a primary recipient', () => {
    const decision = route(if021(), header([]), dir, lookup([appointed('SUP', SUP), appointed('LDSO', DUAL)]));
    expect(decision).toMatchObject({ ok: true, capacities: { [SUP]: 'SUP', [DUAL]: 'LDSO', [MDS]: 'MDS' } });
    // Named by the sender: in its roles that receive on the channel (the sender chose it, not a capacity).
    expect(route(if021(), header([DUAL]), dir)).toMatchObject({ ok: true, capacities: { [DUAL]: 'LDSO,SUP' } });
  });

  it('is the union of the capacities of a recipient reached more than once, which gets one copy', () => {
    // The lookup's distributor, and named as primary recipient too.
    const decision = route(if021(), header([DUAL]), dir, lookup([appointed('SUP', SUP), appointed('LDSO', DUAL)]));
    expect(decision).toMatchObject({ ok: true, recipients: [DUAL, SUP, MDS], capacities: { [DUAL]: 'LDSO,SUP', [SUP]: 'SUP' } });
    // The holder of two slots.
    expect(route(if021(), header([]), dir, lookup([appointed('SUP', DUAL), appointed('LDSO', DUAL)]))).toMatchObject({ ok: true, capacities: { [DUAL]: 'LDSO,SUP' } });
  });

  it('is, for an always role that does not receive on the channel, the roles the holder receives in', async () => {
    // An operator may always route a role the channel has no receiving rule for (here ISD on IF-021):
    // recorded as "ISD", no obfuscation rule would apply and a supplier that is also an ISD would see
    // what suppliers may not; before capacities, its copy was stripped for the roles it receives in.
    const ISD_SUP = '1000000003';
    const supRules = { SUP: ['CustomBlock.B067'] };
    const def = Catalogue.load().channel('IF-021')!;
    const channel = channelRouting(def, { obfuscation: supRules, alwaysRoles: [...if021().alwaysRoles, 'ISD'] }, 60_000);
    expect(channel.receiverRoles).not.toContain('ISD');
    const withIsd = directoryOf([...people, person(ISD_SUP, ['SUP', 'ISD'])]);
    const decision = route(channel, header([]), withIsd);
    expect(decision).toMatchObject({ ok: true, capacities: { [ISD_SUP]: 'SUP' } });
    const copies = new RecipientCopies((id) => (id === channel.interfaceId ? channel : undefined), { participant: (id) => withIsd.participant(id) }, NOT_REVOKED);
    const outbound = JSON.stringify({ payload: { CustomBlock: { B067: { x: 1 }, B900: {} } } });
    const capacity = decision.ok ? decision.capacities[ISD_SUP]! : null;
    expect(JSON.parse(await copies.copyFor({ recipientDipId: ISD_SUP, channel: 'IF-021' }, { outbound, capacity, securityPattern: null }))).toEqual({ payload: { CustomBlock: { B900: {} } } });
  });
});

describe('a recipient copy obfuscated for the capacity its entry recorded', () => {
  const channel = if021();
  const copies = new RecipientCopies((id) => (id === channel.interfaceId ? channel : undefined), { participant: (id) => dir.participant(id) }, NOT_REVOKED);
  const queue = { recipientDipId: DUAL, channel: 'IF-021' };
  const outbound = JSON.stringify({ payload: { CustomBlock: { B067: { x: 1 }, B900: {} } } });

  it('hides what the routed capacity may not see, though another role the recipient holds may', async () => {
    expect(JSON.parse(await copies.copyFor(queue, { outbound, capacity: 'LDSO', securityPattern: null }))).toEqual({ payload: { CustomBlock: { B900: {} } } });
    expect(JSON.parse(await copies.copyFor(queue, { outbound, capacity: 'LDSO,SUP', securityPattern: null }))).toEqual({ payload: { CustomBlock: { B067: { x: 1 }, B900: {} } } });
  });

  it('keeps the rule of its time for an entry queued before capacities were recorded: every receiving role the recipient holds', async () => {
    expect(JSON.parse(await copies.copyFor(queue, { outbound, capacity: null, securityPattern: null }))).toEqual({ payload: { CustomBlock: { B067: { x: 1 }, B900: {} } } });
  });
});

describe('obfuscation by routed capacity on a running DIP, by pull', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let dual: TestParticipant;
  const mpan = mpanCore('capacity');

  beforeAll(async () => {
    t = await startTestDip({ channels: { 'IF-021': { obfuscation: rules } } });
    sds = await t.participant(SDS, ['SDS']);
    dual = await t.participant(DUAL, ['SUP', 'LDSO']);
    await t.participant(SUP, ['SUP']);
    const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    const load = await request(`http://127.0.0.1:${t.dip.adminPort}/admin/mpan/changes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify([
        { mpan, slot: 'SUP', dipId: SUP, effectiveFrom: '2020-01-01T00:00:00Z' },
        { mpan, slot: 'LDSO', dipId: DUAL, effectiveFrom: '2000-01-01T00:00:00Z' },
      ]),
    });
    expect(load.statusCode).toBe(200);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** The one copy waiting for the dual-role participant, pulled and acknowledged. */
  const pullOne = async (): Promise<Json> => {
    const page = await dual.client.pull('IF-021', DUAL);
    expect(page.status).toBe(200);
    expect(page.body).toHaveLength(1);
    expect((await dual.client.ack('IF-021', DUAL, page.lastSeq!)).status).toBe(200);
    return (page.body as Json[])[0]!;
  };

  it("gives the MPAN's distributor the distributor's copy, though it is a supplier too", async () => {
    expect((await sds.client.submit('IF-021', [buildIF021({ senderDipId: SDS, senderRole: 'SDS', mpan, uniqueSuffix: 'lookup' })])).status).toBe(201);
    const copy = await pullOne();
    expect(copy.payload.CommonBlock.A0.secondaryRecipients).toEqual([SUP, DUAL]);
    expect(copy.payload.CustomBlock.B067).toBeUndefined();
    expect(copy.payload.CustomBlock.B900).toBeDefined();
  });

  it('gives one copy, for both capacities, to the distributor the sender also names as primary recipient', async () => {
    const named = buildIF021({ senderDipId: SDS, senderRole: 'SDS', mpan, primaryRecipients: [DUAL], uniqueSuffix: 'named' });
    expect((await sds.client.submit('IF-021', [named])).status).toBe(201);
    const copy = await pullOne();
    expect(copy.payload.CommonBlock.A0.primaryRecipients).toEqual([DUAL]);
    expect(copy.payload.CustomBlock.B067).toBeDefined();
  });

  it('replays and requeues each copy in the capacity it was routed in', async () => {
    const filter = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00' };
    const replayed = await dual.client.replay('IF-021', DUAL, filter);
    expect(replayed.status).toBe(200);
    // Oldest first: the lookup's (as distributor), then the one named to it (as both).
    expect((replayed.body as Json[]).map((m) => m.payload.CustomBlock.B067 !== undefined)).toEqual([false, true]);
    expect((await dual.client.requeue('IF-021', DUAL, filter)).status).toBe(200);
    const page = await dual.client.pull('IF-021', DUAL);
    expect((page.body as Json[]).map((m) => m.payload.CustomBlock.B067 !== undefined)).toEqual([false, true]);
  });
});
