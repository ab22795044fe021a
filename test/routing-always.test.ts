import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { copyRoles, receivesOn, type ChannelRouting } from '../src/domain/channel.js';
import { MSG } from '../src/domain/response-codes.js';
import { route } from '../src/domain/routing.js';
import { channelRouting } from '../src/pipeline/channels.js';
import { buildIF021 } from '../src/sim/messages.js';
import { LeftOutLog } from '../src/pipeline/left-out-log.js';
import { FakeClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { directoryOf, person, routingHeader } from './helpers/routing.js';

type Json = Record<string, any>;

const people = [person('2000000001', ['SDS']), person('1000000001', ['SUP']), person('5000000001', ['MDS']), person('8000000001', ['REGS']), person('8000000002', ['ECS'])];
const dir = directoryOf(people);
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

describe('"always" routing to named participants (spec 5.5.3), the pure decision', () => {
  it('adds the named participants beside the always roles, whatever roles they hold', () => {
    const d = route(channel({ alwaysParticipants: ['8000000001'] }), routingHeader(), dir);
    expect(d).toMatchObject({ ok: true, primary: ['1000000001'], always: ['8000000001', '5000000001'], recipients: ['1000000001', '8000000001', '5000000001'] });
  });

  it('is enough on its own: no primary recipient, no always role', () => {
    const d = route(channel({ alwaysRoles: [], alwaysParticipants: ['8000000002'] }), routingHeader({ primaryRecipients: [] }), dir);
    expect(d).toMatchObject({ ok: true, recipients: ['8000000002'] });
    const none = route(channel({ alwaysRoles: [] }), routingHeader({ primaryRecipients: [] }), dir);
    expect(none.ok).toBe(false);
    if (!none.ok) expect(none.help).toMatch(/or is named to always receive on IF-021/);
  });

  it('says so when the only primary recipient named is the sender itself (not that the list is empty)', () => {
    const self = route(channel({ alwaysRoles: [] }), routingHeader({ primaryRecipients: ['2000000001'] }), { ...dir, participant: (id) => (id === '2000000001' ? person(id, ['SDS', 'SUP']) : dir.participant(id)) });
    expect(self.ok).toBe(false);
    if (!self.ok) expect(self.help).toMatch(/^no recipient: A0\.primaryRecipients names only the sender 2000000001, which never receives its own message, and no participant holds an always-routed role/);
  });

  it('never sends to the sender, leaves out a name nobody registered (telling why, MSG1035, without the name), and gives one copy per participant', () => {
    const d = route(channel({ alwaysParticipants: ['2000000001', '9999999999', '1000000001', '8000000001', '8000000001', '9999999999'] }), routingHeader(), dir);
    expect(d).toMatchObject({ ok: true, always: ['1000000001', '8000000001', '5000000001'], recipients: ['1000000001', '8000000001', '5000000001'] });
    // Before: skipped in silence. The published code for an always recipient that is not a participant.
    if (d.ok) {
      expect(d.alwaysLeftOut).toEqual([
        // The DIP ID is the operators' (for their log), not said to the sender: it is their setting, and every sender would be told it.
        { dipId: '9999999999', code: MSG.alwaysRecipientInvalid, help: "a participant channel IF-021 always sends to is not registered; the DIP's operators are told" },
      ]);
    }
  });

  it('refuses with MSG1035 when the only always recipient named is not registered, and with MSG1036 when nobody holds its always roles', () => {
    // Before: MSG1030, naming neither the participant nor the role that failed.
    const named = route(channel({ alwaysRoles: [], alwaysParticipants: ['9999999999'] }), routingHeader({ primaryRecipients: [] }), dir);
    expect(named).toEqual({
      ok: false,
      code: MSG.alwaysRecipientInvalid,
      help: 'no recipient: A0.primaryRecipients is empty and no participant holds an always-routed role (none) or is named to always receive on IF-021; a participant channel IF-021 always sends to is not registered',
    });
    const role = route(channel({ alwaysRoles: ['LSS'] }), routingHeader({ primaryRecipients: [] }), dir);
    expect(role).toEqual({
      ok: false,
      code: MSG.alwaysRecipientRoleInvalid,
      help: 'no recipient: A0.primaryRecipients is empty and no participant holds an always-routed role (LSS) or is named to always receive on IF-021; channel IF-021 always sends to every LSS, and no registered DIP participant holds LSS',
    });
    // A role held only by the sender is held: nobody else is to receive, so no code of an always recipient.
    const self = route(channel({ alwaysRoles: ['SDS'] }), routingHeader({ primaryRecipients: [] }), dir);
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
  const warned: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    // 8000000001 holds a role that does not receive IF-021; the operator names it, and hides B067 from REGS.
    // 8000000009 is named too, and never registered.
    t = await startTestDip({ channels: { 'IF-021': { alwaysParticipants: ['8000000001', '8000000009'], obfuscation: { REGS: ['CustomBlock.B067'] } } } }, undefined, {
      logger: { info() {}, error() {}, warn: (obj, msg = '') => void (msg.includes('MSG1035') && warned.push(obj as Record<string, unknown>)) },
    });
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

  it('accepts for the others and tells the sender that a participant the channel always sends to is not registered (MSG1035), not which', async () => {
    // Before: 201 with help null; the operator's named recipient got nothing and nobody was told. Then the
    // help named it (8000000009): the operator's setting, told to every sender on the channel.
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'always2' });
    const a = await sds.client.submit('IF-021', [item]);
    expect(a.status).toBe(201);
    expect(a.body.messageArray[0]).toMatchObject({
      message: 'MSG0000 - Success',
      help: "accepted and routed to its other recipients; left out, with no copy: a participant channel IF-021 always sends to is not registered; the DIP's operators are told (MSG1035)",
    });
    expect(JSON.stringify(a.body)).not.toContain('8000000009');
    // The operators are told, naming it: once, not again for the next batch (each batch was a warning before).
    const again = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'always3' })]);
    expect(again.status).toBe(201);
    expect(warned).toEqual([expect.objectContaining({ channel: 'IF-021', dipId: '8000000009', messages: 1 })]);
  });
});

