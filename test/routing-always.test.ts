import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { copyRoles, receivesOn, type ChannelRouting } from '../src/domain/channel.js';
import type { MessageHeader } from '../src/domain/message.js';
import type { Participant } from '../src/domain/participant.js';
import { MSG } from '../src/domain/response-codes.js';
import { route, type RoutingDirectory } from '../src/domain/routing.js';
import { channelRouting } from '../src/pipeline/channels.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

const person = (dipId: string, roles: string[]): Participant => ({ dipId, roles, organisation: dipId, certificatePem: '', certificateFingerprint: '', connectionProvider: null, createdAt: 0 });
const people = [person('2000000001', ['SDS']), person('1000000001', ['SUP']), person('5000000001', ['MDS']), person('8000000001', ['REGS']), person('8000000002', ['ECS'])];
const dir: RoutingDirectory = {
  participant: (id) => people.find((p) => p.dipId === id),
  holdersOf: (role) => people.filter((p) => p.roles.includes(role)),
};
const channel = (over: Partial<ChannelRouting> = {}): ChannelRouting => ({
  interfaceId: 'IF-021',
  publicationId: 'PUB-021',
  senderRoles: ['SDS'],
  receiverRoles: ['SUP', 'MDS', 'LDSO', 'LSS'],
  alwaysRoles: ['MDS'],
  alwaysParticipants: [],
  primaryRouting: true,
  ...over,
});
const header = (over: Partial<MessageHeader> = {}): MessageHeader => ({
  interfaceId: 'IF-021',
  eventCode: '[ActivePower]',
  schemaVersion: '011',
  environmentTag: 'DEV',
  senderUniqueReference: 'ref',
  senderTimestamp: '2026-01-01T00:00:00+00:00',
  senderDipId: '2000000001',
  senderRoleId: 'SDS',
  senderCorrelationId: null,
  connectionProviderId: null,
  primaryRecipients: ['1000000001'],
  mpan: null,
  ...over,
});

describe('"always" routing to named participants (spec 5.5.3), the pure decision', () => {
  it('adds the named participants beside the always roles, whatever roles they hold', () => {
    const d = route(channel({ alwaysParticipants: ['8000000001'] }), header(), dir);
    expect(d).toMatchObject({ ok: true, primary: ['1000000001'], always: ['8000000001', '5000000001'], recipients: ['1000000001', '8000000001', '5000000001'] });
  });

  it('is enough on its own: no primary recipient, no always role', () => {
    const d = route(channel({ alwaysRoles: [], alwaysParticipants: ['8000000002'] }), header({ primaryRecipients: [] }), dir);
    expect(d).toMatchObject({ ok: true, recipients: ['8000000002'] });
    const none = route(channel({ alwaysRoles: [] }), header({ primaryRecipients: [] }), dir);
    expect(none.ok).toBe(false);
    if (!none.ok) expect(none.help).toMatch(/or is named to always receive on IF-021/);
  });

  it('says so when the only primary recipient named is the sender itself (not that the list is empty)', () => {
    const self = route(channel({ alwaysRoles: [] }), header({ primaryRecipients: ['2000000001'] }), { ...dir, participant: (id) => (id === '2000000001' ? person(id, ['SDS', 'SUP']) : dir.participant(id)) });
    expect(self.ok).toBe(false);
    if (!self.ok) expect(self.help).toMatch(/^no recipient: A0\.primaryRecipients names only the sender 2000000001, which never receives its own message, and no participant holds an always-routed role/);
  });

  it('never sends to the sender, leaves out a name nobody registered (telling why, MSG1035), and gives one copy per participant', () => {
    const d = route(channel({ alwaysParticipants: ['2000000001', '9999999999', '1000000001', '8000000001', '8000000001', '9999999999'] }), header(), dir);
    expect(d).toMatchObject({ ok: true, always: ['1000000001', '8000000001', '5000000001'], recipients: ['1000000001', '8000000001', '5000000001'] });
    // Before: skipped in silence. The published code for an always recipient that is not a participant.
    if (d.ok) {
      expect(d.alwaysLeftOut).toEqual([
        { dipId: '9999999999', code: MSG.alwaysRecipientInvalid, help: 'channel IF-021 names 9999999999 to always receive, which is not a registered DIP participant' },
      ]);
    }
  });

  it('refuses with MSG1035 when the only always recipient named is not registered, and with MSG1036 when nobody holds its always roles', () => {
    // Before: MSG1030, naming neither the participant nor the role that failed.
    const named = route(channel({ alwaysRoles: [], alwaysParticipants: ['9999999999'] }), header({ primaryRecipients: [] }), dir);
    expect(named).toEqual({
      ok: false,
      code: MSG.alwaysRecipientInvalid,
      help: 'no recipient: A0.primaryRecipients is empty and no participant holds an always-routed role (none) or is named to always receive on IF-021; channel IF-021 names 9999999999 to always receive, which is not a registered DIP participant',
    });
    const role = route(channel({ alwaysRoles: ['LSS'] }), header({ primaryRecipients: [] }), dir);
    expect(role).toEqual({
      ok: false,
      code: MSG.alwaysRecipientRoleInvalid,
      help: 'no recipient: A0.primaryRecipients is empty and no participant holds an always-routed role (LSS) or is named to always receive on IF-021; channel IF-021 always sends to every LSS, and no registered DIP participant holds LSS',
    });
    // A role held only by the sender is held: nobody else is to receive, so no code of an always recipient.
    const self = route(channel({ alwaysRoles: ['SDS'] }), header({ primaryRecipients: [] }), dir);
    expect(self.ok ? null : self.code).toBe(MSG.routingError);
  });

  it('comes from the channel configuration, empty by default', () => {
    const def = Catalogue.load().channel('IF-021')!;
    expect(channelRouting(def, undefined, 1).alwaysParticipants).toEqual([]);
    expect(channelRouting(def, { alwaysParticipants: ['8000000001'] }, 1).alwaysParticipants).toEqual(['8000000001']);
  });

  it('lets a named participant receive on the channel, and makes its copy for the roles it holds', () => {
    const ch = channel({ alwaysParticipants: ['8000000001'] });
    expect(receivesOn(ch, person('8000000001', ['REGS']))).toBe(true);
    expect(receivesOn(ch, person('8000000003', ['REGS']))).toBe(false);
    expect(receivesOn(ch, person('1000000009', ['SUP']))).toBe(true);
    expect(copyRoles(ch, ['SUP', 'REGS'])).toEqual(['SUP']);
    expect(copyRoles(ch, ['REGS'])).toEqual(['REGS']);
  });
});