describe("the operators' warning of an unregistered always participant", () => {
  const recording = () => {
    const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    return { lines, logger: { info() {}, error() {}, warn: (obj: object, msg = '') => void lines.push({ obj: obj as Record<string, unknown>, msg }) } };
  };
  const batch = (dipId: string, n: number) => Array.from({ length: n }, (_, i) => ({ transactionId: `T${i}`, dipId }));

  it('is logged when first met, then at most once per 10 minutes per (channel, DIP ID), with the messages left out since', async () => {
    // Before: a warning per accepted batch, thousands a minute at IF-021's volume.
    const clock = new FakeClock();
    const { lines, logger } = recording();
    const log = new LeftOutLog(clock, logger);
    log.always('IF-021', batch('8000000009', 3));
    expect(lines.map((l) => l.obj)).toEqual([{ channel: 'IF-021', dipId: '8000000009', messages: 3, transactionId: 'T0', code: 'MSG1035' }]);
    for (let i = 0; i < 1000; i++) {
      await clock.advance(500);
      log.always('IF-021', batch('8000000009', 2));
    }
    // 500 s later: still one line. Another DIP ID, or the same on another channel, is its own.
    log.always('IF-021', [...batch('8000000008', 1), ...batch('8000000009', 1)]);
    log.always('IF-022', batch('8000000009', 1));
    expect(lines.map((l) => [l.obj.channel, l.obj.dipId, l.obj.messages])).toEqual([
      ['IF-021', '8000000009', 3],
      ['IF-021', '8000000008', 1],
      ['IF-022', '8000000009', 1],
    ]);
    await clock.advance(100_000);
    log.always('IF-021', batch('8000000009', 4));
    // 600 s after the first line: the next one counts every message left out since (2,000 + 1 + 4).
    expect(lines).toHaveLength(4);
    expect(lines[3]!.obj).toMatchObject({ channel: 'IF-021', dipId: '8000000009', messages: 2005 });
    expect(lines[3]!.msg).toContain('2005 message(s) in the last 10 min');
    log.always('IF-021', batch('8000000009', 1));
    expect(lines).toHaveLength(4);
  });
});