describe('"always" routing to a named participant on a running DIP', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let watcher: TestParticipant;

  beforeAll(async () => {
    // 8000000001 holds a role that does not receive IF-021; the operator names it, and hides B067 from REGS.
    // 8000000009 is named too, and never registered.
    t = await startTestDip({ channels: { 'IF-021': { alwaysParticipants: ['8000000001', '8000000009'], obfuscation: { REGS: ['CustomBlock.B067'] } } } });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    watcher = await t.participant('8000000001', ['REGS']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('delivers every message to it, names it in A0.always, and obfuscates its copy for its role', async () => {
    const r = await t.receiver();
    const s = await t.receiver();
    expect((await watcher.client.setWebhook('IF-021', watcher.dipId, { callbackURL: r.url })).status).toBe(201);
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: s.url })).status).toBe(201);
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'always1' });
    const a = await sds.client.submit('IF-021', [item]);
    expect(a.status).toBe(201);
    await waitFor(() => r.calls.length > 0 && s.calls.length > 0, 10_000, 'both copies');
    const got = r.calls[0]!.messages[0] as Json;
    expect(got.payload.CommonBlock.A0.always).toEqual(['8000000001']);
    expect(got.payload.CommonBlock.D0.transactionID).toBe(a.body.messageArray[0]!.transactionID);
    expect(got.payload.CustomBlock.B067).toBeUndefined();
    expect((s.calls[0]!.messages[0] as Json).payload.CustomBlock.B067).toBeDefined();
    // Another REGS participant, not named, still may not configure IF-021.
    const other = await t.participant('8000000002', ['REGS']);
    expect((await other.client.setWebhook('IF-021', other.dipId, { callbackURL: r.url })).status).toBe(403);
  });

  it('accepts for the others and tells the sender of the named participant nobody registered (MSG1035)', async () => {
    // Before: 201 with help null; the operator's named recipient got nothing and nobody was told.
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'always2' });
    const a = await sds.client.submit('IF-021', [item]);
    expect(a.status).toBe(201);
    expect(a.body.messageArray[0]).toMatchObject({
      message: 'MSG0000 - Success',
      help: 'accepted and routed to its other recipients; left out, with no copy: channel IF-021 names 8000000009 to always receive, which is not a registered DIP participant (MSG1035)',
    });
  });
});
